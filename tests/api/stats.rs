//! `GET /admin/stats`: counts now, and the event log hour by hour.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::Value;

use crate::support::app::*;
use crate::support::db::*;

/// Moves the app's clock to half past the next hour, so that a test that
/// takes a few seconds never straddles an hour's end; returns that hour's
/// start.
fn to_half_past(h: &Harness) -> DateTime<Utc> {
    let now = h.clock.now();
    let into_hour = TimeDelta::seconds(i64::from(now.minute() * 60 + now.second()))
        + TimeDelta::nanoseconds(i64::from(now.nanosecond()));
    h.clock.advance(TimeDelta::minutes(90) - into_hour);
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
