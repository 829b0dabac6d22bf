//! The `login_throttle` table: password checks in a row per username (known
//! or not) that have not been followed by a success, kept in the database
//! so every instance counts the same attempts.
//!
//! An attempt is counted as it arrives, *before* its password check, by one
//! upsert that also answers whether it may go on: the row lock the upsert
//! takes orders simultaneous attempts, at one instance or several, so no
//! more than the threshold are ever checked (reading the count before the
//! check and writing it after would let every guess of a simultaneous
//! burst read the same count and pass). `locked_until` is set
//! by the attempt that reaches the threshold; until then, attempts are
//! refused without being counted; after it, the count starts again.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamptz};

use super::schema::login_throttle;

/// What the database answered for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Counted; the password may be checked.
    Counted,
    /// The username is locked until then: no password check.
    Locked { until: DateTime<Utc> },
}

/// Counts one attempt for `key` at `now`, unless the username is locked;
/// the attempt that makes `threshold` locks it for `lockout` from now.
pub(crate) fn take_attempt(
    conn: &mut PgConnection,
    key: &str,
    now: DateTime<Utc>,
    threshold: i32,
    lockout: TimeDelta,
) -> QueryResult<Attempt> {
    // The count after this attempt (1 after a lockout that has run out,
    // else one more) is written out twice: SQL cannot name it. A locked row
    // fails the `WHERE`, so the statement changes no row.
    let counted = diesel::sql_query(
        "INSERT INTO login_throttle AS t (username_key, failures, last_failure, locked_until) \
         VALUES ($1, 1, $2, CASE WHEN 1 >= $3 THEN $4 END) \
         ON CONFLICT (username_key) DO UPDATE SET \
           failures = CASE WHEN t.locked_until IS NULL THEN t.failures + 1 ELSE 1 END, \
           last_failure = $2, \
           locked_until = CASE \
             WHEN (CASE WHEN t.locked_until IS NULL THEN t.failures + 1 ELSE 1 END) >= $3 \
             THEN $4 END \
         WHERE t.locked_until IS NULL OR t.locked_until <= $2",
    )
    .bind::<Text, _>(key)
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(threshold)
    .bind::<Timestamptz, _>(now + lockout)
    .execute(conn)?;
    if counted > 0 {
        return Ok(Attempt::Counted);
    }
    // Refused: the row is locked. Its end is read for `Retry-After` only;
    // an unlock in between makes it a second early, never a check too many.
    let until = locked_until(conn, key, now)?.unwrap_or(now + TimeDelta::seconds(1));
    Ok(Attempt::Locked { until })
}

/// When the lockout for this username ends, if it is locked now.
pub(crate) fn locked_until(
    conn: &mut PgConnection,
    key: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<DateTime<Utc>>> {
    let until: Option<Option<DateTime<Utc>>> = login_throttle::table
        .find(key)
        .select(login_throttle::locked_until)
        .first(conn)
        .optional()?;
    Ok(until.flatten().filter(|until| *until > now))
}

/// A successful check forgets the count (and an operator's unlock does);
/// whether there was one to forget.
pub(crate) fn reset(conn: &mut PgConnection, key: &str) -> QueryResult<bool> {
    diesel::delete(login_throttle::table.find(key))
        .execute(conn)
        .map(|n| n > 0)
}
