//! Signing everyone out: `POST /admin/sessions/revoke` and
//! `keyward sessions revoke --all`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::json;

use crate::support::app::*;
use crate::support::cli::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

fn created_at(db: &TestDb, session_id: &str) -> DateTime<Utc> {
    let seconds = query_i64(
        db,
        &format!(
            "SELECT extract(epoch FROM created_at)::bigint FROM sessions WHERE id = '{session_id}'"
        ),
    );
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn revoked_reason(db: &TestDb, session_id: &str) -> Option<String> {
    query_texts(
        db,
        &format!(
            "SELECT coalesce(revoked_reason, '') AS value FROM sessions WHERE id = '{session_id}'"
        ),
    )
    .pop()
    .filter(|r| !r.is_empty())
}

#[actix_web::test]
async fn signing_everyone_out_spares_the_sessions_created_from_before_on() {
    // Arrange: the admin and an early session, then one a second later.
    let h = spawn_app().await;
    let (_, admin) = h.admin(&h.db).await;
    let user = h.register().await;
    let early = h.login(&user).await.token_pair();
    h.clock.advance(TimeDelta::seconds(1));
    let late = h.login(&user).await.token_pair();
    let late_at = created_at(&h.db, &late.session_id);
    // Half a second before the late sign-in: rounded up, that is the late
    // session's own second, which is not before it.
    let before = late_at - TimeDelta::milliseconds(500);

    // Act
    let r = h
        .post_json(
            "/admin/sessions/revoke",
            &json!({"before": before.to_rfc3339()}),
            Some(&admin),
        )
        .await;

    // Assert
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"revoked": 2}),
        "the early one and the admin's"
    );
    assert_eq!(
        revoked_reason(&h.db, &early.session_id).as_deref(),
        Some("revoked_all")
    );
    assert_eq!(revoked_reason(&h.db, &late.session_id), None);
    let refused = eventually(Duration::from_secs(1), || async {
        h.me(&early).await.status == 401 && h.get("/api/me", Some(&admin)).await.status == 401
    })
    .await;
    assert!(refused.is_some(), "the early access tokens still work");
    h.me(&early).await.assert_error(401, "session_revoked");
    assert_eq!(h.me(&late).await.status, 200);
    h.refresh(&early.refresh_token)
        .await
        .assert_error(401, "session_revoked");
    assert_eq!(h.refresh(&late.refresh_token).await.status, 200);

    // One log entry for all of them, and no entry per session.
    let entries = query_texts(
        &h.db,
        "SELECT reason || ' ' || coalesce(extract(epoch FROM auth_before)::bigint::text, '-') AS value \
         FROM revocations",
    );
    assert_eq!(entries, [format!("revoked_all {}", late_at.timestamp())]);
    let event = query_texts(
        &h.db,
        "SELECT detail->>'revoked' AS value FROM events WHERE kind = 'sessions_revoked_all'",
    );
    assert_eq!(event, ["2"]);
}

#[actix_web::test]
async fn signing_everyone_out_checks_its_input_and_its_caller() {
    let h = spawn_app().await;
    let (_, admin) = h.admin(&h.db).await;
    let user = h.register().await;
    let pair = h.login(&user).await.token_pair();
    let future = (Utc::now() + TimeDelta::seconds(60)).to_rfc3339();
    for (body, what) in [
        (json!({"before": "yesterday"}), "a malformed time"),
        (json!({"before": future}), "a future time"),
        (json!({"before": 12}), "a number"),
    ] {
        let r = h
            .post_json("/admin/sessions/revoke", &body, Some(&admin))
            .await;
        let message = r.assert_error(400, "invalid_request");
        assert!(message.contains("before"), "{what}: {message}");
    }
    h.post_json(
        "/admin/sessions/revoke",
        &json!({}),
        Some(&pair.access_token),
    )
    .await
    .assert_error(403, "forbidden");
    assert_eq!(h.me(&pair).await.status, 200, "nothing was revoked");
}

#[actix_web::test]
async fn the_command_line_signs_everyone_out_in_batches() {
    // Arrange: more live sessions than one batch holds, straight in the
    // database, and one real sign-in.
    let h = spawn_app().await;
    let user = h.register().await;
    let pair = h.login(&user).await.token_pair();
    let batch = keyward::services::session_policy::REVOKE_ALL_BATCH;
    h.db.exec(&format!(
        "INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, expires_at) \
         SELECT gen_random_uuid(), '{}', gen_random_uuid(), now(), now() - interval '1 hour', now(), \
                now() + interval '1 day' FROM generate_series(1, {})",
        user.id,
        batch * 2 + 7
    ));

    // Act
    let db = h.db.url.clone();
    let out =
        tokio::task::spawn_blocking(move || keyward_cli(&db, &["sessions", "revoke", "--all"]))
            .await
            .unwrap();

    // Assert
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("revoked {}", batch * 2 + 8)),
        "{said}"
    );
    let live = query_i64(
        &h.db,
        "SELECT count(*) FROM sessions WHERE revoked_at IS NULL",
    );
    assert_eq!(live, 0);
    let refused = eventually(Duration::from_secs(1), || async {
        h.me(&pair).await.status == 401
    })
    .await;
    assert!(
        refused.is_some(),
        "the access token still works after the command"
    );
    let entries = query_i64(&h.db, "SELECT count(*) FROM revocations");
    assert_eq!(entries, 1);

    // --before in the future is refused, --before without --all too.
    let db = h.db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        keyward_cli(
            &db,
            &[
                "sessions",
                "revoke",
                "--all",
                "--before",
                "2999-01-01T00:00:00Z",
            ],
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("before"));
}

#[actix_web::test]
async fn a_sign_in_in_the_same_second_after_signing_everyone_out_stays_signed_in() {
    // Arrange: the cut-off is now rounded up, so up to a second ahead.
    let h = spawn_app().await;
    let (admin_user, admin) = h.admin(&h.db).await;
    let r = h
        .post_json("/admin/sessions/revoke", &json!({}), Some(&admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Act: signing in again at once.
    let pair = h.login(&admin_user).await.token_pair();

    // Assert: the new session is past the cut-off, and its tokens work on
    // this instance and after the listener has read the entry.
    let auth_before = query_i64(
        &h.db,
        "SELECT extract(epoch FROM auth_before)::bigint FROM revocations",
    );
    let auth_time = claims(&pair.access_token)["auth_time"].as_i64().unwrap();
    assert!(auth_time >= auth_before, "{auth_time} < {auth_before}");
    assert!(
        auth_time - Utc::now().timestamp() <= 1,
        "at most a second ahead"
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // the listener's read: real time
    assert_eq!(h.me(&pair).await.status, 200);
    let refreshed = h.refresh(&pair.refresh_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(h.me(&refreshed.token_pair()).await.status, 200);
}

/// Moves the app's clock a few seconds on (past the cut-offs of earlier
/// tries) and then to just after the start of a second; returns that second.
fn to_start_of_a_second(h: &Harness) -> DateTime<Utc> {
    h.clock.advance(TimeDelta::seconds(3));
    let into_second = TimeDelta::nanoseconds(i64::from(h.clock.now().nanosecond()));
    h.clock
        .advance(TimeDelta::seconds(1) - into_second + TimeDelta::milliseconds(5));
    DateTime::from_timestamp(h.clock.now().timestamp(), 0).unwrap()
}

#[actix_web::test]
async fn a_second_sign_everyone_out_in_the_same_second_ends_a_sign_in_between_them() {
    // Arrange
    let h = spawn_app().await;
    let (admin_user, _) = h.admin(&h.db).await;
    // The three requests must fall in one second of the app's clock; on a
    // loaded machine they may not, and then the next second is tried.
    let mut outcome = None;
    for _ in 0..5 {
        let admin = h.login(&admin_user).await.token_pair().access_token;
        let second = to_start_of_a_second(&h);
        let first = h
            .post_json("/admin/sessions/revoke", &json!({}), Some(&admin))
            .await;
        assert_eq!(first.status, 200, "{}", first.text);
        // The sign-in between: it records the first cut-off, the next
        // second, as its sign-in time (`sign_in_time`).
        let between = h.login(&admin_user).await.token_pair();

        // Act: signing everyone out again, within the same second.
        let again = h
            .post_json(
                "/admin/sessions/revoke",
                &json!({}),
                Some(&between.access_token),
            )
            .await;
        if h.clock.now().timestamp() == second.timestamp() {
            outcome = Some((second, between, again));
            break;
        }
    }
    let (second, between, again) = outcome.expect("five tries never fitted in one second");

    // Assert: the second cut-off moved past the first, and ended the sign-in
    // between them (the caller's own session).
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json, json!({"revoked": 1}));
    assert_eq!(
        created_at(&h.db, &between.session_id),
        second + TimeDelta::seconds(1)
    );
    assert_eq!(
        revoked_reason(&h.db, &between.session_id).as_deref(),
        Some("revoked_all")
    );
    let cut_offs = query_texts(
        &h.db,
        "SELECT extract(epoch FROM auth_before)::bigint::text AS value FROM revocations \
         ORDER BY id DESC LIMIT 2",
    );
    let expected = [2, 1].map(|s| (second.timestamp() + s).to_string());
    assert_eq!(cut_offs, expected);
    let refused = eventually(Duration::from_secs(1), || async {
        h.me(&between).await.status == 401
    })
    .await;
    assert!(refused.is_some(), "the sign-in between still works");
    h.me(&between).await.assert_error(401, "session_revoked");
    h.refresh(&between.refresh_token)
        .await
        .assert_error(401, "session_revoked");
}
