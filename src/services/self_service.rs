//! What a signed-in user does to their own account: list and revoke their
//! sessions, change their password.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::{lockout, Unexpected};
use crate::config::RateLimitSettings;
use crate::db::events::{self, EventKind, NewEvent};
use crate::db::sessions::{self, SessionRow, Which};
use crate::db::{users, DbPool};
use crate::domain::{password, Password};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SelfServiceError {
    /// No such session among the caller's own (another user's included).
    #[error("not found")]
    NotFound,
    /// The current password given is wrong.
    #[error("wrong current password")]
    WrongPassword,
    #[error("user banned")]
    Banned,
    /// Too many wrong passwords in a row for this username (the login
    /// lockout): no check for this many seconds.
    #[error("too many failed password checks")]
    LockedOut { retry_after: i64 },
    /// The caller's own session (or user) is gone.
    #[error("session revoked")]
    Revoked,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<diesel::result::Error> for SelfServiceError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

/// The user's live sessions, newest first.
pub(crate) fn live_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<SessionRow>, SelfServiceError> {
    Ok(sessions::list_for_user(conn, user_id, false, now)?)
}

/// Revokes one of the user's own sessions (the current one too: that is a
/// logout). Another user's session is `NotFound`, never "forbidden", so
/// that session ids cannot be probed. Returns its id if it was live until
/// now (none if it was already revoked).
pub(crate) fn revoke_own_session(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, SelfServiceError> {
    let session = sessions::find(conn, session_id)?
        .filter(|s| s.user_id == user_id)
        .ok_or(SelfServiceError::NotFound)?;
    Ok(super::sessions::revoke_one(
        conn,
        &session,
        Some(user_id),
        "revoked_by_user",
        ip,
        now,
    )?)
}

/// A password change asked for from the session `session_id`.
pub(crate) struct PasswordChange {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub current: String,
    pub new: Password,
    pub ip: Option<String>,
}

/// Verifies the current password, stores the new one and revokes every
/// other session of the user, with a `password_changed` event, in one
/// transaction; returns the revoked session ids. No connection is held
/// during the two bcrypt computations.
///
/// The check of the current password is an attempt at the username's
/// lockout like a login's (a stolen access token must not buy unlimited
/// guesses); a wrong one is logged as `password_change_failed`.
pub(crate) fn change_password(
    pool: &DbPool,
    bcrypt_cost: u32,
    limits: &RateLimitSettings,
    change: &PasswordChange,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, SelfServiceError> {
    let user = {
        let mut conn = pool.get().map_err(Unexpected::from)?;
        let user = users::find(&mut conn, change.user_id)?.ok_or(SelfServiceError::Revoked)?;
        if user.is_banned(now) {
            return Err(SelfServiceError::Banned);
        }
        if let Err(locked) = lockout::take_attempt(&mut conn, limits, &user.username, now)? {
            return Err(SelfServiceError::LockedOut {
                retry_after: locked.retry_after,
            });
        }
        user
    };
    if !password::verify(&change.current, &user.password_hash) {
        let mut conn = pool.get().map_err(Unexpected::from)?;
        events::record(
            &mut conn,
            NewEvent::new(EventKind::PasswordChangeFailed, now)
                .user(user.id)
                .session(change.session_id)
                .actor(Some(user.id))
                .ip(change.ip.as_deref()),
        )?;
        return Err(SelfServiceError::WrongPassword);
    }
    let hash = change.new.hash(bcrypt_cost).map_err(Unexpected::from)?;
    let mut conn = pool.get().map_err(Unexpected::from)?;
    conn.transaction(|conn| {
        sessions::find(conn, change.session_id)?
            .filter(|s| s.user_id == user.id && s.is_live(now))
            .ok_or(SelfServiceError::Revoked)?;
        // Only over the hash just verified: if another change won meanwhile,
        // the password given is no longer the current one.
        if !users::replace_password_hash(conn, user.id, &user.password_hash, &hash)? {
            return Err(SelfServiceError::WrongPassword);
        }
        lockout::forget(conn, limits, &user.username)?;
        let revoked = sessions::revoke(
            conn,
            user.id,
            Which::AllOfUserExcept(change.session_id),
            "password_changed",
            now,
        )?;
        events::record(
            conn,
            NewEvent::new(EventKind::PasswordChanged, now)
                .user(user.id)
                .session(change.session_id)
                .actor(Some(user.id))
                .ip(change.ip.as_deref())
                .detail(serde_json::json!({"revoked": revoked.len()})),
        )?;
        Ok(revoked)
    })
}
