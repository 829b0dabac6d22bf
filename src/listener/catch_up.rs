//! Reading the `revocations` log into the revocation set and the feed: all
//! of it that still matters at start-up, and what is new at each re-read.

use chrono::TimeDelta;
use diesel::pg::PgConnection;

use crate::config::Settings;
use crate::db::revocations::{self, RevocationRow};
use crate::domain::revocation::RevokedSessions;
use crate::domain::revocation_feed::{Feed, FeedEntry, Subject};
use crate::services;

/// Reads every revocation recent enough that the tokens it refuses may
/// still be presented into `revoked` and `feed` (at start-up, before
/// serving); returns where the read ended, for [`Listener::from_tx`].
pub(crate) fn catch_up(
    conn: &mut PgConnection,
    revoked: &RevokedSessions,
    feed: &Feed,
    settings: &Settings,
    now: chrono::DateTime<chrono::Utc>,
) -> diesel::QueryResult<i64> {
    let horizon = services::revocation_horizon(settings);
    let since = now - TimeDelta::seconds(horizon);
    feed.begin(
        revocations::database_tag(conn)?,
        revocations::max_tx_before(conn, since)?,
    );
    let read = revocations::read_since(conn, 0, since)?;
    apply(revoked, feed, read.rows, read.xmin, horizon, now);
    Ok(read.xmin)
}

/// Puts rows of the log into the set, each kept for the horizon after it,
/// and into the feed.
pub(super) fn apply(
    revoked: &RevokedSessions,
    feed: &Feed,
    rows: Vec<RevocationRow>,
    watermark: i64,
    horizon: i64,
    now: chrono::DateTime<chrono::Utc>,
) {
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let keep_until = row.at.timestamp() + horizon;
        let subject = if let Some(sid) = row.session_id {
            revoked.insert(sid, keep_until);
            Subject::Session {
                sid,
                sub: row.user_id,
            }
        } else if let Some(before) = row.auth_before {
            revoked.insert_auth_before(whole_second_at_or_after(before), keep_until);
            Subject::AuthBefore(before)
        } else if let Some(kid) = row.kid {
            revoked.insert_kid(&kid, keep_until);
            Subject::Kid(kid)
        } else {
            continue;
        };
        entries.push(FeedEntry::new(
            row.id,
            row.tx,
            row.at,
            &row.reason,
            &subject,
        ));
    }
    feed.extend(entries, watermark, now);
}

/// `auth_time` is in whole seconds: "before 10.5" refuses 10 too.
fn whole_second_at_or_after(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}
