//! What administrators (and the command line) do to users and sessions. Each
//! change, its event and its revocation notices commit together.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::events::{self, EventKind, NewEvent};
use crate::db::retry;
use crate::db::sessions::{self, Scope};
use crate::db::users;
use crate::db::StoreError;

/// Bans a user (until `until`, or until unbanned) and revokes every session
/// of theirs; returns the revoked session ids.
pub fn ban(
    conn: &mut PgConnection,
    user_id: Uuid,
    actor: Option<Uuid>,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    retry::transaction(conn, |conn| {
        users::set_ban(conn, user_id, true, until, reason)?;
        let revoked = sessions::revoke(conn, user_id, Scope::AllOfUser, "user_banned", now)?;
        events::record(
            conn,
            NewEvent::new(EventKind::UserBanned, now)
                .user(user_id)
                .actor(actor)
                .detail(serde_json::json!({
                    "reason": reason,
                    "until": until,
                    "revoked": revoked.len(),
                })),
        )?;
        Ok(revoked)
    })
}

pub fn unban(
    conn: &mut PgConnection,
    user_id: Uuid,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        users::set_ban(conn, user_id, false, None, None)?;
        events::record(
            conn,
            NewEvent::new(EventKind::UserUnbanned, now)
                .user(user_id)
                .actor(actor),
        )
    })
}

/// Revokes every live session of a user; returns their ids.
pub fn revoke_user_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    retry::transaction(conn, |conn| {
        let revoked = sessions::revoke(conn, user_id, Scope::AllOfUser, "admin_revoked", now)?;
        for session in &revoked {
            events::record(
                conn,
                NewEvent::new(EventKind::SessionRevoked, now)
                    .user(user_id)
                    .session(*session)
                    .actor(actor),
            )?;
        }
        Ok(revoked)
    })
}

/// What an administrator's request can run into.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such user or session.
    #[error("not found")]
    NotFound,
    /// An administrator tried to ban or delete their own account.
    #[error("an administrator cannot do that to their own account")]
    OwnAccount,
    /// The listing's `after` names no user.
    #[error("unknown cursor")]
    UnknownCursor,
    #[error(transparent)]
    Unexpected(#[from] super::Unexpected),
}

impl From<diesel::result::Error> for AdminError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl retry::Conflict for AdminError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Unexpected(super::Unexpected::Store(StoreError::Query(e))) if e.is_conflict())
    }
}

fn existing_user(conn: &mut PgConnection, user_id: Uuid) -> Result<users::UserRow, AdminError> {
    users::find(conn, user_id)?.ok_or(AdminError::NotFound)
}

/// Whether `user_id` may use the admin routes now: read at every call, so a
/// demoted or banned administrator loses them at once.
pub fn is_active_admin(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    Ok(users::find(conn, user_id)?.is_some_and(|u| u.admin && !u.is_banned(now)))
}

/// A user as the admin routes show them.
#[derive(Debug, Clone)]
pub struct UserOverview {
    pub user: users::UserRow,
    /// Sessions neither revoked nor expired.
    pub active_sessions: i64,
}

/// One page of users whose name starts with `prefix` (any case), in
/// `(lower(username), id)` order, continuing after the user `after`.
/// Keyset pagination: users added or removed between pages neither shift
/// nor repeat the others.
pub fn list_users(
    conn: &mut PgConnection,
    prefix: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<UserOverview>, AdminError> {
    let after = match after {
        Some(id) => {
            let user = users::find(conn, id)?.ok_or(AdminError::UnknownCursor)?;
            Some((user.username.to_lowercase(), id))
        }
        None => None,
    };
    let prefix = prefix.map(str::to_lowercase);
    let page = users::list_page(
        conn,
        prefix.as_deref(),
        after.as_ref().map(|(name, id)| (name.as_str(), *id)),
        limit,
    )?;
    let ids: Vec<Uuid> = page.iter().map(|u| u.id).collect();
    let counts = sessions::count_live_by_user(conn, &ids, now)?;
    Ok(page
        .into_iter()
        .map(|user| UserOverview {
            active_sessions: counts.get(&user.id).copied().unwrap_or(0),
            user,
        })
        .collect())
}

pub fn user_overview(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<UserOverview, AdminError> {
    let user = existing_user(conn, user_id)?;
    let counts = sessions::count_live_by_user(conn, &[user_id], now)?;
    Ok(UserOverview {
        active_sessions: counts.get(&user_id).copied().unwrap_or(0),
        user,
    })
}

/// An administrator bans another user (see [`ban`]); returns the revoked
/// session ids.
pub fn ban_user(
    conn: &mut PgConnection,
    actor: Uuid,
    user_id: Uuid,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    if actor == user_id {
        return Err(AdminError::OwnAccount);
    }
    retry::transaction(conn, |conn| {
        users::find_for_update(conn, user_id)?.ok_or(AdminError::NotFound)?;
        Ok(ban(conn, user_id, Some(actor), reason, until, now)?)
    })
}

pub fn unban_user(
    conn: &mut PgConnection,
    actor: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    conn.transaction(|conn| {
        users::find_for_update(conn, user_id)?.ok_or(AdminError::NotFound)?;
        Ok(unban(conn, user_id, Some(actor), now)?)
    })
}

/// Deletes a user. Their sessions are revoked first, so that the revocation
/// notices reach every instance's set (deleting the rows alone would leave
/// their access tokens working elsewhere until expiry); the `user_deleted`
/// event keeps the user's id and all their session ids. Returns the ids
/// revoked now.
pub fn delete_user(
    conn: &mut PgConnection,
    actor: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    if actor == user_id {
        return Err(AdminError::OwnAccount);
    }
    retry::transaction(conn, |conn| {
        let user = users::find_for_update(conn, user_id)?.ok_or(AdminError::NotFound)?;
        let revoked = sessions::revoke(conn, user_id, Scope::AllOfUser, "user_deleted", now)?;
        // Every session of the user, including ones revoked earlier, for the
        // record; instances keep refusing their tokens from the
        // `revocations` log, which outlives the rows.
        let all: Vec<Uuid> = sessions::list_for_user(conn, user_id, true, now)?
            .into_iter()
            .map(|s| s.id)
            .collect();
        events::record(
            conn,
            NewEvent::new(EventKind::UserDeleted, now)
                .user(user_id)
                .actor(Some(actor))
                .detail(serde_json::json!({
                    "username": user.username,
                    "revoked": revoked.len(),
                    "sessions": all,
                })),
        )?;
        users::delete(conn, user_id)?;
        Ok(revoked)
    })
}

/// A user's sessions, newest first (with revoked and ended ones if asked).
pub fn user_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    include_revoked: bool,
    now: DateTime<Utc>,
) -> Result<Vec<sessions::SessionRow>, AdminError> {
    existing_user(conn, user_id)?;
    Ok(sessions::list_for_user(
        conn,
        user_id,
        include_revoked,
        now,
    )?)
}

/// An administrator revokes every session of a user (see
/// [`revoke_user_sessions`]).
pub fn revoke_sessions_of(
    conn: &mut PgConnection,
    actor: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    existing_user(conn, user_id)?;
    Ok(revoke_user_sessions(conn, user_id, Some(actor), now)?)
}

/// An administrator revokes one session; revoking a revoked one changes
/// nothing. Returns the id if it was revoked now.
pub fn revoke_session(
    conn: &mut PgConnection,
    actor: Uuid,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    let session = sessions::find(conn, session_id)?.ok_or(AdminError::NotFound)?;
    Ok(revoke_one(
        conn,
        &session,
        actor,
        "admin_revoked",
        None,
        now,
    )?)
}

/// Revokes one session for `actor` (an administrator, or its own user),
/// with a `session_revoked` event, in one transaction; returns its id if it
/// was live until now.
pub fn revoke_one(
    conn: &mut PgConnection,
    session: &sessions::SessionRow,
    actor: Uuid,
    reason: &str,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    conn.transaction(|conn| {
        let revoked = sessions::revoke(conn, session.user_id, Scope::One(session.id), reason, now)?;
        if !revoked.is_empty() {
            events::record(
                conn,
                NewEvent::new(EventKind::SessionRevoked, now)
                    .user(session.user_id)
                    .session(session.id)
                    .actor(Some(actor))
                    .ip(ip),
            )?;
        }
        Ok(revoked)
    })
}

/// The event log, newest first.
pub fn list_events(
    conn: &mut PgConnection,
    user_id: Option<Uuid>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<events::EventRow>, AdminError> {
    Ok(events::list(conn, user_id, before, limit)?)
}
