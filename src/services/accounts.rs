//! Registering users and signing them in.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::{
    issue_pair, lockout, session_policy, whole_seconds, RefreshState, TokenPair, Unexpected,
    UserSummary,
};
use crate::clock;
use crate::config::Settings;
use crate::db::events::{self, EventKind, NewEvent};
use crate::db::users::{self, NewUser, UserRow};
use crate::db::{sessions, DbPool};
use crate::domain::password;
use crate::domain::tokens::Tokens;
use crate::domain::{Password, Username};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RegisterError {
    #[error("username taken")]
    Taken,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Creates a user. The hash is computed before any connection is taken.
pub(crate) fn register(
    pool: &DbPool,
    username: &Username,
    password: &Password,
    name: Option<&str>,
    admin: bool,
    bcrypt_cost: u32,
    now: DateTime<Utc>,
) -> Result<UserRow, RegisterError> {
    let hash = password.hash(bcrypt_cost).map_err(Unexpected::from)?;
    let mut conn = pool.get().map_err(Unexpected::from)?;
    insert_user(&mut conn, username, &hash, name, admin, now)
}

/// Stores a user whose password is already hashed (the command line hashes
/// first, then opens its one connection).
pub(crate) fn insert_user(
    conn: &mut PgConnection,
    username: &Username,
    password_hash: &str,
    name: Option<&str>,
    admin: bool,
    now: DateTime<Utc>,
) -> Result<UserRow, RegisterError> {
    users::insert(
        conn,
        &NewUser {
            id: Uuid::new_v4(),
            username: username.as_str(),
            name,
            password_hash,
            admin,
            created_at: now,
        },
    )
    .map_err(Unexpected::from)?
    .ok_or(RegisterError::Taken)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("user banned")]
    Banned,
    #[error("too many failed logins")]
    LockedOut { retry_after: i64 },
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<diesel::result::Error> for LoginError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

/// Who is signing in, from where.
pub(crate) struct LoginAttempt {
    pub username: String,
    pub password: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Verifies the credentials and opens a session. The connection is let go
/// during the bcrypt verification, which runs even for an unknown username
/// (against `dummy_hash`) so that timing does not tell whether it exists.
pub(crate) fn login(
    pool: &DbPool,
    tokens: &Tokens,
    settings: &Settings,
    dummy_hash: &str,
    attempt: &LoginAttempt,
    now: DateTime<Utc>,
) -> Result<TokenPair, LoginError> {
    // Only a name that could be a username is looked up. Anything else (a
    // NUL byte, which PostgreSQL text cannot hold; non-ASCII letters, whose
    // lower case differs between Rust and PostgreSQL and would split one
    // account's lockout count over several keys) fails like an unknown
    // name, after the same dummy verification.
    let storable = Username::parse(&attempt.username).is_ok();
    let user = {
        let mut conn = pool.get().map_err(Unexpected::from)?;
        if storable {
            // Counted before the check, so that simultaneous guesses cannot
            // all pass a count read before any of them was recorded.
            if let Err(locked) =
                lockout::take_attempt(&mut conn, &settings.rate_limit, &attempt.username, now)?
            {
                return Err(LoginError::LockedOut {
                    retry_after: locked.retry_after,
                });
            }
            users::find_by_username(&mut conn, &attempt.username)?
        } else {
            None
        }
    };

    let hash = user
        .as_ref()
        .map_or(dummy_hash, |u| u.password_hash.as_str());
    let matches = password::verify(&attempt.password, hash);

    let mut conn = pool.get().map_err(Unexpected::from)?;
    let user = match user {
        Some(user) if matches => user,
        user => {
            // The attempt was counted before the check: only the event is left.
            let mut event = NewEvent::new(EventKind::LoginFailed, now).ip(attempt.ip.as_deref());
            if let Some(user) = &user {
                event = event.user(user.id);
            }
            events::record(&mut conn, event)?;
            return Err(LoginError::InvalidCredentials);
        }
    };

    let now_s = whole_seconds(now);
    let mut refresh = RefreshState {
        session_id: Uuid::new_v4(),
        jti: Uuid::new_v4(),
        issued_at: now_s,
        expires_at: clock::later(
            now_s,
            clock::seconds(
                settings
                    .auth
                    .refresh_ttl_seconds
                    .min(settings.auth.session_max_seconds),
            ),
        ),
        signed_in_at: now_s,
    };
    let (superseded, signed_in_at) = conn.transaction(|conn| {
        // The connection was let go during bcrypt: read the user again, and
        // lock the row, so that a ban or a password change made meanwhile
        // either sees this session (and revokes it) or is seen here.
        let current = users::find_for_update(conn, user.id)?;
        let Some(current) = current.filter(|c| c.password_hash == user.password_hash) else {
            return Err(LoginError::InvalidCredentials);
        };
        if current.is_banned(now) {
            events::record(
                conn,
                NewEvent::new(EventKind::LoginFailed, now)
                    .user(user.id)
                    .ip(attempt.ip.as_deref())
                    .detail(serde_json::json!({"reason": "banned"})),
            )?;
            return Ok(Err(LoginError::Banned));
        }
        let superseded = session_policy::make_room(
            conn,
            user.id,
            settings.auth.max_sessions_per_user,
            attempt.ip.as_deref(),
            now,
        )?;
        let signed_in_at = session_policy::sign_in_time(conn, now_s)?;
        sessions::insert(
            conn,
            &sessions::NewSession {
                id: refresh.session_id,
                user_id: user.id,
                current_jti: refresh.jti,
                rotated_at: now_s,
                created_at: signed_in_at,
                last_used_at: now_s,
                expires_at: refresh.expires_at,
                user_agent: attempt.user_agent.as_deref(),
                ip: attempt.ip.as_deref(),
                last_ip: attempt.ip.as_deref(),
            },
        )?;
        users::record_login(conn, user.id, now)?;
        lockout::forget(conn, &settings.rate_limit, &attempt.username)?;
        events::record(
            conn,
            NewEvent::new(EventKind::LoginSucceeded, now)
                .user(user.id)
                .session(refresh.session_id)
                .ip(attempt.ip.as_deref()),
        )?;
        Ok(Ok((superseded, signed_in_at)))
    })??;
    refresh.signed_in_at = signed_in_at;
    let mut pair =
        issue_pair(tokens, UserSummary::from(user), refresh, now).map_err(Unexpected::from)?;
    pair.superseded = superseded;
    Ok(pair)
}

/// A bcrypt hash of a random password at `cost`, verified against when the
/// username is unknown so that such a login costs as much as a real one.
pub(crate) fn dummy_hash(cost: u32) -> Result<String, bcrypt::BcryptError> {
    let random = Uuid::new_v4().to_string();
    match Password::parse(&random, "password") {
        Ok(p) => p.hash(cost),
        Err(_) => bcrypt::hash(random, cost),
    }
}
