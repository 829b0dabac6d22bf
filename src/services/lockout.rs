//! The per-username lockout (API.md section 3, "Abuse limits") as the use
//! cases apply it: a login and a password change each take an attempt
//! before their password check, and a right password forgets the count.
//! The counting itself is one statement in `db::throttle`.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;

use crate::config::RateLimitSettings;
use crate::db::throttle::{self, Attempt};

/// The username is locked: no password check for this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Locked {
    pub retry_after: i64,
}

/// The count's key: usernames are unique without regard to (ASCII) case.
pub(crate) fn key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// Counts an attempt at `username`'s password, or refuses it while the
/// username is locked. With rate limiting off, every attempt may go on.
pub(crate) fn take_attempt(
    conn: &mut PgConnection,
    limits: &RateLimitSettings,
    username: &str,
    now: DateTime<Utc>,
) -> QueryResult<Result<(), Locked>> {
    if !limits.enabled {
        return Ok(Ok(()));
    }
    let attempt = throttle::take_attempt(
        conn,
        &key(username),
        now,
        limits.lockout_threshold,
        TimeDelta::seconds(limits.lockout_seconds),
    )?;
    Ok(match attempt {
        Attempt::Counted => Ok(()),
        Attempt::Locked { until } => Err(Locked {
            retry_after: (until - now).num_seconds() + 1,
        }),
    })
}

/// A right password: the attempts in a row start again from zero.
pub(crate) fn forget(
    conn: &mut PgConnection,
    limits: &RateLimitSettings,
    username: &str,
) -> QueryResult<()> {
    if limits.enabled {
        throttle::reset(conn, &key(username))?;
    }
    Ok(())
}

/// `keyward users unlock NAME`: clears the count, whatever the setting;
/// whether there was one.
pub(crate) fn unlock(conn: &mut PgConnection, username: &str) -> QueryResult<bool> {
    throttle::reset(conn, &key(username))
}
