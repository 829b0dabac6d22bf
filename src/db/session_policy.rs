//! Queries on the `sessions` table for the session policy: the session cap's
//! least recently used sessions, signing everyone out in batches, and the
//! names users give their sessions.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::schema::sessions;
use super::sessions::SessionRow;

/// The user's live sessions beyond the `keep` most recently used: the ones a
/// session cap must end. Ties on
/// `last_used_at` (sessions used within the same second) go to the older
/// sign-in, so the choice is the same whoever asks.
pub(crate) fn least_recently_used(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: i64,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((
            sessions::last_used_at.desc(),
            sessions::created_at.desc(),
            sessions::id.desc(),
        ))
        .offset(keep.max(0))
        .select(sessions::id)
        .load(conn)
}

/// Where a batched revocation has got to: the last session it looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchCursor {
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) id: Uuid,
}

impl BatchCursor {
    /// Before every session (none was created before 1970).
    pub(crate) fn start() -> Self {
        Self {
            created_at: DateTime::UNIX_EPOCH,
            id: Uuid::nil(),
        }
    }
}

#[derive(QueryableByName)]
struct BatchOutcome {
    #[diesel(sql_type = BigInt)]
    revoked: i64,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Revokes (reason `reason`) the next `limit` sessions, in `(created_at,
/// id)` order after `after`, that are live at `now` and were created before
/// `auth_before`. One statement, so its row locks last only as long as it
/// runs; the caller commits each batch on its own. No notification and no
/// revocation-log row per session: the caller writes one `auth_before` entry
/// that covers them all.
///
/// Returns how many were revoked and the cursor of the next batch, or `None`
/// when no session is left to look at.
pub(crate) fn revoke_batch_created_before(
    conn: &mut PgConnection,
    auth_before: DateTime<Utc>,
    after: BatchCursor,
    limit: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<(i64, BatchCursor)>> {
    // The batch walks `sessions_live_created`; expired but unrevoked sessions
    // are stepped over (the cursor moves past them) rather than revoked.
    let outcome: Option<BatchOutcome> = diesel::sql_query(
        "WITH batch AS ( \
           SELECT id, created_at FROM sessions \
           WHERE revoked_at IS NULL AND created_at < $1 AND (created_at, id) > ($2, $3) \
           ORDER BY created_at, id LIMIT $4), \
         revoked AS ( \
           UPDATE sessions AS s SET revoked_at = $5, revoked_reason = $6 \
           FROM batch AS b \
           WHERE s.id = b.id AND s.revoked_at IS NULL AND s.expires_at > $5 \
           RETURNING s.id) \
         SELECT (SELECT count(*) FROM revoked) AS revoked, l.created_at, l.id \
         FROM (SELECT created_at, id FROM batch ORDER BY created_at DESC, id DESC LIMIT 1) AS l",
    )
    .bind::<Timestamptz, _>(auth_before)
    .bind::<Timestamptz, _>(after.created_at)
    .bind::<SqlUuid, _>(after.id)
    .bind::<BigInt, _>(limit)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(reason)
    .get_result(conn)
    .optional()?;
    Ok(outcome.map(|o| {
        (
            o.revoked,
            BatchCursor {
                created_at: o.created_at,
                id: o.id,
            },
        )
    }))
}

/// Names (or, with `None`, un-names) one of the user's live sessions;
/// returns it as it is now, or `None` when the user has no such live session.
pub(crate) fn rename(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Option<SessionRow>> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now)),
    )
    .set(sessions::name.eq(name))
    .returning(SessionRow::as_returning())
    .get_result(conn)
    .optional()
}

/// The latest "signed in before" cut-off among the revocation-log entries
/// written at or after `since` (the `revocations_at` index finds them).
pub(crate) fn latest_auth_before(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
) -> QueryResult<Option<DateTime<Utc>>> {
    use diesel::sql_types::Nullable;
    #[derive(QueryableByName)]
    struct Latest {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        auth_before: Option<DateTime<Utc>>,
    }
    let latest: Latest = diesel::sql_query(
        "SELECT max(auth_before) AS auth_before FROM revocations \
         WHERE at >= $1 AND auth_before IS NOT NULL",
    )
    .bind::<Timestamptz, _>(since)
    .get_result(conn)?;
    Ok(latest.auth_before)
}
