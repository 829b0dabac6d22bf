//! The routes about the service itself: `/health`, `/ready`, the public
//! keys (`/.well-known/jwks.json`), `/metrics` and `/openapi.json`.

use actix_web::http::header::{CacheControl, CacheDirective};
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::StoreError;
use crate::domain::tokens::PublicJwk;
use crate::error::{ApiError, ErrorCode};
use crate::http::doc::ErrorBody;
use crate::http::metrics::Gauges;
use crate::http::AppState;

type State = web::Data<AppState>;

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Answers while the process runs.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, body = Status, description = "The process runs")))]
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Ready when the database answers and the revocation listener has caught up.
#[utoipa::path(get, path = "/ready", tag = "service", responses(
    (status = 200, body = Status, description = "Ready"),
    (status = 503, body = ErrorBody, description = "unavailable: the database or the listener is not ready"),
))]
pub(crate) async fn ready(state: State) -> Result<HttpResponse, ApiError> {
    state
        .db(|conn| {
            // Whatever the failure, /ready says "unavailable"; the conversion
            // still lets the pool drop a connection that was lost.
            conn.batch_execute("SELECT 1").map_err(|e| {
                drop(StoreError::from(e));
                ApiError::unavailable()
            })
        })
        .await?;
    if !state.listener.is_healthy() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "The revocation listener is catching up with the database.",
        )
        .with_retry_after(1));
    }
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}

/// A JWK Set (RFC 7517).
#[derive(Serialize, ToSchema)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// An Ed25519 public key as RFC 8037 writes it in a JWK Set.
#[derive(Serialize, ToSchema)]
#[schema(as = PublicJwk)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    /// The raw 32-byte public key, base64url without padding.
    x: String,
    kid: String,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

impl From<PublicJwk> for Jwk {
    fn from(key: PublicJwk) -> Self {
        let PublicJwk {
            kty,
            crv,
            x,
            kid,
            alg,
            use_,
        } = key;
        Self {
            kty,
            crv,
            x,
            kid,
            alg,
            use_,
        }
    }
}

/// The public keys other services verify keyward's access tokens with
/// (RFC 7517), from the key set in memory: the keys that verify now: the signing key and retired keys whose tokens
/// may still be presented.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    responses((status = 200, body = JwkSet,
        description = "The public keys that verify access tokens; empty under HS256 (a secret is never published)"))
)]
pub(crate) async fn jwks(state: State) -> HttpResponse {
    let now = state.clock.unix_seconds();
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            // How long a verifier may cache the set: a rotated-in key is
            // published this long before it signs, so a cached set always
            // holds the key of any token; retired keys stay published
            // until their last token has expired.
            CacheDirective::MaxAge(
                u32::try_from(state.settings.auth.key_publish_seconds).unwrap_or(0),
            ),
        ]))
        .json(JwkSet {
            keys: state
                .tokens
                .public_jwks(now)
                .into_iter()
                .map(Jwk::from)
                .collect(),
        })
}

/// Prometheus metrics: this instance's counters and the gauges read now.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses(
        (status = 200, body = String, content_type = "text/plain; version=0.0.4",
         description = "Prometheus text format"),
        (status = 500, body = ErrorBody, description = "internal"),
    )
)]
pub(crate) async fn metrics(state: State) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    if state.metrics.live_sessions_due(now.timestamp()) {
        count_live_sessions(&state, now).await;
    }
    let pool = state.pool.state();
    let (content_type, body) = state.metrics.render(Gauges {
        pool_idle: i64::from(pool.idle_connections),
        pool_connections: i64::from(pool.connections),
        pool_max: i64::from(state.pool.max_size()),
        listener_healthy: state.listener.is_healthy(),
        verifying_keys: state.tokens.verifying_keys(now.timestamp()),
        revoked_in_memory: state.revoked.len(),
        rotation: state.refresher.queue_counts(),
    })?;
    Ok(HttpResponse::Ok().content_type(content_type).body(body))
}

/// How long a scrape waits for a pool connection to count sessions: a busy
/// pool must not hold up `/metrics`, which matters most at such times.
const COUNT_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);

/// Counts the live sessions for their gauge, which otherwise keeps its last
/// value: the scrape answers either way. Its own short checkout, not
/// [`AppState::db`], for that reason.
async fn count_live_sessions(state: &AppState, now: DateTime<Utc>) {
    let pool = state.pool.clone();
    let counted = web::block(move || {
        let mut conn = pool
            .get_timeout(COUNT_CHECKOUT_TIMEOUT)
            .map_err(|e| e.to_string())?;
        crate::db::sessions::count_live(&mut conn, now).map_err(|e| e.to_string())
    })
    .await;
    match counted {
        Ok(Ok(live)) => state.metrics.set_live_sessions(live),
        Ok(Err(e)) => log::warn!("cannot count live sessions: {e}"),
        Err(e) => log::warn!("cannot count live sessions: {e}"),
    }
}

/// The OpenAPI document of every route (see `http::routes`).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .content_type("application/json")
        .body(state.openapi.to_vec())
}
