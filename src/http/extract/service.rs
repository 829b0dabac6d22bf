//! `ServiceClient`: the credentials of a service that verifies tokens
//! (API.md section 7), by HTTP Basic (`client_id:client_secret`, RFC 6749
//! 2.3.1) or, in a POST body, the `client_id` and `client_secret` form
//! fields. Checked against the in-memory registry: no database read, except
//! that an unknown `client_id` re-reads the services (at most once a
//! second), so a service created a moment ago works at once.
//!
//! Failures count toward a per-client-address budget of the size of the
//! login one (`rate_limit.per_ip_per_minute`, a budget of its own): every
//! attempt takes a token before its check and a success gives it back, so a
//! busy service with the right secret is never limited, while an address
//! that spent its budget on failures is refused before any check, a right
//! guess included, until it refills.

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use base64::Engine;
use futures_util::future::LocalBoxFuture;

use crate::error::{ApiError, Challenge, ErrorCode};
use crate::http::{client_addr, rate_limit, AppState};
use crate::services::service_registry::ServiceIdentity;

/// How long an unknown `client_id` waits for the listener to announce a
/// new service, in steps, before it re-reads the services itself.
const LISTENER_GRACE_STEP: std::time::Duration = std::time::Duration::from_millis(10);
const LISTENER_GRACE_STEPS: u32 = 10;

/// A service whose credentials checked out.
#[derive(Debug, Clone)]
pub(crate) struct ServiceClient(pub ServiceIdentity);

/// Credentials given as form fields of a POST body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormCredentials<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
}

impl FormCredentials<'_> {
    fn present(&self) -> bool {
        self.client_id.is_some() || self.client_secret.is_some()
    }
}

fn invalid_client(message: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidClient, message).with_challenge(Challenge::Basic)
}

/// The `client_id:client_secret` of an `Authorization: Basic` header:
/// `None` without one, `Some(Err)` for one that does not decode.
fn basic_credentials(req: &HttpRequest) -> Option<Result<(String, String), ()>> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    // Our ids and secrets are base64url, which form encoding leaves alone,
    // so a client that form-encodes them first (RFC 6749 2.3.1) sends the
    // same bytes and no decoding is needed.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    Some(
        decoded
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(id, secret)| (id.to_string(), secret.to_string()))
            })
            .ok_or(()),
    )
}

impl ServiceClient {
    /// Checks the request's service credentials: the Basic header, or the
    /// form fields of its body (one method only, as RFC 6749 2.3 requires).
    pub(crate) async fn authenticate(
        req: &HttpRequest,
        state: &web::Data<AppState>,
        form: FormCredentials<'_>,
    ) -> Result<Self, ApiError> {
        let ip = client_addr::client_ip(req, &state.proxies);
        let now = state.clock.now();
        rate_limit::count_attempt(&state.service_auth_limit, ip.as_deref(), now)?;
        let (id, secret) = match (basic_credentials(req), form.present()) {
            (Some(_), true) => Err(invalid_client(
                "Send the service credentials one way: HTTP Basic or form fields, not both.",
            )),
            (Some(Ok(pair)), false) => Ok(pair),
            (Some(Err(())), false) => Err(invalid_client(
                "The Authorization header is not valid HTTP Basic (client_id:client_secret).",
            )),
            (None, true) => match (form.client_id, form.client_secret) {
                (Some(id), Some(secret)) => Ok((id.to_string(), secret.to_string())),
                _ => Err(invalid_client(
                    "Both client_id and client_secret are required.",
                )),
            },
            (None, false) => Err(invalid_client(
                "Service credentials are required: HTTP Basic client_id:client_secret.",
            )),
        }?;
        if !state.services.knows(&id) {
            // A service created a moment ago: the listener hears of it within
            // milliseconds; failing that, one re-read (at most one a second
            // per instance: a caller waits for its turn).
            for _ in 0..LISTENER_GRACE_STEPS {
                actix_web::rt::time::sleep(LISTENER_GRACE_STEP).await;
                if state.services.knows(&id) {
                    break;
                }
            }
        }
        if !state.services.knows(&id) {
            let wait = state.services.unknown_reload_wait();
            if !wait.is_zero() {
                actix_web::rt::time::sleep(wait).await;
            }
            let (shared, unknown) = (state.clone(), id.clone());
            let reloaded = web::block(move || {
                let mut conn = shared.pool.get().ok()?;
                Some(shared.services.reload_for_unknown(&unknown, &mut conn))
            })
            .await;
            if !matches!(reloaded, Ok(Some(true))) {
                // Still spend the time a known id's check costs.
                let _ = state.services.authenticate(&id, &secret);
                return Err(rejected());
            }
        }
        let identity = state
            .services
            .authenticate(&id, &secret)
            .ok_or_else(rejected)?;
        state.service_auth_limit.refund(ip.as_deref());
        Ok(Self(identity))
    }
}

fn rejected() -> ApiError {
    invalid_client("The service credentials are not valid.")
}

/// HTTP Basic only: for routes without a body (the revocation feed).
impl FromRequest for ServiceClient {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(ApiError::internal("application state missing"));
            };
            let none = FormCredentials {
                client_id: None,
                client_secret: None,
            };
            Self::authenticate(&req, &state, none).await
        })
    }
}
