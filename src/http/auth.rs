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

/// Whether a verified access token has been revoked since it was issued:
/// the one check the access-token routes and introspection share, from the
/// in-memory revocation set (no database read).
pub fn is_revoked(state: &AppState, claims: &AccessClaims) -> bool {
    state.revoked.contains(&claims.sid)
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
        let claims = state
            .tokens
            .verify_access(token, now)
            .map_err(|e| token_error(e).with_challenge(Challenge::BearerInvalidToken))?;
        if is_revoked(state, &claims) {
            return Err(ApiError::new(
                ErrorCode::SessionRevoked,
                "This session has been revoked; sign in again.",
            )
            .with_challenge(Challenge::BearerInvalidToken));
        }
        Ok(Self(claims))
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::extract(req))
    }
}
