//! The per-username lockout under attack (API.md section 3, "Abuse
//! limits"): attempts count as they arrive, before their password check, so
//! simultaneous guesses at one instance or several get no more checks than
//! the threshold; wrong current passwords at `POST /auth/password` count
//! too; `keyward users unlock NAME` frees a username at once.

use chrono::TimeDelta;
use keyward::clock::Clock;
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::cli::*;
use crate::support::client::*;
use crate::support::db::*;

const THRESHOLD: i32 = 5;
const GUESSES: usize = 20;

/// Settings for the burst tests: a slower bcrypt than the tests' usual, so
/// that the guesses' checks overlap as they would at cost 12.
fn locking(s: &mut keyward::config::Settings) {
    s.rate_limit.lockout_threshold = THRESHOLD;
    s.rate_limit.lockout_seconds = 60;
    s.auth.bcrypt_cost = 8;
}

fn wrong_password(user: &User) -> Value {
    json!({"username": user.username, "password": "not-the-password"})
}

/// How many password checks failed: each logs one `login_failed`.
fn failed_checks(db: &TestDb) -> i64 {
    query_i64(
        db,
        "SELECT count(*) FROM events WHERE kind = 'login_failed'",
    )
}

#[actix_web::test]
async fn simultaneous_wrong_guesses_get_no_more_checks_than_the_threshold() {
    // Arrange
    let app = spawn_app_with(locking).await;
    let user = app.register().await;
    let body = wrong_password(&user);

    // Act: twenty guesses released together.
    let replies = all_at_once(GUESSES, |_| app.post_json("/auth/login", &body, None)).await;

    // Assert
    assert_eq!(count_status(&replies, 401), THRESHOLD as usize);
    assert_eq!(count_status(&replies, 429), GUESSES - THRESHOLD as usize);
    for r in replies.iter().filter(|r| r.status == 429) {
        r.assert_error(429, "rate_limited");
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(failed_checks(&app.db), i64::from(THRESHOLD));
    // The right password is refused too while the lockout lasts.
    app.login(&user).await.assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn guesses_split_over_two_instances_share_the_threshold() {
    // Arrange: two instances on one database.
    let a = spawn_app_with(locking).await;
    let b = spawn_on(a.settings.clone(), Clock::system()).await;
    let user = a.register().await;
    let body = wrong_password(&user);

    // Act: half the burst at each instance, all released together.
    let replies = all_at_once(GUESSES, |i| {
        let app = if i % 2 == 0 { &a.app } else { &b };
        app.post_json("/auth/login", &body, None)
    })
    .await;

    // Assert
    assert_eq!(count_status(&replies, 401), THRESHOLD as usize);
    assert_eq!(count_status(&replies, 429), GUESSES - THRESHOLD as usize);
    assert_eq!(failed_checks(&a.db), i64::from(THRESHOLD));
    b.login(&user).await.assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn a_success_still_resets_the_count() {
    // Arrange
    let app = spawn_app_with(locking).await;
    let user = app.register().await;
    for _ in 0..THRESHOLD - 1 {
        app.post_json("/auth/login", &wrong_password(&user), None)
            .await
            .assert_error(401, "invalid_credentials");
    }

    // Act
    app.login(&user).await.token_pair();

    // Assert: a whole threshold of failures again before the lockout.
    for _ in 0..THRESHOLD {
        app.post_json("/auth/login", &wrong_password(&user), None)
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.login(&user).await.assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn wrong_current_passwords_count_toward_the_lockout_and_are_logged() {
    // Arrange: a thief holding the victim's access token.
    let app = spawn_app_with(|s| {
        s.rate_limit.lockout_threshold = 3;
        s.rate_limit.lockout_seconds = 60;
    })
    .await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let stolen = &pair.access_token;
    let guess = |n: usize| json!({"current_password": format!("guess-number-{n}"), "new_password": "the-thief-wants-this"});

    // Act
    let mut statuses = Vec::new();
    for n in 0..5 {
        let r = app
            .post_json("/auth/password", &guess(n), Some(stolen))
            .await;
        statuses.push(r.status);
    }
    let right = json!({"current_password": user.password, "new_password": "the-thief-wants-this"});
    let with_the_right_one = app.post_json("/auth/password", &right, Some(stolen)).await;

    // Assert: three checks, then the username is locked, for sign-ins too.
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    with_the_right_one.assert_error(429, "rate_limited");
    assert!(with_the_right_one.header("retry-after").is_some());
    app.login(&user).await.assert_error(429, "rate_limited");
    let logged = query_texts(
        &app.db,
        &format!(
            "SELECT session_id::text AS value FROM events \
             WHERE kind = 'password_change_failed' AND user_id = '{}' AND actor_id = user_id",
            user.id
        ),
    );
    assert_eq!(logged, vec![pair.session_id.clone(); 3]);
    // Once the lockout has passed, the right password changes it, and the
    // count starts again.
    app.clock.advance(TimeDelta::seconds(61));
    let changed = app.post_json("/auth/password", &right, Some(stolen)).await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(query_i64(&app.db, "SELECT count(*) FROM login_throttle"), 0);
}

#[actix_web::test]
async fn an_operator_unlocks_a_username_at_once() {
    // Arrange: a username locked out by someone else's guesses.
    let app = spawn_app_with(|s| s.rate_limit.lockout_threshold = 2).await;
    let user = app.register().await;
    for _ in 0..2 {
        app.post_json("/auth/login", &wrong_password(&user), None)
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.login(&user).await.assert_error(429, "rate_limited");

    // Act: in any letter case.
    let (url, name) = (app.db.url.clone(), user.username.to_uppercase());
    let out = tokio::task::spawn_blocking(move || keyward_cli(&url, &["users", "unlock", &name]))
        .await
        .unwrap();

    // Assert
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("unlocked"), "{stdout}");
    app.login(&user).await.token_pair();
    // Nothing left to unlock is no error; a name no user could have is.
    let url = app.db.url.clone();
    let (again, bad) = tokio::task::spawn_blocking(move || {
        (
            keyward_cli(&url, &["users", "unlock", "nobody-here"]),
            keyward_cli(&url, &["users", "unlock", "no such name!"]),
        )
    })
    .await
    .unwrap();
    assert!(again.status.success());
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[actix_web::test]
async fn the_lockout_is_shared_by_two_instances_on_one_database() {
    let a = spawn_app_with(|s| {
        s.rate_limit.lockout_threshold = 3;
        s.rate_limit.lockout_seconds = 60;
    })
    .await;
    let b = spawn_on(a.settings.clone(), Clock::system()).await;
    let user = a.register().await;
    let wrong = json!({"username": user.username, "password": "not the password"});
    a.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    b.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    // The third failure, counted across both, locks the username.
    let upper = json!({"username": user.username.to_uppercase(), "password": "nope nope"});
    a.post_json("/auth/login", &upper, None)
        .await
        .assert_error(401, "invalid_credentials");
    let good = json!({"username": user.username, "password": user.password});
    for app in [&a.app, &b] {
        let r = app.post_json("/auth/login", &good, None).await;
        r.assert_error(429, "rate_limited");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=61).contains(&retry), "retry-after {retry}");
    }
    // Once it has passed (on either instance's clock), the right password works.
    b.clock.advance(TimeDelta::seconds(61));
    let r = b.post_json("/auth/login", &good, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
