//! The `sessions` table: one row per sign-in. Rotation is one
//! compare-and-swap `UPDATE`; every revocation logs the revoked ids in the
//! `revocations` table and announces them on
//! `REVOCATION_CHANNEL` in the same statement.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::schema::sessions;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) current_jti: Uuid,
    pub(crate) previous_jti: Option<Uuid>,
    pub(crate) rotated_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_used_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) revoked_reason: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) ip: Option<String>,
    /// The name the user gave the session, if any.
    pub(crate) name: Option<String>,
    /// The address the session was last used from (sign-in or refresh).
    pub(crate) last_ip: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub(crate) struct NewSession<'a> {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) current_jti: Uuid,
    pub(crate) rotated_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_used_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) ip: Option<&'a str>,
    pub(crate) last_ip: Option<&'a str>,
}

pub(crate) fn insert(conn: &mut PgConnection, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

pub(crate) fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

#[derive(QueryableByName)]
struct RevokedId {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Which of a user's live sessions to revoke.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    One(Uuid),
    AllOfUser,
    AllOfUserExcept(Uuid),
}

/// Revokes live sessions of `user_id`, appends one row per revoked session
/// to the `revocations` log (with the feed's name for `reason`, see
/// [`feed_reason`](crate::domain::revocation::feed_reason)) and announces
/// each revoked id on the revocation channel, all in the same statement
/// (payload: `<session id> <unix second of the revocation>`); returns the ids
/// revoked now (already revoked sessions are left as they were).
pub(crate) fn revoke(
    conn: &mut PgConnection,
    user_id: Uuid,
    which: Which,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    let (filter, session) = match which {
        Which::One(id) => ("AND id = $5", Some(id)),
        Which::AllOfUser => ("", None),
        Which::AllOfUserExcept(id) => ("AND id <> $5", Some(id)),
    };
    // The rows are locked in `id` order first: two revocations of one user
    // (a `scope=all` logout and an administrator's) then queue behind each
    // other instead of locking in whatever order their scans meet the rows,
    // which can deadlock once refreshes have moved rows around.
    let sql = format!(
        "WITH locked AS ( \
           SELECT id FROM sessions WHERE user_id = $3 AND revoked_at IS NULL {filter} \
           ORDER BY id FOR UPDATE), \
         revoked AS ( \
           UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
           WHERE id IN (SELECT id FROM locked) AND revoked_at IS NULL \
           RETURNING id, user_id), \
         logged AS (INSERT INTO revocations (at, reason, session_id, user_id) \
           SELECT $1, $4, id, user_id FROM revoked) \
         SELECT r.id FROM revoked AS r \
         CROSS JOIN LATERAL (SELECT pg_notify('{channel}', \
           r.id::text || ' ' || floor(extract(epoch FROM $1))::bigint)) AS announced",
        channel = super::revocations::REVOCATION_CHANNEL
    );
    let query = diesel::sql_query(sql)
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(reason)
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(crate::domain::revocation::feed_reason(reason));
    let rows: Vec<RevokedId> = match session {
        Some(id) => query.bind::<SqlUuid, _>(id).load(conn)?,
        None => query.load(conn)?,
    };
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// A user's sessions, newest first; live ones only unless `include_revoked`.
pub(crate) fn list_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    include_revoked: bool,
    now: DateTime<Utc>,
) -> QueryResult<Vec<SessionRow>> {
    let mut query = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(SessionRow::as_select())
        .order(sessions::created_at.desc())
        .into_boxed();
    if !include_revoked {
        query = query
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now));
    }
    query.load(conn)
}

/// How many live sessions (not revoked, not expired) each of `user_ids` has,
/// in one grouped query; users without any are absent from the map.
pub(crate) fn count_live_by_user(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
    now: DateTime<Utc>,
) -> QueryResult<std::collections::HashMap<Uuid, i64>> {
    if user_ids.is_empty() {
        return Ok(Default::default());
    }
    let counts: Vec<(Uuid, i64)> = sessions::table
        .filter(sessions::user_id.eq_any(user_ids))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .group_by(sessions::user_id)
        .select((sessions::user_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(counts.into_iter().collect())
}

/// How many sessions are live (not revoked, not expired): one count for the
/// `/metrics` gauge, taken at most every few seconds, never per request.
pub(crate) fn count_live(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)
}

impl SessionRow {
    /// Neither revoked nor expired at `now`.
    pub(crate) fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }

    /// Whether `jti` is the refresh token this session replaced at most
    /// `grace_seconds` ago: a concurrent or retried refresh, not a replay.
    /// Counted in whole seconds on both sides: `rotated_at` is stored cut to
    /// the second, and comparing it with an uncut `now` would shorten the
    /// window by up to a second.
    pub(crate) fn in_grace(&self, jti: Uuid, now: DateTime<Utc>, grace_seconds: i64) -> bool {
        self.previous_jti == Some(jti)
            && now.timestamp() - self.rotated_at.timestamp() <= grace_seconds
    }

    /// Whether the session takes the refresh token `jti` now: its current
    /// one, or the one before inside the grace window.
    pub(crate) fn honours(&self, jti: Uuid, now: DateTime<Utc>, grace_seconds: i64) -> bool {
        jti == self.current_jti || self.in_grace(jti, now, grace_seconds)
    }
}
