//! The cleanup job: it deletes only the sessions, events and throttle rows
//! that outlived their retention, in batches, and nothing else.

use chrono::{TimeDelta, Utc};

use crate::support::app::*;
use crate::support::db::*;

#[actix_web::test]
async fn the_cleanup_job_deletes_only_what_outlived_its_retention() {
    let app = spawn_app().await;
    let user = app.register().await;
    // `now` lies far ahead, so that the app's own background sweep (on the
    // real clock) cannot touch these rows while the test runs.
    let now = Utc::now() + TimeDelta::days(400);
    let at = |days: i64| (now + TimeDelta::days(days)).to_rfc3339();
    let session = |label: &str, expires: i64, revoked: Option<i64>| {
        format!(
            "INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, \
             expires_at, revoked_at, user_agent) VALUES (gen_random_uuid(), '{}', gen_random_uuid(), \
             '{c}', '{c}', '{c}', '{}', {}, '{label}');",
            user.id,
            at(expires),
            revoked.map_or("NULL".to_string(), |d| format!("'{}'", at(d))),
            c = at(-40),
        )
    };
    let mut sql = String::new();
    sql += &session("expired_8_days_ago", -8, None);
    sql += &session("expired_6_days_ago", -6, None);
    sql += &session("revoked_8_days_ago", 1, Some(-8));
    sql += &session("revoked_6_days_ago", 1, Some(-6));
    sql += &session("live", 1, None);
    // Enough long-ended sessions for several batches.
    sql += &format!(
        "INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, \
         expires_at, user_agent) SELECT gen_random_uuid(), '{}', gen_random_uuid(), '{c}', '{c}', \
         '{c}', '{}', 'bulk' FROM generate_series(1, 2500);",
        user.id,
        at(-30),
        c = at(-40),
    );
    sql += &format!(
        "INSERT INTO events (at, kind) VALUES ('{}', 'old_event'), ('{}', 'kept_event');",
        at(-91),
        at(-89)
    );
    sql += &format!(
        "INSERT INTO login_throttle (username_key, failures, last_failure, locked_until) VALUES \
         ('stale', 2, '{}', NULL), ('stale_but_locked', 0, '{}', '{}'), ('recent', 1, '{}', NULL);",
        at(-8),
        at(-8),
        at(1),
        at(-1)
    );
    app.db.exec(&sql);
    let events_before = query_i64(
        &app.db,
        &format!("SELECT count(*) FROM events WHERE at < '{}'", at(-90)),
    );
    let events_total = query_i64(&app.db, "SELECT count(*) FROM events");

    let mut conn = app.db.connect();
    let swept = keyward::cleanup::sweep(&mut conn, &app.settings.retention, now).unwrap();

    assert_eq!(swept.sessions, 2502, "{swept:?}");
    assert_eq!(swept.events as i64, events_before, "{swept:?}");
    assert_eq!(swept.throttle, 1, "{swept:?}");
    let left = query_texts(
        &app.db,
        "SELECT user_agent AS value FROM sessions ORDER BY user_agent",
    );
    assert_eq!(
        left,
        ["expired_6_days_ago", "live", "revoked_6_days_ago"],
        "kept sessions"
    );
    let kinds = query_texts(
        &app.db,
        "SELECT kind AS value FROM events WHERE kind LIKE '%_event'",
    );
    assert_eq!(kinds, ["kept_event"]);
    assert_eq!(
        query_i64(&app.db, "SELECT count(*) FROM events"),
        events_total - events_before
    );
    let keys = query_texts(
        &app.db,
        "SELECT username_key AS value FROM login_throttle ORDER BY username_key",
    );
    assert_eq!(keys, ["recent", "stale_but_locked"]);

    // A second sweep finds nothing more; the user itself is untouched.
    let again = keyward::cleanup::sweep(&mut conn, &app.settings.retention, now).unwrap();
    assert_eq!(again, keyward::cleanup::Swept::default());
    assert_eq!(app.get("/health", None).await.status, 200);
    assert_eq!(
        query_i64(
            &app.db,
            &format!("SELECT count(*) FROM users WHERE id = '{}'", user.id)
        ),
        1
    );
}
