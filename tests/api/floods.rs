//! Floods (API.md section 3, "Abuse limits"): a login flood beyond
//! `auth.max_pending_hashes` is refused at once while tokens keep working;
//! one session cannot refresh without limit; the cleanup job keeps up with
//! a table that outgrew one run's old budget.

use std::cell::Cell;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;

const FLOOD: usize = 40;

#[actix_web::test]
async fn a_login_flood_beyond_the_bound_gets_503s_while_tokens_keep_working() {
    // Arrange: bcrypt at its default cost, four places in its queue, and no
    // other limit in the way (the bound stays when limits are off).
    let app = spawn_app_with_env(&[("KEYWARD__AUTH__MAX_PENDING_HASHES", "4")], |s| {
        s.auth.bcrypt_cost = 12;
        s.rate_limit.enabled = false;
    })
    .await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let login = json!({"username": user.username, "password": user.password});
    // Logins that got through their password check so far.
    let checked = Cell::new(0usize);

    // Act: the flood, and meanwhile a refresh and a `/api/me`.
    let flood = all_at_once(FLOOD, |_| {
        let request = app.post_json("/auth/login", &login, None);
        let checked = &checked;
        async move {
            let reply = request.await;
            if reply.status == 200 {
                checked.set(checked.get() + 1);
            }
            reply
        }
    });
    let meanwhile = async {
        // Let the flood reach the server first.
        tokio::task::yield_now().await;
        let refreshed = app.refresh(&pair.refresh_token).await;
        let me = app.me(&pair).await;
        (refreshed, me, checked.get())
    };
    let (replies, (refreshed, me, checked_by_then)) = tokio::join!(flood, meanwhile);

    // Assert: the refused logins were told so at once, with Retry-After;
    // the others signed in.
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(!refused.is_empty(), "no 503 in a flood of {FLOOD}");
    for r in &refused {
        r.assert_error(503, "unavailable");
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(count_status(&replies, 200) + refused.len(), FLOOD);
    // The token routes answered while logins still waited for bcrypt.
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(me.status, 200, "{}", me.text);
    assert!(
        checked_by_then < checked.get(),
        "refresh and /api/me answered only after all {} checks",
        checked.get()
    );
}

#[actix_web::test]
async fn one_session_refreshes_at_most_its_budget_with_retry_after() {
    // Arrange: three refreshes a minute.
    let app = spawn_app_with_env(
        &[("KEYWARD__RATE_LIMIT__REFRESH_PER_SESSION_PER_MINUTE", "3")],
        |_| {},
    )
    .await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let other = app.login(&user).await.token_pair();
    let first = pair.refresh_token.clone();

    // Act: a rotation, a grace answer for the same token, a rotation...
    let rotated = app.refresh(&first).await;
    let grace = app.refresh(&first).await;
    let current = field(&rotated.json, "refresh_token").to_string();
    let third = app.refresh(&current).await;
    let next = field(&third.json, "refresh_token").to_string();
    let fourth = app.refresh(&next).await;

    // Assert: the grace answer counted; the fourth is refused.
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(grace.status, 200, "{}", grace.text);
    assert_eq!(third.status, 200, "{}", third.text);
    fourth.assert_error(429, "rate_limited");
    // One refresh comes back every 60 / 3 = 20 seconds.
    assert_eq!(fourth.header("retry-after"), Some("20"));
    // Another session of the same user has its own budget.
    assert_eq!(app.refresh(&other.refresh_token).await.status, 200);
    // The refused refresh rotated nothing: the token still works later.
    app.clock.advance(TimeDelta::seconds(20));
    let later = app.refresh(&next).await;
    assert_eq!(later.status, 200, "{}", later.text);
}

#[actix_web::test]
async fn no_refresh_limit_when_rate_limiting_is_disabled() {
    let app = spawn_app_with_env(
        &[("KEYWARD__RATE_LIMIT__REFRESH_PER_SESSION_PER_MINUTE", "1")],
        |s| s.rate_limit.enabled = false,
    )
    .await;
    let user = app.register().await;
    let mut token = app.login(&user).await.token_pair().refresh_token;
    for _ in 0..5 {
        let r = app.refresh(&token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        token = field(&r.json, "refresh_token").to_string();
    }
}

/// The old budget of one run: 100 batches of 1,000 rows per table.
const OLD_BUDGET: i64 = 100_000;

#[actix_web::test]
async fn a_cleanup_run_drains_a_table_larger_than_the_old_budget() {
    // Arrange: `now` far ahead, so that the app's own sweep on the real
    // clock leaves these rows alone.
    let app = spawn_app().await;
    let now = Utc::now() + TimeDelta::days(400);
    let old = (now - TimeDelta::days(91)).to_rfc3339();
    let kept = (now - TimeDelta::days(89)).to_rfc3339();
    let extra = 1_500;
    app.db.exec(&format!(
        "INSERT INTO events (at, kind) SELECT '{old}', 'flood' FROM generate_series(1, {}); \
         INSERT INTO events (at, kind) VALUES ('{kept}', 'kept');",
        OLD_BUDGET + extra
    ));

    // Act
    let mut conn = app.db.connect();
    let swept = keyward::cleanup::sweep(&mut conn, &app.settings.retention, now).unwrap();

    // Assert
    assert_eq!(swept.events as i64, OLD_BUDGET + extra, "{swept:?}");
    assert_eq!(
        query_i64(&app.db, "SELECT count(*) FROM events WHERE kind = 'flood'"),
        0
    );
    assert_eq!(
        query_i64(&app.db, "SELECT count(*) FROM events WHERE kind = 'kept'"),
        1
    );
}

#[actix_web::test]
async fn a_run_out_of_time_still_deletes_a_batch_per_table_and_says_so() {
    // Arrange: more than one batch of old events.
    let app = spawn_app().await;
    let now = Utc::now() + TimeDelta::days(400);
    let old = (now - TimeDelta::days(91)).to_rfc3339();
    let batch = keyward::cleanup::BATCH;
    app.db.exec(&format!(
        "INSERT INTO events (at, kind) SELECT '{old}', 'flood' FROM generate_series(1, {});",
        batch * 2 + 10
    ));
    let mut conn = app.db.connect();
    let retention = &app.settings.retention;

    // Act: a run with no time at all, then one with time enough.
    let hurried =
        keyward::cleanup::sweep_for(&mut conn, retention, now, Duration::ZERO, &|| false).unwrap();
    let unhurried =
        keyward::cleanup::sweep_for(&mut conn, retention, now, Duration::from_secs(600), &|| {
            false
        })
        .unwrap();

    // Assert
    assert_eq!(hurried.swept.events as i64, batch, "{hurried:?}");
    assert!(!hurried.finished);
    assert_eq!(unhurried.swept.events as i64, batch + 10, "{unhurried:?}");
    assert!(unhurried.finished);
}
