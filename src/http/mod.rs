//! The HTTP layer: routes, extractors, request and response shapes. Handlers
//! parse, call a service inside `web::block`, and shape the answer.

mod account;
mod admin;
mod admin_policy;
pub mod auth;
pub mod body;
pub mod browser;
pub mod client_addr;
pub mod cors;
pub mod ephemeral;
pub mod feed;
pub mod jwks;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
mod routes;
pub mod service_client;
mod service_routes;
pub mod web_app;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::DbPool;
use crate::domain::revocation::RevokedSessions;
use crate::domain::revocation_feed::Feed;
use crate::domain::tokens::Tokens;
use crate::error::ApiError;
use crate::listener::ListenerStatus;
use crate::services::revocation_horizon;
use crate::services::service_registry::ServiceRegistry;

/// What every handler shares.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub tokens: Arc<Tokens>,
    pub revoked: Arc<RevokedSessions>,
    /// The revocation feed this instance serves (`/revocations`).
    pub feed: Arc<Feed>,
    pub listener: Arc<ListenerStatus>,
    pub clock: Clock,
    /// Verified against for unknown usernames (see `services::accounts`).
    pub dummy_hash: Arc<str>,
    /// This instance's Prometheus registry (`/metrics`).
    pub metrics: metrics::Metrics,
    /// The per-client-IP limit on login and register (this instance only).
    pub rate_limit: rate_limit::RateLimiter,
    /// The services whose credentials introspection and the revocation
    /// feed accept (section 7), kept current by the listener.
    pub services: Arc<ServiceRegistry>,
    /// The per-client-IP limit on failed service credentials (this
    /// instance only; see `service_client`).
    pub service_auth_limit: rate_limit::RateLimiter,
    /// `server.public_url`, or `http://<host>:<port>` as bound: the base of
    /// the discovery document's URLs, without a trailing `/`.
    pub public_url: String,
    /// The per-session limit on refreshes (this instance only).
    pub refresh_limit: rate_limit::RateLimiter<Uuid>,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: client_addr::ProxyTrust,
    /// The bound on password checks waiting for bcrypt.
    pub hash_slots: crate::domain::bcrypt_threads::HashSlots,
    /// `serve --ephemeral`: the `/ephemeral/*` routes are served.
    pub ephemeral: bool,
}

pub use routes::configure;

/// Runs blocking work (diesel, bcrypt) on the blocking pool, off the request
/// threads.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    web::block(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(Into::into)
}

/// A place in the queue for bcrypt (`auth.max_pending_hashes`), taken
/// before a login, registration or password change does any work, or
/// `503 unavailable` with `Retry-After` at once.
pub fn hash_slot(state: &AppState) -> Result<crate::domain::bcrypt_threads::HashSlot, ApiError> {
    state
        .hash_slots
        .try_take()
        .ok_or_else(ApiError::busy_hashing)
}

/// The client's address (see [`client_addr`]).
pub fn client_ip(req: &HttpRequest, state: &AppState) -> Option<String> {
    client_addr::client_ip(req, &state.proxies)
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(512).collect())
}

/// `204 No Content`.
pub fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// Refuses the access tokens of sessions just revoked on this instance at
/// once (the other instances hear of them through the database), and counts
/// them for `/metrics` under `reason`.
pub fn remember_revoked(
    state: &AppState,
    reason: &'static str,
    revoked: Vec<Uuid>,
    now: DateTime<Utc>,
) {
    state.metrics.revoked(reason, revoked.len());
    let keep_until = now.timestamp() + revocation_horizon(&state.settings);
    state
        .revoked
        .extend(revoked.into_iter().map(|id| (id, keep_until)));
}
