//! The `login_throttle` table: failed logins in a row per username (known or
//! not), kept in the database so every instance counts the same attempts.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;

use super::schema::login_throttle;

/// When the lockout for this username ends, if it is locked now.
pub fn locked_until(
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

/// Counts one more failure; at `threshold` failures in a row the username
/// is locked for `lockout`, and the count starts again.
pub fn record_failure(
    conn: &mut PgConnection,
    key: &str,
    now: DateTime<Utc>,
    threshold: i32,
    lockout: TimeDelta,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO login_throttle AS t (username_key, failures, last_failure, locked_until) \
         VALUES ($1, 1, $2, CASE WHEN $3 <= 1 THEN $4 END) \
         ON CONFLICT (username_key) DO UPDATE SET \
           failures = CASE WHEN t.failures + 1 >= $3 THEN 0 ELSE t.failures + 1 END, \
           last_failure = $2, \
           locked_until = CASE WHEN t.failures + 1 >= $3 THEN $4 ELSE t.locked_until END",
    )
    .bind::<diesel::sql_types::Text, _>(key)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Integer, _>(threshold)
    .bind::<diesel::sql_types::Timestamptz, _>(crate::clock::later(now, lockout))
    .execute(conn)
    .map(drop)
}

/// A successful login forgets the failures.
pub fn reset(conn: &mut PgConnection, key: &str) -> QueryResult<()> {
    diesel::delete(login_throttle::table.find(key))
        .execute(conn)
        .map(drop)
}
