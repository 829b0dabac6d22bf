//! `GET /admin/stats`: counts now, and the event log hour by hour.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use keyward::services::stats::{self, ROLLUP_MARGIN};
use serde_json::Value;

use crate::support::app::*;
use crate::support::db::*;

/// Moves the app's clock to half past the next hour, so that a test that
/// takes a few seconds never straddles an hour's end; returns that hour's
/// start.
fn to_half_past(h: &Harness) -> DateTime<Utc> {
    to_minutes_past(h, 30)
}

/// Moves the app's clock to `minutes` (below 60) past the next hour; returns
/// that hour's start.
fn to_minutes_past(h: &Harness, minutes: i64) -> DateTime<Utc> {
    let now = h.clock.now();
    let into_hour = TimeDelta::seconds(i64::from(now.minute() * 60 + now.second()))
        + TimeDelta::nanoseconds(i64::from(now.nanosecond()));
    h.clock
        .advance(TimeDelta::minutes(60 + minutes) - into_hour);
    let now = h.clock.now();
    now - TimeDelta::minutes(i64::from(now.minute()))
        - TimeDelta::seconds(i64::from(now.second()))
        - TimeDelta::nanoseconds(i64::from(now.nanosecond()))
}

fn insert_event(db: &TestDb, at: DateTime<Utc>, kind: &str, detail: &str) {
    db.exec(&format!(
        "INSERT INTO events (at, kind, detail) VALUES ('{}', '{kind}', '{detail}')",
        at.to_rfc3339()
    ));
}

/// The entry for the hour starting at `hour`.
fn entry(hours: &[Value], hour: DateTime<Utc>) -> &Value {
    hours
        .iter()
        .find(|e| DateTime::parse_from_rfc3339(e["hour"].as_str().unwrap()).unwrap() == hour)
        .unwrap_or_else(|| panic!("no entry for {hour}: {hours:?}"))
}

fn counts(e: &Value) -> [i64; 5] {
    [
        "logins",
        "failed_logins",
        "refreshes",
        "reuse_detected",
        "revocations",
    ]
    .map(|k| e[k].as_i64().unwrap_or_else(|| panic!("{k} in {e}")))
}

#[actix_web::test]
async fn stats_count_each_hour_with_boundaries_and_empty_hours() {
    // Arrange
    let h = spawn_app().await;
    let current = to_half_past(&h);
    let hour = |n: i64| current - TimeDelta::hours(n);
    let tick = TimeDelta::microseconds(1);
    // The last instant of the hour before, and the first of the current one.
    insert_event(&h.db, current - tick, "login_succeeded", "{}");
    insert_event(&h.db, current, "login_failed", "{}");
    insert_event(&h.db, hour(1), "login_succeeded", "{}");
    // Two hours back: nothing. Three back: a refresh at its very end.
    insert_event(&h.db, hour(2) - tick, "refreshed", "{}");
    insert_event(&h.db, hour(3), "refreshed", "{}");
    // Revocations: one each, or as many as detail.revoked says.
    insert_event(&h.db, hour(5), "reuse_detected", "{}");
    insert_event(
        &h.db,
        hour(5),
        "session_revoked",
        r#"{"reason": "session_limit"}"#,
    );
    insert_event(
        &h.db,
        hour(5),
        "logout",
        r#"{"scope": "all", "revoked": 2}"#,
    );
    insert_event(&h.db, hour(5), "sessions_revoked_all", r#"{"revoked": 7}"#);
    // Outside the window (23 hours back is the oldest entry).
    insert_event(&h.db, hour(23) - tick, "login_failed", "{}");
    insert_event(&h.db, hour(23), "login_failed", "{}");
    let (_, admin) = h.admin(&h.db).await; // one more login, in the current hour
    let banned = h.register().await;
    let ban_over = h.register().await;
    h.db.exec(&format!(
        "UPDATE users SET banned = true WHERE id = '{}'; \
         UPDATE users SET banned = true, banned_until = now() - interval '1 day' WHERE id = '{}'",
        banned.id, ban_over.id
    ));

    // Act
    let r = h.get("/admin/stats", Some(&admin)).await;

    // Assert
    assert_eq!(r.status, 200, "{}", r.text);
    let hours = r.json["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    let times: Vec<DateTime<Utc>> = hours
        .iter()
        .map(|e| {
            DateTime::parse_from_rfc3339(e["hour"].as_str().unwrap())
                .unwrap()
                .to_utc()
        })
        .collect();
    assert_eq!(times[0], hour(23), "oldest first");
    assert_eq!(times[23], current, "the current hour last");
    assert!(times.windows(2).all(|w| w[1] - w[0] == TimeDelta::hours(1)));
    assert_eq!(counts(entry(hours, current)), [1, 1, 0, 0, 0]);
    assert_eq!(counts(entry(hours, hour(1))), [2, 0, 0, 0, 0]);
    assert_eq!(counts(entry(hours, hour(2))), [0, 0, 0, 0, 0]);
    assert_eq!(counts(entry(hours, hour(3))), [0, 0, 2, 0, 0]);
    assert_eq!(counts(entry(hours, hour(5))), [0, 0, 0, 1, 11]);
    assert_eq!(counts(entry(hours, hour(23))), [0, 1, 0, 0, 0]);
    let total: i64 = hours.iter().map(|e| counts(e).iter().sum::<i64>()).sum();
    assert_eq!(total, 2 + 2 + 2 + 1 + 11 + 1, "nothing else is counted");
    assert_eq!(r.json["users"], 3);
    assert_eq!(r.json["banned_users"], 1);
    assert_eq!(r.json["live_sessions"], 1);
}

#[actix_web::test]
async fn stats_cover_from_one_hour_to_a_week_and_need_an_admin() {
    let h = spawn_app().await;
    let (_, admin) = h.admin(&h.db).await;
    for (hours, len) in [("1", 1), ("168", 168)] {
        let r = h
            .get(&format!("/admin/stats?hours={hours}"), Some(&admin))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["hours"].as_array().unwrap().len(), len);
    }
    for bad in ["0", "169", "", "two"] {
        h.get(&format!("/admin/stats?hours={bad}"), Some(&admin))
            .await
            .assert_error(400, "invalid_request");
    }
    let user = h.register().await;
    let pair = h.login(&user).await.token_pair();
    h.get("/admin/stats", Some(&pair.access_token))
        .await
        .assert_error(403, "forbidden");
}

/// The hours kept in `event_hours` from `since` on, as "hour counts…" lines.
fn rolled_up_from(db: &TestDb, since: DateTime<Utc>) -> Vec<String> {
    query_texts(
        db,
        &format!(
            "SELECT extract(epoch FROM hour)::bigint || ' ' || logins || ' ' || failed_logins \
               || ' ' || refreshes || ' ' || reuse_detected || ' ' || revocations AS value \
             FROM event_hours WHERE hour >= '{}' ORDER BY hour",
            since.to_rfc3339()
        ),
    )
}

/// The `hours` entries of `GET /admin/stats?hours=…`.
async fn hours_of(h: &Harness, hours: i64, token: &str) -> Vec<Value> {
    let r = h
        .get(&format!("/admin/stats?hours={hours}"), Some(token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["hours"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn a_rolled_up_hour_counts_what_the_live_count_counted() {
    // Arrange: within the margin after an hour's end, so the hour before
    // the current one is still counted live.
    let h = spawn_app().await;
    let current = to_minutes_past(&h, ROLLUP_MARGIN.num_minutes() / 2);
    let previous = current - TimeDelta::hours(1);
    let tick = TimeDelta::microseconds(1);
    let (admin_user, admin) = h.admin(&h.db).await; // a login in the current hour
    insert_event(&h.db, previous, "login_failed", "{}");
    insert_event(&h.db, current - tick, "refreshed", "{}");
    let middle = previous + TimeDelta::minutes(30);
    insert_event(&h.db, middle, "logout", r#"{"revoked": 3}"#);
    insert_event(&h.db, middle, "user_banned", r#"{"revoked": "2"}"#); // not a number
    insert_event(&h.db, middle, "password_changed", "{}"); // no count: none
    insert_event(&h.db, middle, "user_unbanned", "{}"); // not counted
    insert_event(&h.db, current, "reuse_detected", "{}");
    insert_event(&h.db, current, "session_revoked", "{}");
    let live = hours_of(&h, 3, &admin).await;
    assert_eq!(
        rolled_up_from(&h.db, previous),
        Vec::<String>::new(),
        "these hours are counted live"
    );
    assert_eq!(counts(entry(&live, previous)), [0, 1, 1, 0, 3]);
    assert_eq!(counts(entry(&live, current)), [1, 0, 0, 1, 2]);

    // Act: two hours and the margin on, both are complete, and so is the
    // hour after them, which has no events.
    h.clock.advance(TimeDelta::hours(2) + ROLLUP_MARGIN);
    let admin = h.login(&admin_user).await.token_pair().access_token;
    let rolled = hours_of(&h, 5, &admin).await;

    // Assert
    let next = current + TimeDelta::hours(1);
    let rows = rolled_up_from(&h.db, previous);
    let as_row = |hour: DateTime<Utc>, c: [i64; 5]| {
        format!(
            "{} {} {} {} {} {}",
            hour.timestamp(),
            c[0],
            c[1],
            c[2],
            c[3],
            c[4]
        )
    };
    assert_eq!(
        rows,
        [
            as_row(previous, [0, 1, 1, 0, 3]),
            as_row(current, [1, 0, 0, 1, 2]),
            as_row(next, [0; 5]),
        ]
    );
    for hour in [current - TimeDelta::hours(2), previous, current] {
        assert_eq!(
            counts(entry(&rolled, hour)),
            counts(entry(&live, hour)),
            "{hour}"
        );
    }
    assert_eq!(counts(entry(&rolled, next)), [0; 5]);
    assert_eq!(
        counts(entry(&rolled, next + TimeDelta::hours(1))),
        [1, 0, 0, 0, 0],
        "the current hour, live: the second login"
    );
}

#[actix_web::test]
async fn rolling_up_twice_or_from_two_connections_at_once_changes_nothing() {
    // Arrange: past the margin, so every hour but the current one is complete.
    let h = spawn_app().await;
    let current = to_minutes_past(&h, ROLLUP_MARGIN.num_minutes() + 5);
    let hour = |n: i64| current - TimeDelta::hours(n);
    insert_event(&h.db, hour(1), "login_succeeded", "{}");
    insert_event(&h.db, hour(2), "refreshed", "{}");
    insert_event(&h.db, hour(30), "logout", r#"{"revoked": 2}"#);
    let now = h.clock.now();
    let url = h.db.url.clone();

    // Act: connection A rolls up in a transaction it holds open until B,
    // rolling up the same hours, waits on A's rows; then A commits.
    let (by_a, by_b) = tokio::task::spawn_blocking(move || {
        let mut a = PgConnection::establish(&url).unwrap();
        let mut watcher = PgConnection::establish(&url).unwrap();
        a.transaction(|a| {
            let by_a = stats::roll_up(a, now).unwrap();
            let b_url = url.clone();
            let b = std::thread::spawn(move || {
                let mut b = PgConnection::establish(&b_url).unwrap();
                stats::roll_up(&mut b, now).unwrap()
            });
            let waiting = (0..500).any(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .get_result(&mut watcher)
                .unwrap();
                n > 0
            });
            assert!(waiting, "B never waited on A's rows");
            Ok::<_, diesel::result::Error>((by_a, b))
        })
        .map(|(by_a, b)| (by_a, b.join().unwrap()))
        .unwrap()
    })
    .await
    .unwrap();
    let after_both = rolled_up_from(&h.db, hour(200));
    let mut conn = h.db.connect();
    let again = stats::roll_up(&mut conn, now).unwrap();

    // Assert: a week of complete hours (all but the current one), each once.
    assert_eq!((by_a, by_b, again), (167, 0, 0));
    assert_eq!(after_both.len(), 167);
    assert_eq!(rolled_up_from(&h.db, hour(200)), after_both);
    let totals = query_texts(
        &h.db,
        "SELECT sum(logins) || ' ' || sum(refreshes) || ' ' || sum(revocations) AS value \
         FROM event_hours",
    );
    assert_eq!(totals, ["1 1 2"]);
    let (_, admin) = h.admin(&h.db).await;
    let hours = hours_of(&h, 168, &admin).await;
    assert_eq!(counts(entry(&hours, hour(1))), [1, 0, 0, 0, 0]);
    assert_eq!(counts(entry(&hours, hour(30))), [0, 0, 0, 0, 2]);
}

#[actix_web::test]
async fn events_deleted_after_their_hour_was_rolled_up_still_count() {
    // Arrange: events two days back, rolled up by the cleanup job's step.
    let h = spawn_app().await;
    let current = to_minutes_past(&h, ROLLUP_MARGIN.num_minutes() + 5);
    let hour = current - TimeDelta::hours(50);
    insert_event(&h.db, hour, "login_succeeded", "{}");
    insert_event(&h.db, hour, "login_succeeded", "{}");
    insert_event(&h.db, hour, "logout", r#"{"revoked": 4}"#);
    let mut conn = h.db.connect();
    assert_eq!(stats::roll_up(&mut conn, h.clock.now()).unwrap(), 167);

    // Act: a retention of one day deletes them.
    let mut retention = h.settings.retention.clone();
    retention.events_days = 1;
    let swept = keyward::cleanup::sweep(&mut conn, &retention, h.clock.now()).unwrap();

    // Assert
    assert_eq!(swept.events, 3);
    let left = query_i64(
        &h.db,
        "SELECT count(*) FROM events WHERE kind IN ('login_succeeded', 'logout')",
    );
    assert_eq!(left, 0);
    let (_, admin) = h.admin(&h.db).await;
    let hours = hours_of(&h, 168, &admin).await;
    assert_eq!(counts(entry(&hours, hour)), [2, 0, 0, 0, 4]);
}
