//! The `sessions` table: one row per sign-in. Rotation is one
//! compare-and-swap `UPDATE`; every revocation announces the revoked ids on
//! [`REVOCATION_CHANNEL`](super::REVOCATION_CHANNEL) in the same statement.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Double, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::schema::sessions;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub current_jti: Uuid,
    pub previous_jti: Option<Uuid>,
    pub rotated_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub current_jti: Uuid,
    pub rotated_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

pub fn insert(conn: &mut PgConnection, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// What a successful rotation returns: enough to sign the new pair without
/// another query.
#[derive(Debug, QueryableByName)]
pub struct Rotated {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub username: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Bool)]
    pub admin: bool,
}

/// The new state a rotation writes.
pub struct Rotation<'a> {
    pub session_id: Uuid,
    pub presented_jti: Uuid,
    pub new_jti: Uuid,
    pub now: DateTime<Utc>,
    pub refresh_ttl_seconds: i64,
    pub session_max_seconds: i64,
    /// The client's address, for the `refreshed` event.
    pub ip: Option<&'a str>,
}

/// Rotates the session in one compare-and-swap: it succeeds only while the
/// presented `jti` is still the current one, the session is live and its
/// user not banned. Of concurrent callers exactly one wins; the others see
/// `None` and work out why from a fresh read. Reading first and writing
/// after would let two callers both "win" with the same token.
///
/// The `refreshed` event is written by the same statement, so a rotation
/// costs one round trip and the event cannot be lost or half-written.
pub fn rotate(conn: &mut PgConnection, r: &Rotation<'_>) -> QueryResult<Option<Rotated>> {
    diesel::sql_query(
        "WITH rotated AS (UPDATE sessions AS s \
         SET previous_jti = s.current_jti, current_jti = $1, rotated_at = $2, \
             last_used_at = $2, \
             expires_at = LEAST($2 + make_interval(secs => $3), \
                                s.created_at + make_interval(secs => $4)) \
         FROM users AS u \
         WHERE s.id = $5 AND s.current_jti = $6 AND s.revoked_at IS NULL \
           AND s.expires_at > $2 AND u.id = s.user_id \
           AND NOT (u.banned AND (u.banned_until IS NULL OR u.banned_until > $2)) \
         RETURNING s.id, s.user_id, s.expires_at, u.username, u.name, u.admin), \
         logged AS (INSERT INTO events (at, kind, user_id, session_id, ip) \
           SELECT $2, 'refreshed', user_id, id, $7 FROM rotated) \
         SELECT user_id, expires_at, username, name, admin FROM rotated",
    )
    .bind::<SqlUuid, _>(r.new_jti)
    .bind::<Timestamptz, _>(r.now)
    .bind::<Double, _>(r.refresh_ttl_seconds as f64)
    .bind::<Double, _>(r.session_max_seconds as f64)
    .bind::<SqlUuid, _>(r.session_id)
    .bind::<SqlUuid, _>(r.presented_jti)
    .bind::<Nullable<Text>, _>(r.ip)
    .get_result(conn)
    .optional()
}

#[derive(QueryableByName)]
struct RevokedId {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Which of a user's live sessions to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    One(Uuid),
    AllOfUser,
    AllOfUserExcept(Uuid),
}

/// Revokes live sessions of `user_id` and announces each revoked id on the
/// revocation channel in the same statement; returns the ids revoked now
/// (already revoked sessions are left as they were).
pub fn revoke(
    conn: &mut PgConnection,
    user_id: Uuid,
    scope: Scope,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    let (filter, session) = match scope {
        Scope::One(id) => ("AND id = $4", Some(id)),
        Scope::AllOfUser => ("", None),
        Scope::AllOfUserExcept(id) => ("AND id <> $4", Some(id)),
    };
    let sql = format!(
        "WITH revoked AS ( \
           UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
           WHERE user_id = $3 AND revoked_at IS NULL {filter} \
           RETURNING id) \
         SELECT r.id FROM revoked AS r \
         CROSS JOIN LATERAL (SELECT pg_notify('{channel}', r.id::text)) AS announced",
        channel = super::REVOCATION_CHANNEL
    );
    let query = diesel::sql_query(sql)
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(reason)
        .bind::<SqlUuid, _>(user_id);
    let rows: Vec<RevokedId> = match session {
        Some(id) => query.bind::<SqlUuid, _>(id).load(conn)?,
        None => query.load(conn)?,
    };
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// A revoked session the revocation set must still hold.
#[derive(Debug, QueryableByName)]
pub struct RecentlyRevoked {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub revoked_at: DateTime<Utc>,
}

/// Sessions revoked at or after `since` (start-up and listener catch-up).
pub fn revoked_since(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
) -> QueryResult<Vec<RecentlyRevoked>> {
    diesel::sql_query(
        "SELECT id, revoked_at FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at >= $1",
    )
    .bind::<Timestamptz, _>(since)
    .load(conn)
}

/// A user's sessions, newest first; live ones only unless `include_revoked`.
pub fn list_for_user(
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
