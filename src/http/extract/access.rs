//! The caller's access token: [`Authenticated`] verifies a Bearer token
//! without the database (signature, claims, and the in-memory revocation
//! set); [`Admin`] also reads, at every call, that its user is an active
//! administrator.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{Either, LocalBoxFuture};

use crate::domain::token_cache::Verified;
use crate::domain::tokens::{AccessClaims, RefreshClaims, TokenError, Tokens};
use crate::error::{ApiError, Challenge, ErrorCode};
use crate::http::AppState;
use crate::services;

/// The raw Bearer token of the request, if it carries one, as bytes: a
/// token that verified before is looked up by them (`Tokens`), and any other
/// is refused unless it is text.
pub(crate) fn bearer_bytes(req: &HttpRequest) -> Option<&[u8]> {
    let value = req.headers().get(AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, token) = (&value[..space], value[space + 1..].trim_ascii());
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// [`bearer_bytes`] as text (UTF-8 rather than `HeaderValue::to_str`'s
/// visible ASCII: the same for any token that can verify).
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    std::str::from_utf8(bearer_bytes(req)?).ok()
}

/// Verifies a token with this instance's keys. A token naming a `kid` this
/// instance does not know makes it re-read the keys from the database first
/// (another instance or `keys rotate` may have added it), at most once a
/// second; a token arriving meanwhile waits for that read, so a genuine new
/// key is never refused and a forged `kid` costs one read a second.
async fn verify_reloading<C>(
    state: &web::Data<AppState>,
    token: &str,
    verify: fn(&Tokens, &str, i64) -> Result<C, TokenError>,
) -> Result<C, TokenError> {
    let first = verify(&state.tokens, token, state.clock.unix_seconds());
    retry_after_reload(state, token, verify, first).await
}

/// `first`, the verification already made, or (when it failed on a `kid`
/// this instance does not know) `verify` again once the keys were re-read.
async fn retry_after_reload<C>(
    state: &web::Data<AppState>,
    token: &str,
    verify: fn(&Tokens, &str, i64) -> Result<C, TokenError>,
    first: Result<C, TokenError>,
) -> Result<C, TokenError> {
    if !matches!(first, Err(TokenError::Invalid)) {
        return first;
    }
    let Some(kid) = state.tokens.unknown_kid(token) else {
        return first;
    };
    // Reads are at most a second apart: wait for the next one (asleep, not
    // holding a thread), then take its result.
    let wait = state.tokens.kid_reload_wait();
    if !wait.is_zero() {
        actix_web::rt::time::sleep(wait).await;
    }
    let shared = state.clone();
    let known = web::block(move || {
        services::keys::reload_for_unknown_kid(
            &shared.pool,
            &shared.settings,
            &shared.tokens,
            &kid,
            shared.clock.now(),
        )
    })
    .await
    .unwrap_or(false);
    if !known {
        return first;
    }
    verify(&state.tokens, token, state.clock.unix_seconds())
}

/// An access token's claims and the `kid` that signed it (see
/// `verify_reloading`).
pub(crate) async fn verify_access_and_kid(
    state: &web::Data<AppState>,
    token: &str,
) -> Result<Arc<Verified>, TokenError> {
    verify_reloading(state, token, verify_access_text).await
}

/// `Tokens::verify_access_and_kid` for a token known to be text.
fn verify_access_text(tokens: &Tokens, token: &str, now: i64) -> Result<Arc<Verified>, TokenError> {
    tokens.verify_access_and_kid(token.as_bytes(), now)
}

/// A refresh token's claims (see `verify_reloading`).
pub(crate) async fn verify_refresh(
    state: &web::Data<AppState>,
    token: &str,
) -> Result<RefreshClaims, TokenError> {
    verify_reloading(state, token, Tokens::verify_refresh).await
}

pub(crate) fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))
}

/// A verified access token whose session is not revoked: shared with the
/// verified-token cache, not copied out of it.
pub(crate) struct Authenticated(Arc<Verified>);

impl Authenticated {
    pub(crate) fn claims(&self) -> &AccessClaims {
        &self.0.claims
    }

    /// The cache's entry for the token, with what it keeps beside the claims.
    pub(crate) fn verified(&self) -> &Verified {
        &self.0
    }

    /// The token's claims, or the contract's error for a refusal.
    fn answer(
        state: &AppState,
        outcome: Result<Arc<Verified>, AccessRefusal>,
    ) -> Result<Self, ApiError> {
        match outcome {
            Ok(verified) => Ok(Self(verified)),
            Err(AccessRefusal::Token(e)) => {
                Err(ApiError::from(e).with_challenge(Challenge::BearerInvalidToken))
            }
            Err(AccessRefusal::Revoked) => Err(ApiError::new(
                ErrorCode::SessionRevoked,
                "This session has been revoked; sign in again.",
            )
            .with_challenge(Challenge::BearerInvalidToken)),
            Err(AccessRefusal::Stale) => Err(stale(state)),
        }
    }
}

fn missing_bearer() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidToken,
        "An access token is required (Authorization: Bearer).",
    )
    .with_challenge(Challenge::Bearer)
}

/// `503`: the revocation set could not be confirmed current for too long
/// (see [`AccessRefusal::Stale`]).
pub(crate) fn stale(state: &AppState) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "Revocations cannot be confirmed current; try again shortly.",
    )
    .with_retry_after(state.settings.revocation.poll_seconds)
}

/// Why an access token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessRefusal {
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
/// A token naming a key this instance does not know yet waits for one
/// re-read of the keys (see `verify_reloading`).
pub(crate) async fn verify_live_access(
    state: &web::Data<AppState>,
    token: &str,
) -> Result<Arc<Verified>, AccessRefusal> {
    if let Some(outcome) = live_access_now(state, token.as_bytes()) {
        return outcome;
    }
    // `live_access_now` found an unknown `kid` (its verification said
    // `Invalid`): only the re-read of the keys is left to do.
    let verify = verify_access_text;
    let verified = retry_after_reload(state, token, verify, Err(TokenError::Invalid))
        .await
        .map_err(AccessRefusal::Token)?;
    refuse_revoked(state, verified)
}

/// [`verify_live_access`] without waiting: `None` only for a token naming a
/// key this instance does not know, which waits for a re-read of the keys.
/// Every other token (nearly all of them) is decided here, on the request's
/// own thread, with no future to allocate.
fn live_access_now(state: &AppState, token: &[u8]) -> Option<Result<Arc<Verified>, AccessRefusal>> {
    let max_staleness = state.settings.revocation.max_staleness_seconds;
    if max_staleness > 0 && state.listener.unconfirmed_for().as_secs() >= max_staleness {
        return Some(Err(AccessRefusal::Stale));
    }
    let now = state.clock.unix_seconds();
    match state.tokens.verify_access_and_kid(token, now) {
        Err(TokenError::Invalid)
            if std::str::from_utf8(token).is_ok_and(|t| state.tokens.unknown_kid(t).is_some()) =>
        {
            None
        }
        Err(e) => Some(Err(AccessRefusal::Token(e))),
        Ok(verified) => Some(refuse_revoked(state, verified)),
    }
}

/// The claims, unless the revocation set refuses their session, sign-in
/// time or key.
fn refuse_revoked(
    state: &AppState,
    verified: Arc<Verified>,
) -> Result<Arc<Verified>, AccessRefusal> {
    let (claims, kid) = (&verified.claims, verified.kid.as_deref());
    if state.revoked.refuses(&claims.sid, claims.auth_time, kid) {
        return Err(AccessRefusal::Revoked);
    }
    Ok(verified)
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future =
        Either<Ready<Result<Self, ApiError>>, LocalBoxFuture<'static, Result<Self, ApiError>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = match state(req) {
            Ok(state) => state,
            Err(e) => return Either::Left(ready(Err(e))),
        };
        let Some(token) = bearer_bytes(req) else {
            return Either::Left(ready(Err(missing_bearer())));
        };
        if let Some(outcome) = live_access_now(state, token) {
            return Either::Left(ready(Self::answer(state, outcome)));
        }
        // Only text gets here (`live_access_now` decides every other token):
        // the conversion changes nothing.
        let token = String::from_utf8_lossy(token).into_owned();
        let state = state.clone();
        Either::Right(Box::pin(async move {
            let outcome = verify_live_access(&state, &token).await;
            Self::answer(&state, outcome)
        }))
    }
}

/// An access token whose user is an administrator and not banned, read
/// from the database at every call, so a demoted or banned administrator
/// loses the admin routes at once.
pub(crate) struct Admin(pub AccessClaims);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = Authenticated::from_request(req, payload);
        let state = state(req).cloned();
        Box::pin(async move {
            let claims = authenticated.await?.claims().clone();
            let state = state?;
            let (user_id, now) = (claims.sub, state.clock.now());
            let allowed = state
                .db(move |conn| services::admin::is_active_admin(conn, user_id, now))
                .await?;
            if !allowed {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "This needs an administrator.",
                ));
            }
            Ok(Self(claims))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    fn with_authorization(value: &[u8]) -> HttpRequest {
        let value = HeaderValue::from_bytes(value).unwrap();
        TestRequest::default()
            .insert_header((AUTHORIZATION, value))
            .to_http_request()
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case_and_the_token_trimmed() {
        for header in [&b"Bearer a.b.c"[..], b"bearer a.b.c", b"BEARER   a.b.c  "] {
            let req = with_authorization(header);
            assert_eq!(bearer_bytes(&req), Some(&b"a.b.c"[..]));
            assert_eq!(bearer_token(&req), Some("a.b.c"));
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_carry_no_bearer_token() {
        for header in [&b"Basic a.b.c"[..], b"Bearer", b"Bearer   ", b"Bearera.b.c"] {
            assert_eq!(bearer_bytes(&with_authorization(header)), None);
        }
        assert_eq!(
            bearer_bytes(&TestRequest::default().to_http_request()),
            None
        );
    }

    #[test]
    fn a_token_that_is_not_text_has_bytes_but_no_text() {
        let req = with_authorization(b"Bearer a.b.\xff");
        assert_eq!(bearer_bytes(&req), Some(&b"a.b.\xff"[..]));
        assert_eq!(bearer_token(&req), None);
    }
}
