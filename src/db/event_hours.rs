//! The event log counted by hour for `GET /admin/stats`: live from `events`,
//! and the `event_hours` rollup that keeps completed hours' counts.
//!
//! Both read the one query text of [`hourly_counts!`], so a rolled-up hour
//! holds exactly what the live count of that hour said.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, Text, Timestamptz};

use super::schema::event_hours;

/// Which event kinds fill which count; the rules are the caller's
/// (`services::stats`), the counting is here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counting<'a> {
    pub(crate) logins: &'a str,
    pub(crate) failed_logins: &'a str,
    pub(crate) refreshes: &'a str,
    pub(crate) reuse_detected: &'a str,
    /// Kinds that each end exactly one session.
    pub(crate) one_revocation: &'a [&'a str],
    /// Kinds whose `detail.revoked` says how many sessions they ended.
    pub(crate) counted_revocations: &'a [&'a str],
}

impl<'a> Counting<'a> {
    /// The kinds counted as they are (one each), for the index scan.
    fn counted(&self) -> Vec<&'a str> {
        let mut kinds = vec![
            self.logins,
            self.failed_logins,
            self.refreshes,
            self.reuse_detected,
        ];
        kinds.extend(self.one_revocation);
        kinds
    }
}

/// One hour's counts; `hour` is its start (UTC). A row of `event_hours`, or
/// a row of the live count.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = event_hours)]
pub(crate) struct HourCounts {
    pub(crate) hour: DateTime<Utc>,
    pub(crate) logins: i64,
    pub(crate) failed_logins: i64,
    pub(crate) refreshes: i64,
    pub(crate) reuse_detected: i64,
    pub(crate) revocations: i64,
}

/// The counts of every hour in `[$1, $2)` (both on the hour), one row per
/// hour, zeros for an hour with nothing in it. `$3`: the kinds counted one
/// each; `$4`: the kinds whose `detail.revoked` is summed; `$5` to `$8`: the
/// kinds of logins, failed logins, refreshes and reuse detections; `$9`: the
/// kinds that each end one session.
///
/// Two scans of the time range of `events_at_kind`: `counted` reads only the
/// index (an index-only scan, no heap fetch), `revoked` reads the rows of the
/// few kinds that carry `detail.revoked`, rare next to `refreshed`. A
/// `revoked` that is not a number counts nothing; the sum is rounded once per
/// hour.
macro_rules! hourly_counts {
    () => {
        "WITH counted AS ( \
           SELECT date_trunc('hour', at, 'UTC') AS hour, kind, count(*) AS n FROM events \
           WHERE at >= $1 AND at < $2 AND kind = ANY($3) GROUP BY 1, 2), \
         revoked AS ( \
           SELECT date_trunc('hour', at, 'UTC') AS hour, \
             sum(CASE WHEN jsonb_typeof(detail -> 'revoked') = 'number' \
                 THEN (detail ->> 'revoked')::numeric END) AS n \
           FROM events WHERE at >= $1 AND at < $2 AND kind = ANY($4) GROUP BY 1), \
         by_hour AS ( \
           SELECT hour, \
             sum(n) FILTER (WHERE kind = $5) AS logins, \
             sum(n) FILTER (WHERE kind = $6) AS failed_logins, \
             sum(n) FILTER (WHERE kind = $7) AS refreshes, \
             sum(n) FILTER (WHERE kind = $8) AS reuse_detected, \
             sum(n) FILTER (WHERE kind = ANY($9)) AS one_revocation \
           FROM counted GROUP BY hour) \
         SELECT h.hour, \
           coalesce(b.logins, 0)::bigint AS logins, \
           coalesce(b.failed_logins, 0)::bigint AS failed_logins, \
           coalesce(b.refreshes, 0)::bigint AS refreshes, \
           coalesce(b.reuse_detected, 0)::bigint AS reuse_detected, \
           (coalesce(b.one_revocation, 0)::bigint + coalesce(r.n, 0)::bigint) AS revocations \
         FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS h (hour) \
         LEFT JOIN by_hour AS b USING (hour) LEFT JOIN revoked AS r USING (hour)"
    };
}

/// [`hourly_counts!`] or a statement around it, its parameters bound.
fn hourly<'a>(
    sql: &'static str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    counting: &Counting<'a>,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Timestamptz, _>(since)
        .bind::<Timestamptz, _>(until)
        .bind::<Array<Text>, _>(counting.counted())
        .bind::<Array<Text>, _>(counting.counted_revocations)
        .bind::<Text, _>(counting.logins)
        .bind::<Text, _>(counting.failed_logins)
        .bind::<Text, _>(counting.refreshes)
        .bind::<Text, _>(counting.reuse_detected)
        .bind::<Array<Text>, _>(counting.one_revocation)
}

/// Every hour in `[since, until)` (on the hour) counted from `events` now,
/// oldest first.
pub(crate) fn count_live(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    counting: &Counting<'_>,
) -> QueryResult<Vec<HourCounts>> {
    hourly(
        concat!(hourly_counts!(), " ORDER BY h.hour"),
        since,
        until,
        counting,
    )
    .load(conn)
}

/// Counts the hour starting at `hour` and keeps it in `event_hours`, unless
/// it is there already; returns 1 if this call added it, else 0. One
/// statement: two instances rolling up the same hour at once compute the same
/// row, the second waits on the first's key and then does nothing. Only for
/// an hour that has ended, so its counts no longer change.
pub(crate) fn roll_up(
    conn: &mut PgConnection,
    hour: DateTime<Utc>,
    counting: &Counting<'_>,
) -> QueryResult<usize> {
    hourly(
        concat!(
            "INSERT INTO event_hours \
               (hour, logins, failed_logins, refreshes, reuse_detected, revocations) ",
            hourly_counts!(),
            " ON CONFLICT (hour) DO NOTHING"
        ),
        hour,
        hour + TimeDelta::hours(1),
        counting,
    )
    .execute(conn)
}

/// The rolled-up hours in `[since, until)`, oldest first.
pub(crate) fn rolled_up(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<Vec<HourCounts>> {
    event_hours::table
        .filter(event_hours::hour.ge(since))
        .filter(event_hours::hour.lt(until))
        .order(event_hours::hour)
        .select(HourCounts::as_select())
        .load(conn)
}
