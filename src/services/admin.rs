//! What administrators (and the command line) do to users and sessions. Each
//! change, its event and its revocation notices commit together.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::events::{self, EventKind, NewEvent};
use crate::db::retry;
use crate::db::sessions::{self, Which};
use crate::db::users;
use crate::db::StoreError;

use super::Unexpected;

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

/// Who asks for an administrative action. The command line is an operator
/// holding the database's credentials: trusted, and recorded as no actor.
/// An administrator on the API is recorded by id, and may not ban or delete
/// their own account (nobody would be left to undo it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Operator,
    Admin(Uuid),
}

impl Actor {
    /// The events' `actor`.
    pub(crate) fn id(self) -> Option<Uuid> {
        match self {
            Self::Operator => None,
            Self::Admin(id) => Some(id),
        }
    }

    /// Refuses an administrator's ban or deletion of their own account.
    fn may_act_on(self, user_id: Uuid) -> Result<(), AdminError> {
        match self {
            Self::Admin(id) if id == user_id => Err(AdminError::OwnAccount),
            _ => Ok(()),
        }
    }
}

fn existing_user(conn: &mut PgConnection, user_id: Uuid) -> Result<users::UserRow, AdminError> {
    users::find(conn, user_id)?.ok_or(AdminError::NotFound)
}

/// The user, locked until the transaction ends, so that a concurrent
/// change of the same user waits or is seen.
fn locked_user(conn: &mut PgConnection, user_id: Uuid) -> Result<users::UserRow, AdminError> {
    users::find_for_update(conn, user_id)?.ok_or(AdminError::NotFound)
}

/// Whether `user_id` may use the admin routes now: read at every call, so a
/// demoted or banned administrator loses them at once.
pub(crate) fn is_active_admin(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, Unexpected> {
    Ok(users::find(conn, user_id)?.is_some_and(|u| u.admin && !u.is_banned(now)))
}

/// A user as the admin routes show them.
#[derive(Debug, Clone)]
pub(crate) struct UserOverview {
    pub user: users::UserRow,
    /// Sessions neither revoked nor expired.
    pub active_sessions: i64,
}

/// One page of users whose name starts with `prefix` (any case), in
/// `(lower(username), id)` order, continuing after the user `after`.
/// Keyset pagination: users added or removed between pages neither shift
/// nor repeat the others.
pub(crate) fn list_users(
    conn: &mut PgConnection,
    prefix: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<UserOverview>, AdminError> {
    if prefix.is_some_and(|q| q.contains('\0')) {
        // No username has a NUL byte, and PostgreSQL text cannot even hold
        // one (the query would fail): nobody's name starts with it.
        return Ok(Vec::new());
    }
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

pub(crate) fn user_overview(
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

/// Bans a user (until `until`, or until unbanned) and revokes every session
/// of theirs; returns the revoked session ids.
pub fn ban(
    conn: &mut PgConnection,
    actor: Actor,
    user_id: Uuid,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    actor.may_act_on(user_id)?;
    retry::transaction(conn, |conn| {
        locked_user(conn, user_id)?;
        users::set_ban(conn, user_id, true, until, reason)?;
        let revoked = sessions::revoke(conn, user_id, Which::AllOfUser, "user_banned", now)?;
        events::record(
            conn,
            NewEvent::new(EventKind::UserBanned, now)
                .user(user_id)
                .actor(actor.id())
                .detail(serde_json::json!({
                    "reason": reason,
                    "until": until,
                    "revoked": revoked.len(),
                })),
        )?;
        Ok(revoked)
    })
}

/// Lifts a user's ban; it revokes nothing.
pub fn unban(
    conn: &mut PgConnection,
    actor: Actor,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    conn.transaction(|conn| {
        locked_user(conn, user_id)?;
        users::set_ban(conn, user_id, false, None, None)?;
        Ok(events::record(
            conn,
            NewEvent::new(EventKind::UserUnbanned, now)
                .user(user_id)
                .actor(actor.id()),
        )?)
    })
}

/// Deletes a user. Their sessions are revoked first, so that the revocation
/// notices reach every instance's set (deleting the rows alone would leave
/// their access tokens working elsewhere until expiry); the `user_deleted`
/// event keeps the user's id and all their session ids. Returns the ids
/// revoked now.
pub fn delete_user(
    conn: &mut PgConnection,
    actor: Actor,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    actor.may_act_on(user_id)?;
    retry::transaction(conn, |conn| {
        let user = locked_user(conn, user_id)?;
        let revoked = sessions::revoke(conn, user_id, Which::AllOfUser, "user_deleted", now)?;
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
                .actor(actor.id())
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
pub(crate) fn user_sessions(
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

/// Revokes every live session of a user; returns their ids.
pub fn revoke_sessions_of_user(
    conn: &mut PgConnection,
    actor: Actor,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    existing_user(conn, user_id)?;
    Ok(super::sessions::revoke_all_of_user(
        conn,
        user_id,
        actor.id(),
        now,
    )?)
}

/// Revokes one session, anyone's; revoking a revoked one changes nothing.
/// Returns its id if it was live until now.
pub(crate) fn revoke_session(
    conn: &mut PgConnection,
    actor: Actor,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AdminError> {
    let session = sessions::find(conn, session_id)?.ok_or(AdminError::NotFound)?;
    Ok(super::sessions::revoke_one(
        conn,
        &session,
        actor.id(),
        "admin_revoked",
        None,
        now,
    )?)
}

/// The event log, newest first.
pub(crate) fn list_events(
    conn: &mut PgConnection,
    user_id: Option<Uuid>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<events::EventRow>, AdminError> {
    Ok(events::list(conn, user_id, before, limit)?)
}
