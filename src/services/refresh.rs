//! Rotating a refresh token: one compare-and-swap on the session row, a
//! grace window for concurrent callers, and replay detection.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::{issue_pair, whole_seconds, RefreshState, TokenPair, Unexpected, UserSummary};
use crate::config::Settings;
use crate::db::events::{self, EventKind, NewEvent};
use crate::db::rotation::{self, Lifetimes, Rotated, Rotation};
use crate::db::rotation_queue::{Outcome, QueueCounts, RotationQueue};
use crate::db::sessions::{self, Which};
use crate::db::users;
use crate::db::{DbPool, StoreError};
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

/// Refreshes for the request handlers: the compare-and-swap goes through
/// the [`RotationQueue`], together with the other requests' (the fast path:
/// the pair is then signed on the request's own thread); a rotation that did
/// not apply is explained, and a failed batch retried alone, on the
/// blocking pool, as [`refresh`] does.
pub(crate) struct Refresher {
    queue: Arc<RotationQueue>,
    pool: DbPool,
    tokens: Arc<Tokens>,
    settings: Arc<Settings>,
}

impl Refresher {
    pub(crate) fn new(pool: DbPool, tokens: Arc<Tokens>, settings: Arc<Settings>) -> Self {
        let queue = RotationQueue::new(pool.clone(), lifetimes(&settings));
        Self {
            queue,
            pool,
            tokens,
            settings,
        }
    }

    /// What the rotation queue has done (`/metrics`).
    pub(crate) fn queue_counts(&self) -> QueueCounts {
        self.queue.counts()
    }

    /// Rotates the session of a verified refresh token (see [`refresh`]).
    pub(crate) async fn refresh(
        &self,
        claims: RefreshClaims,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, RefreshError> {
        let rotation = rotation_of(&claims, ip.clone(), now);
        let new_jti = rotation.new_jti;
        match self.queue.rotate(rotation).await {
            Outcome::Rotated(rotated) => Ok(pair_of(&self.tokens, rotated, new_jti, now)?),
            Outcome::Unavailable(why) => {
                Err(Unexpected::Store(StoreError::Unavailable(why)).into())
            }
            Outcome::NotApplied => {
                self.blocking(move |conn, tokens, settings| {
                    explain_failed_rotation(conn, tokens, settings, &claims, ip.as_deref(), now)
                })
                .await
            }
            Outcome::RunAlone => {
                self.blocking(move |conn, tokens, settings| {
                    refresh(conn, tokens, settings, &claims, ip.as_deref(), now)
                })
                .await
            }
        }
    }

    /// Runs `f` on the blocking pool with a pooled connection.
    async fn blocking(
        &self,
        f: impl FnOnce(&mut PgConnection, &Tokens, &Settings) -> Result<TokenPair, RefreshError>
            + Send
            + 'static,
    ) -> Result<TokenPair, RefreshError> {
        let (pool, tokens, settings) = (
            self.pool.clone(),
            Arc::clone(&self.tokens),
            Arc::clone(&self.settings),
        );
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(Unexpected::from)?;
            f(&mut conn, &tokens, &settings)
        })
        .await
        .unwrap_or_else(|e| Err(Unexpected::Interrupted(e.to_string()).into()))
    }
}

fn lifetimes(settings: &Settings) -> Lifetimes {
    Lifetimes {
        refresh_ttl_seconds: settings.auth.refresh_ttl_seconds,
        session_max_seconds: settings.auth.session_max_seconds,
    }
}

/// The rotation a refresh token asks for: a new `jti` at `now`.
fn rotation_of(claims: &RefreshClaims, ip: Option<String>, now: DateTime<Utc>) -> Rotation {
    Rotation {
        session_id: claims.sid,
        presented_jti: claims.jti,
        new_jti: Uuid::new_v4(),
        now: whole_seconds(now),
        ip,
    }
}

/// The pair a rotation that applied hands out.
fn pair_of(
    tokens: &Tokens,
    rotated: Rotated,
    new_jti: Uuid,
    now: DateTime<Utc>,
) -> Result<TokenPair, Unexpected> {
    let state = RefreshState {
        session_id: rotated.session_id,
        jti: new_jti,
        issued_at: whole_seconds(now),
        expires_at: rotated.expires_at,
        signed_in_at: rotated.created_at,
    };
    let user = UserSummary {
        id: rotated.user_id,
        username: rotated.username,
        name: rotated.name,
        admin: rotated.admin,
    };
    Ok(issue_pair(tokens, user, state, now)?)
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
    let rotation = rotation_of(claims, ip.map(str::to_owned), now);
    let new_jti = rotation.new_jti;
    let Some(rotated) = rotation::rotate(conn, &[rotation], lifetimes(settings))?.pop() else {
        return Ok(None);
    };
    Ok(Some(pair_of(tokens, rotated, new_jti, now)?))
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
