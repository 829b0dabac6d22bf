//! Extractors for the caller's credentials: a Bearer access token, verified
//! without the database (signature, claims, and the in-memory revocation set).

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};

use super::AppState;
use crate::domain::tokens::{AccessClaims, TokenError};
use crate::error::{ApiError, Challenge, ErrorCode};

/// The raw Bearer token of the request, if it carries one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Invalid => ApiError::new(ErrorCode::InvalidToken, "The token is not valid."),
        TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, "The token has expired."),
    }
}

fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))
}

/// A verified access token whose session is not revoked.
pub struct Authenticated(pub AccessClaims);

impl Authenticated {
    fn extract(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = state(req)?;
        let Some(token) = bearer_token(req) else {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "An access token is required (Authorization: Bearer).",
            )
            .with_challenge(Challenge::Bearer));
        };
        let now = state.clock.now().timestamp();
        match verify_live_access(state, token, now) {
            Ok(claims) => Ok(Self(claims)),
            Err(AccessRefusal::Token(e)) => {
                Err(token_error(e).with_challenge(Challenge::BearerInvalidToken))
            }
            Err(AccessRefusal::Revoked) => Err(ApiError::new(
                ErrorCode::SessionRevoked,
                "This session has been revoked; sign in again.",
            )
            .with_challenge(Challenge::BearerInvalidToken)),
            Err(AccessRefusal::Stale) => Err(ApiError::new(
                ErrorCode::Unavailable,
                "Revocations cannot be confirmed current; try again shortly.",
            )
            .with_retry_after(state.settings.revocation.poll_seconds)),
        }
    }
}

/// Why an access token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessRefusal {
    /// Malformed, badly signed, expired...
    Token(TokenError),
    /// Its session, its sign-in time or its key is in the revocation set.
    Revoked,
    /// The revocation set could not be confirmed current for longer than
    /// `revocation.max_staleness_seconds`: no token is trusted.
    Stale,
}

/// The one check of an access token every route (and introspection) makes:
/// signature and claims, then the revocation set's three kinds of entry.
/// No database read.
pub fn verify_live_access(
    state: &AppState,
    token: &str,
    now: i64,
) -> Result<AccessClaims, AccessRefusal> {
    let max_staleness = state.settings.revocation.max_staleness_seconds;
    if max_staleness > 0 && state.listener.unconfirmed_for().as_secs() >= max_staleness {
        return Err(AccessRefusal::Stale);
    }
    let (claims, kid) = state
        .tokens
        .verify_access_and_kid(token, now)
        .map_err(AccessRefusal::Token)?;
    if state
        .revoked
        .refuses(&claims.sid, claims.auth_time, kid.as_deref())
    {
        return Err(AccessRefusal::Revoked);
    }
    Ok(claims)
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::extract(req))
    }
}
