//! The HTTP layer: routes, extractors, request and response shapes. Handlers
//! parse, call a service inside `web::block`, and shape the answer.

mod account;
mod admin;
pub mod auth;
pub mod body;
pub mod browser;
pub mod cors;
pub mod ephemeral;
pub mod jwks;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
mod routes;
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
use crate::domain::tokens::Tokens;
use crate::error::ApiError;
use crate::listener::ListenerStatus;
use crate::services::revocation_horizon;

/// What every handler shares.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub tokens: Arc<Tokens>,
    pub revoked: Arc<RevokedSessions>,
    pub listener: Arc<ListenerStatus>,
    pub clock: Clock,
    /// Verified against for unknown usernames (see `services::accounts`).
    pub dummy_hash: Arc<str>,
    /// This instance's Prometheus registry (`/metrics`).
    pub metrics: metrics::Metrics,
    /// The per-client-IP limit on login and register (this instance only).
    pub rate_limit: rate_limit::RateLimiter,
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

/// The client's address: the peer, or with `server.trust_proxy` the first
/// `X-Forwarded-For` entry.
pub fn client_ip(req: &HttpRequest, settings: &Settings) -> Option<String> {
    if settings.server.trust_proxy {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 64);
        if let Some(ip) = forwarded {
            return Some(ip.to_string());
        }
    }
    req.peer_addr().map(|a| a.ip().to_string())
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
