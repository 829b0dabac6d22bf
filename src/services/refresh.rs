//! Rotating a refresh token: one compare-and-swap on the session row, a
//! grace window for concurrent callers, and replay detection.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::{issue_pair, whole_seconds, RefreshState, TokenPair, Unexpected, UserSummary};
use crate::config::Settings;
use crate::db::events::{self, EventKind, NewEvent};
use crate::db::sessions::{self, Rotation, Which};
use crate::db::users;
use crate::domain::tokens::{RefreshClaims, TokenError, Tokens};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RefreshError {
    #[error(transparent)]
    Token(TokenError),
    /// The session was logged out, revoked, or has ended.
    #[error("session revoked")]
    Revoked,
    /// An old refresh token was replayed: the session is now revoked.
    #[error("refresh token reused")]
    Reused,
    #[error("user banned")]
    Banned,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<diesel::result::Error> for RefreshError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

/// Rotates the session of a verified refresh token.
///
/// The fast path is a single `UPDATE … WHERE current_jti = presented`: of
/// concurrent callers exactly one wins. A caller that loses reads the row to
/// learn why: the token it holds became the previous one moments ago (grace:
/// it gets the winner's refresh token), or it is a replay (the session is
/// revoked), or the session or user is no longer allowed.
pub(crate) fn refresh(
    conn: &mut PgConnection,
    tokens: &Tokens,
    settings: &Settings,
    claims: &RefreshClaims,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TokenPair, RefreshError> {
    if let Some(pair) = try_rotate(conn, tokens, settings, claims, ip, now)? {
        return Ok(pair);
    }
    explain_failed_rotation(conn, tokens, settings, claims, ip, now)
}

fn try_rotate(
    conn: &mut PgConnection,
    tokens: &Tokens,
    settings: &Settings,
    claims: &RefreshClaims,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<TokenPair>, RefreshError> {
    let now_s = whole_seconds(now);
    let new_jti = Uuid::new_v4();
    let rotation = Rotation {
        session_id: claims.sid,
        presented_jti: claims.jti,
        new_jti,
        now: now_s,
        refresh_ttl_seconds: settings.auth.refresh_ttl_seconds,
        session_max_seconds: settings.auth.session_max_seconds,
        ip,
    };
    let Some(rotated) = sessions::rotate(conn, &rotation)? else {
        return Ok(None);
    };
    let user = UserSummary {
        id: rotated.user_id,
        username: rotated.username,
        name: rotated.name,
        admin: rotated.admin,
    };
    let state = RefreshState {
        session_id: claims.sid,
        jti: new_jti,
        issued_at: now_s,
        expires_at: rotated.expires_at,
        signed_in_at: rotated.created_at,
    };
    Ok(Some(
        issue_pair(tokens, user, state, now).map_err(Unexpected::from)?,
    ))
}

/// The compare-and-swap did not apply: find out why from a fresh read.
fn explain_failed_rotation(
    conn: &mut PgConnection,
    tokens: &Tokens,
    settings: &Settings,
    claims: &RefreshClaims,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TokenPair, RefreshError> {
    let session = sessions::find(conn, claims.sid)?
        .filter(|s| s.user_id == claims.sub)
        .ok_or(RefreshError::Token(TokenError::Invalid))?;
    let user = users::find(conn, session.user_id)?.ok_or(RefreshError::Revoked)?;
    if user.is_banned(now) {
        return Err(RefreshError::Banned);
    }
    if !session.is_live(now) {
        return Err(RefreshError::Revoked);
    }
    if session.in_grace(claims.jti, now, settings.auth.reuse_grace_seconds) {
        // A concurrent or retried refresh: hand back the current refresh
        // token, byte for byte what the winner got, and a fresh access token.
        let state = RefreshState {
            session_id: session.id,
            jti: session.current_jti,
            issued_at: session.rotated_at,
            expires_at: session.expires_at,
            signed_in_at: session.created_at,
        };
        return Ok(
            issue_pair(tokens, UserSummary::from(user), state, now).map_err(Unexpected::from)?
        );
    }
    if session.current_jti == claims.jti {
        // Still current and allowed: the row changed between the update and
        // the read (a ban lifted, say). Try the swap once more.
        return try_rotate(conn, tokens, settings, claims, ip, now)?.ok_or(RefreshError::Revoked);
    }
    conn.transaction(|conn| {
        sessions::revoke(
            conn,
            session.user_id,
            Which::One(session.id),
            "reuse_detected",
            now,
        )?;
        events::record(
            conn,
            NewEvent::new(EventKind::ReuseDetected, now)
                .user(session.user_id)
                .session(session.id)
                .ip(ip)
                .detail(serde_json::json!({"jti": claims.jti})),
        )
    })?;
    Err(RefreshError::Reused)
}
