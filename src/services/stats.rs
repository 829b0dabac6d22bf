//! The administrators' overview (`GET /admin/stats`): how many sessions and
//! users there are now, and what happened hour by hour, from the event log.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use diesel::prelude::*;

use crate::db::{events, sessions, users};

/// The most hours one overview covers: a week.
pub(crate) const MAX_HOURS: i64 = 168;

/// Event kinds that each end exactly one session.
const ONE_REVOCATION: &[&str] = &["session_revoked", "reuse_detected"];

/// Event kinds whose `detail.revoked` says how many sessions they ended.
const COUNTED_REVOCATIONS: &[&str] = &[
    "logout",
    "user_banned",
    "password_changed",
    "user_deleted",
    "sessions_revoked_all",
];

/// The kinds counted as they are, with the field each one fills.
const COUNTED: &[&str] = &[
    "login_succeeded",
    "login_failed",
    "refreshed",
    "reuse_detected",
    "session_revoked",
];

/// One hour's counts; `hour` is its start (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourStats {
    pub hour: DateTime<Utc>,
    pub logins: i64,
    pub failed_logins: i64,
    pub refreshes: i64,
    pub reuse_detected: i64,
    /// Sessions revoked, by any means (logout, administrator, ban, reuse,
    /// password change, deletion, session cap, signing everyone out).
    pub revocations: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// Sessions neither revoked nor expired.
    pub live_sessions: i64,
    pub users: i64,
    /// Users banned now.
    pub banned_users: i64,
    /// The last `hours` hours, the current one last, one entry per hour
    /// even when nothing happened.
    pub hours: Vec<HourStats>,
}

/// The start of the hour `at` falls in (UTC).
pub(crate) fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(at)
}

/// The overview of the `hours` hours up to and including the current one
/// (`hours` from 1 to [`MAX_HOURS`], checked by the caller).
pub fn overview(
    conn: &mut PgConnection,
    hours: i64,
    now: DateTime<Utc>,
) -> Result<Overview, super::Unexpected> {
    let current = hour_of(now);
    let since = current - TimeDelta::hours(hours - 1);
    let until = current + TimeDelta::hours(1);
    let mut by_hour: HashMap<DateTime<Utc>, HourStats> = (0..hours)
        .map(|i| {
            let hour = since + TimeDelta::hours(i);
            (
                hour,
                HourStats {
                    hour,
                    ..HourStats::default()
                },
            )
        })
        .collect();
    for row in events::count_by_hour(conn, since, until, COUNTED)? {
        let Some(entry) = by_hour.get_mut(&row.hour) else {
            continue;
        };
        match row.kind.as_str() {
            "login_succeeded" => entry.logins += row.count,
            "login_failed" => entry.failed_logins += row.count,
            "refreshed" => entry.refreshes += row.count,
            "reuse_detected" => entry.reuse_detected += row.count,
            _ => {}
        }
        if ONE_REVOCATION.contains(&row.kind.as_str()) {
            entry.revocations += row.count;
        }
    }
    for row in events::sum_revoked_by_hour(conn, since, until, COUNTED_REVOCATIONS)? {
        if let Some(entry) = by_hour.get_mut(&row.hour) {
            entry.revocations += row.count;
        }
    }
    let mut hours: Vec<HourStats> = by_hour.into_values().collect();
    hours.sort_by_key(|h| h.hour);
    let (users, banned_users) = users::count_all_and_banned(conn, now)?;
    Ok(Overview {
        live_sessions: sessions::count_live(conn, now)?,
        users,
        banned_users,
        hours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_starts_on_the_hour() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:59:59.999Z")
            .unwrap()
            .to_utc();
        assert_eq!(hour_of(at).to_rfc3339(), "2026-12-01T10:00:00+00:00");
    }
}
