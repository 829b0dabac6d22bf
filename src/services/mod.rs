//! Use cases: each a plain function taking a connection (or the pool, where
//! it must let go of its connection during a bcrypt hash) and `now`, doing its
//! writes in one transaction. Nothing here knows about HTTP.

pub mod accounts;
pub mod admin;
pub mod key_rotation;
pub mod keys;
pub mod lockout;
pub mod refresh;
pub mod self_service;
pub mod service_registry;
pub mod session_policy;
pub mod sessions;
pub mod stats;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Settings;
use crate::db::StoreError;
use crate::domain::tokens::{AccessClaims, RefreshClaims, SignError, Tokens};

/// The user as a token pair and `/api/me` describe them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub name: Option<String>,
    pub admin: bool,
}

impl From<crate::db::users::UserRow> for UserSummary {
    fn from(user: crate::db::users::UserRow) -> Self {
        Self {
            id: user.id,
            username: user.username,
            name: user.name,
            admin: user.admin,
        }
    }
}

/// A freshly issued access token with the session's refresh token.
#[derive(Debug, Clone)]
pub(crate) struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// The access token's lifetime in whole seconds.
    pub expires_in: i64,
    /// Whole seconds until the refresh token's `exp`.
    pub refresh_expires_in: i64,
    pub session_id: Uuid,
    pub user: UserSummary,
    /// Sessions this sign-in ended to stay within the session cap
    /// (`auth.max_sessions_per_user`).
    pub superseded: Vec<Uuid>,
}

/// The refresh token a session currently honours, as stored: its `jti`,
/// issue and expiry times (whole seconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshState {
    pub session_id: Uuid,
    pub jti: Uuid,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session's creation: the access token's `auth_time`.
    pub signed_in_at: DateTime<Utc>,
}

/// Failures no client can fix.
#[derive(Debug, thiserror::Error)]
pub enum Unexpected {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("password hashing failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    /// The blocking pool dropped the call (the server is shutting down).
    #[error("the call was interrupted: {0}")]
    Interrupted(String),
}

impl From<diesel::result::Error> for Unexpected {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<diesel::r2d2::PoolError> for Unexpected {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Self::Store(e.into())
    }
}

/// Signs a pair. Signing is deterministic, so the same refresh state always
/// gives the very same refresh token string: that is how a refresh inside the
/// grace window hands back the token the first caller got.
pub(crate) fn issue_pair(
    tokens: &Tokens,
    user: UserSummary,
    refresh: RefreshState,
    now: DateTime<Utc>,
) -> Result<TokenPair, SignError> {
    let s = tokens.settings();
    let now_s = now.timestamp();
    let access = AccessClaims {
        iss: s.issuer.clone(),
        aud: s.audience.clone(),
        sub: user.id,
        sid: refresh.session_id,
        jti: Uuid::new_v4(),
        iat: now_s,
        exp: now_s + s.access_ttl_seconds,
        nbf: None,
        auth_time: refresh.signed_in_at.timestamp(),
        username: user.username.clone(),
        name: user.name.clone(),
        admin: user.admin,
    };
    let refresh_claims = RefreshClaims {
        iss: s.issuer.clone(),
        aud: s.audience.clone(),
        sub: user.id,
        sid: refresh.session_id,
        jti: refresh.jti,
        iat: refresh.issued_at.timestamp(),
        exp: refresh.expires_at.timestamp(),
        nbf: None,
    };
    Ok(TokenPair {
        access_token: tokens.sign_access(&access)?,
        refresh_token: tokens.sign_refresh(&refresh_claims)?,
        expires_in: s.access_ttl_seconds,
        refresh_expires_in: (refresh_claims.exp - now_s).max(0),
        session_id: refresh.session_id,
        user,
        superseded: Vec::new(),
    })
}

/// `now` cut to whole seconds: session times are stored that way so that
/// the refresh token they describe can be signed again byte for byte.
pub(crate) fn whole_seconds(now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// How long a revoked session's entry must stay in the revocation set: until
/// its last access token has expired.
pub(crate) fn revocation_horizon(settings: &Settings) -> i64 {
    settings.auth.access_ttl_seconds + settings.auth.leeway_seconds
}
