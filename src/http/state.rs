//! `AppState`, what every handler shares, and the two ways a handler runs a
//! use case off the request threads: [`AppState::db`] with a pooled
//! connection, and [`AppState::check_password`] with the pool, behind a
//! place in the bcrypt queue.

use std::sync::Arc;

use actix_web::web;
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use uuid::Uuid;

use super::client_addr::ProxyTrust;
use super::metrics::Metrics;
use super::rate_limit::{self, RateLimiter};
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::DbPool;
use crate::domain::bcrypt_threads::HashSlots;
use crate::domain::revocation::RevokedSessions;
use crate::domain::revocation_feed::Feed;
use crate::domain::tokens::Tokens;
use crate::error::ApiError;
use crate::listener::ListenerStatus;
use crate::services::refresh::Refresher;
use crate::services::service_registry::ServiceRegistry;
use crate::services::session_policy::REVOKED_ALL;
use crate::services::{revocation_horizon, Unexpected};

/// What every handler shares.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub tokens: Arc<Tokens>,
    /// Refreshes, their rotations batched (see `db::rotation_queue`).
    pub(crate) refresher: Refresher,
    pub revoked: Arc<RevokedSessions>,
    /// The revocation feed this instance serves (`/revocations`).
    pub feed: Arc<Feed>,
    pub listener: Arc<ListenerStatus>,
    pub clock: Clock,
    /// Verified against for unknown usernames (see `services::accounts`).
    pub(crate) dummy_hash: Arc<str>,
    /// This instance's Prometheus registry (`/metrics`).
    pub(crate) metrics: Arc<Metrics>,
    /// The per-client-IP limit on login and register (this instance only).
    pub(crate) rate_limit: RateLimiter,
    /// The services whose credentials introspection and the revocation
    /// feed accept (section 7), kept current by the listener.
    pub services: Arc<ServiceRegistry>,
    /// The per-client-IP limit on failed service credentials (this
    /// instance only; see `extract::service`).
    pub(crate) service_auth_limit: RateLimiter,
    /// `server.public_url`, or `http://<host>:<port>` as bound: the base of
    /// the discovery document's URLs, without a trailing `/`.
    pub(crate) public_url: String,
    /// The per-session limit on refreshes (this instance only).
    pub(crate) refresh_limit: RateLimiter<Uuid>,
    /// Whose `X-Forwarded-For` is believed.
    pub(crate) proxies: ProxyTrust,
    /// The bound on password checks waiting for bcrypt.
    pub(crate) hash_slots: HashSlots,
    /// `/openapi.json`, built once from the route table at start-up.
    pub(crate) openapi: Arc<[u8]>,
}

impl AppState {
    /// Runs `f` with a pooled connection on the blocking pool: how a handler
    /// reaches the database. A connection that cannot be had is the use
    /// case's own `Unexpected` error, mapped in `error.rs` like any other.
    pub(crate) async fn db<T, E>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Unexpected> + Send + 'static,
    {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get().map_err(Unexpected::from)?;
            f(&mut conn)
        })
        .await
        .unwrap_or_else(|e| Err(Unexpected::Interrupted(e.to_string()).into()))
    }

    /// Runs a use case that checks or hashes a password (login, register, a
    /// password change) on the blocking pool. It first takes a place in the
    /// queue for bcrypt (`auth.max_pending_hashes`), or answers `503` with
    /// `Retry-After` at once; and it gets the pool, not a connection, because
    /// it lets go of its connection during the hash.
    pub(crate) async fn check_password<T, E>(
        &self,
        f: impl FnOnce(&DbPool) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let slot = self
            .hash_slots
            .try_take()
            .ok_or_else(ApiError::busy_hashing)?;
        let pool = self.pool.clone();
        web::block(move || {
            let _slot = slot;
            f(&pool)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(Into::into)
    }

    /// Counts an attempt at login, registration or a password change from
    /// the client address `ip` (`rate_limit.per_ip_per_minute`, this instance);
    /// `429 rate_limited` with `Retry-After` when its budget is spent.
    pub(crate) fn limit_client(&self, ip: Option<&str>) -> Result<(), ApiError> {
        rate_limit::count_attempt(&self.rate_limit, ip, self.clock.now())
    }

    /// Counts a refresh of `session` (`rate_limit.refresh_per_session_per_minute`).
    pub(crate) fn limit_refresh(&self, session: Uuid) -> Result<(), ApiError> {
        rate_limit::check_session(&self.refresh_limit, session, self.clock.now())
    }

    /// Refuses the access tokens of sessions just revoked on this instance at
    /// once (the other instances hear of them through the database), and
    /// counts them for `/metrics` under `reason`.
    pub(crate) fn remember_revoked(
        &self,
        reason: &'static str,
        revoked: Vec<Uuid>,
        now: DateTime<Utc>,
    ) {
        self.metrics.revoked(reason, revoked.len());
        let keep_until = now.timestamp() + revocation_horizon(&self.settings);
        self.revoked
            .extend(revoked.into_iter().map(|id| (id, keep_until)));
    }

    /// Refuses here at once the access tokens of every session signed in
    /// before `auth_before` (the other instances as soon as their listener
    /// reads the log entry), and counts the `revoked` sessions.
    pub(crate) fn remember_signed_out_before(
        &self,
        auth_before: DateTime<Utc>,
        revoked: i64,
        now: DateTime<Utc>,
    ) {
        self.revoked.insert_auth_before(
            auth_before.timestamp(),
            now.timestamp() + revocation_horizon(&self.settings),
        );
        self.metrics
            .revoked(REVOKED_ALL, usize::try_from(revoked).unwrap_or(0));
    }
}
