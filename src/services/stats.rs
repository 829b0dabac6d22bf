//! The administrators' overview (`GET /admin/stats`): how many sessions and
//! users there are now, and what happened hour by hour, from the event log:
//! completed hours from their rollup (`event_hours`, filled by the cleanup
//! job and by this query for the hours it finds missing), the rest live.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use diesel::prelude::*;

use crate::db::event_hours::{self, Counting, HourCounts};
use crate::db::{sessions, users};

/// The most hours one overview covers: a week.
pub const MAX_HOURS: i64 = 168;

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

/// The kinds counted as they are, with the field each one fills; the kinds
/// counted at all are these and [`ONE_REVOCATION`]. The live count and the
/// rollup both count by this.
const COUNTED: Counting<'static> = Counting {
    logins: "login_succeeded",
    failed_logins: "login_failed",
    refreshes: "refreshed",
    reuse_detected: "reuse_detected",
    one_revocation: ONE_REVOCATION,
    counted_revocations: COUNTED_REVOCATIONS,
};

/// How long after its end an hour is rolled up (counted once and kept in
/// `event_hours`); until then it is counted live.
///
/// An event's `at` is the `now` its request took when it began, and the
/// event commits a little later: after the wait for a blocking thread and a
/// connection, a login's bcrypt, and statements of at most 5 s each
/// (`statement_timeout`), so seconds at most; instances' clocks follow the
/// database's to within a round trip. The one long writer is signing
/// everyone out, whose `sessions_revoked_all` event carries the time it
/// began and commits after its last batch: 224 s for 1,000,000 sessions in
/// the README's figures, bound by the database, not the build. Half an hour
/// covers some 8,000,000 sessions at that pace, and costs little: live
/// counting covers the current hour and, for the first half hour of an
/// hour, the one before.
pub const ROLLUP_MARGIN: TimeDelta = TimeDelta::minutes(30);

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

impl From<HourCounts> for HourStats {
    fn from(c: HourCounts) -> Self {
        Self {
            hour: c.hour,
            logins: c.logins,
            failed_logins: c.failed_logins,
            refreshes: c.refreshes,
            reuse_detected: c.reuse_detected,
            revocations: c.revocations,
        }
    }
}

/// The start of the first hour that is not complete at `now`: every hour
/// before it ended at least [`ROLLUP_MARGIN`] ago.
fn first_incomplete(now: DateTime<Utc>) -> DateTime<Utc> {
    hour_of(now - ROLLUP_MARGIN)
}

/// The hours in `[since, until)` (complete ones, on the hour) from the
/// rollup, rolling up first those that are not there yet; and how many this
/// call rolled up.
fn rolled_up(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<(Vec<HourCounts>, usize)> {
    let rows = event_hours::rolled_up(conn, since, until)?;
    let have: HashSet<DateTime<Utc>> = rows.iter().map(|r| r.hour).collect();
    let missing: Vec<DateTime<Utc>> = (0..(until - since).num_hours())
        .map(|i| since + TimeDelta::hours(i))
        .filter(|hour| !have.contains(hour))
        .collect();
    if missing.is_empty() {
        return Ok((rows, 0));
    }
    // One statement per hour: each reads one hour of the index, so none
    // comes near the statement timeout however far behind the rollup is.
    let mut added = 0;
    for hour in missing {
        added += event_hours::roll_up(conn, hour, &COUNTED)?;
    }
    Ok((event_hours::rolled_up(conn, since, until)?, added))
}

/// Rolls up every complete hour of the last [`MAX_HOURS`] up to `now` that
/// is not rolled up yet (the cleanup job's step, before it deletes old
/// events); returns how many it added. Idempotent, and safe with other
/// instances doing the same at once.
pub fn roll_up(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<usize, super::Unexpected> {
    let until = first_incomplete(now);
    let since = hour_of(now) - TimeDelta::hours(MAX_HOURS - 1);
    Ok(rolled_up(conn, since, until)?.1)
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
    let live_from = first_incomplete(now).clamp(since, until);
    let (mut counts, _) = rolled_up(conn, since, live_from)?;
    counts.extend(event_hours::count_live(conn, live_from, until, &COUNTED)?);
    let hours = counts.into_iter().map(HourStats::from).collect();
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

    #[test]
    fn an_hour_is_complete_the_margin_after_its_end() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let end = at("2026-12-01T11:00:00Z");
        let just_before = end + ROLLUP_MARGIN - TimeDelta::microseconds(1);
        assert_eq!(first_incomplete(just_before), at("2026-12-01T10:00:00Z"));
        assert_eq!(first_incomplete(end + ROLLUP_MARGIN), end);
    }
}
