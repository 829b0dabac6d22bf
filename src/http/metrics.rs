//! `GET /metrics` in the Prometheus text format, and the middleware that
//! counts every request. Each application has a registry of its own (not a
//! process-wide one), so several instances in one process, as in the tests,
//! count apart.
//!
//! Labels are bounded: requests are labelled with the route *pattern* that
//! matched (`/admin/users/{id}`, never the raw path) or `unmatched`, with a
//! known method or `other`, and with the status code. Gauges that need the
//! database (live sessions) are refreshed at scrape time, at most every
//! `LIVE_SESSIONS_EVERY` seconds of the app's clock, never per request.

use std::cell::{OnceCell, RefCell};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::db::rotation_queue::QueueCounts;
use crate::error::ApiError;

/// How stale the live-session count may be, in seconds.
pub(crate) const LIVE_SESSIONS_EVERY: i64 = 10;

/// Every metric keyward exports.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    logins: IntCounterVec,
    refreshes: IntCounterVec,
    reuse_detections: IntCounter,
    revocations: IntCounterVec,
    live_sessions: IntGauge,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    listener_healthy: IntGauge,
    verifying_keys: IntGauge,
    revoked_in_memory: IntGauge,
    rotation_statements: IntCounter,
    rotations_batched: IntCounter,
    rotation_statements_failed: IntCounter,
    rotations_waiting: IntGauge,
    /// The rotation queue's counts at the last scrape.
    rotation_seen: Mutex<QueueCounts>,
    /// When (app clock, Unix seconds) live sessions were last counted.
    live_counted_at: Mutex<Option<i64>>,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

impl Metrics {
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Self {
            requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "keyward_http_requests_total",
                        "HTTP requests by route pattern, method and status.",
                    ),
                    &["route", "method", "status"],
                )?,
            )?,
            latency: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "keyward_http_request_duration_seconds",
                        "Time to answer an HTTP request, by route pattern.",
                    ),
                    &["route"],
                )?,
            )?,
            logins: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "keyward_logins_total",
                        "Login attempts by outcome: success or the error code answered.",
                    ),
                    &["outcome"],
                )?,
            )?,
            refreshes: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "keyward_refreshes_total",
                        "Refreshes with a validly signed refresh token, by outcome: \
                         success or the error code answered.",
                    ),
                    &["outcome"],
                )?,
            )?,
            reuse_detections: register(
                &r,
                IntCounter::new(
                    "keyward_refresh_reuse_detected_total",
                    "Replayed refresh tokens: each revoked its session.",
                )?,
            )?,
            revocations: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "keyward_sessions_revoked_total",
                        "Sessions revoked by this instance, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
            live_sessions: register(
                &r,
                IntGauge::new(
                    "keyward_live_sessions",
                    "Sessions neither revoked nor expired (counted at most every 10 s).",
                )?,
            )?,
            pool_connections: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "keyward_db_pool_connections",
                        "Database pool connections by state: idle or in_use.",
                    ),
                    &["state"],
                )?,
            )?,
            pool_max: register(
                &r,
                IntGauge::new(
                    "keyward_db_pool_max_connections",
                    "The database pool's size limit.",
                )?,
            )?,
            listener_healthy: register(
                &r,
                IntGauge::new(
                    "keyward_listener_healthy",
                    "1 while the revocation listener is connected and caught up, else 0.",
                )?,
            )?,
            verifying_keys: register(
                &r,
                IntGauge::new(
                    "keyward_signing_keys_verifying",
                    "Signing keys that still verify tokens (1, or more after a rotation).",
                )?,
            )?,
            revoked_in_memory: register(
                &r,
                IntGauge::new(
                    "keyward_revoked_sessions_in_memory",
                    "Sessions in this instance's revocation set (revoked within an access-token lifetime).",
                )?,
            )?,
            rotation_statements: register(
                &r,
                IntCounter::new(
                    "keyward_rotation_statements_total",
                    "Rotation statements sent to the database; each carries one or more refreshes.",
                )?,
            )?,
            rotations_batched: register(
                &r,
                IntCounter::new(
                    "keyward_rotation_statement_rotations_total",
                    "Refresh rotations carried by those statements.",
                )?,
            )?,
            rotation_statements_failed: register(
                &r,
                IntCounter::new(
                    "keyward_rotation_statements_failed_total",
                    "Rotation statements that failed (their refreshes answered 503 or ran alone).",
                )?,
            )?,
            rotations_waiting: register(
                &r,
                IntGauge::new(
                    "keyward_rotations_waiting",
                    "Refresh rotations waiting now for a statement.",
                )?,
            )?,
            rotation_seen: Mutex::default(),
            live_counted_at: Mutex::new(None),
            registry: r,
        })
    }

    fn outcome<T>(result: &Result<T, ApiError>) -> &'static str {
        match result {
            Ok(_) => "success",
            Err(e) => e.code.as_str(),
        }
    }

    /// Counts a login attempt's outcome.
    pub(crate) fn login<T>(&self, result: &Result<T, ApiError>) {
        self.logins
            .with_label_values(&[Self::outcome(result)])
            .inc();
    }

    /// Counts a refresh's outcome.
    pub(crate) fn refresh<T>(&self, result: &Result<T, ApiError>) {
        self.refreshes
            .with_label_values(&[Self::outcome(result)])
            .inc();
    }

    /// Counts a replayed refresh token (the revocation it causes is counted
    /// where it is remembered).
    pub(crate) fn reuse_detected(&self) {
        self.reuse_detections.inc();
    }

    /// Counts `count` sessions revoked for `reason` (a fixed word such as
    /// `logout`, `admin`, `password_changed`).
    pub(crate) fn revoked(&self, reason: &'static str, count: usize) {
        if count > 0 {
            self.revocations
                .with_label_values(&[reason])
                .inc_by(count as u64);
        }
    }

    /// [`observe_request`](Self::observe_request) for a route of the table,
    /// with the series this worker found for it before.
    pub(crate) fn observe_route(
        &self,
        route: &RouteSeries,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        let counter = {
            let mut known = route.requests.borrow_mut();
            match known.iter().find(|(m, s, _)| *m == method && *s == status) {
                Some((_, _, counter)) => counter.clone(),
                None => {
                    let labels = [&*route.pattern, method, status.as_str()];
                    let counter = self.requests.with_label_values(&labels);
                    known.push((method, status, counter.clone()));
                    counter
                }
            }
        };
        counter.inc();
        route
            .latency
            .get_or_init(|| self.latency.with_label_values(&[&*route.pattern]))
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn observe_request(
        &self,
        route: &str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        self.requests
            .with_label_values(&[route, method_label(method), status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Whether the live sessions are due a count at `now`; claims the
    /// count, so concurrent scrapes do not all go to the database.
    pub(crate) fn live_sessions_due(&self, now: i64) -> bool {
        let mut last = self
            .live_counted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| now < at + LIVE_SESSIONS_EVERY && now >= at) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// A bounded set of method labels.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A route's label (its pattern) and the series of it this worker has used:
/// carried by the route's resource as app data, so that the answered request
/// names its route without matching the path again, and a request finds its
/// series without hashing their labels (both were per request before).
pub(crate) struct RouteSeries {
    pattern: Box<str>,
    /// By method label and status; a handful per route.
    requests: RefCell<Vec<(&'static str, StatusCode, IntCounter)>>,
    latency: OnceCell<Histogram>,
}

impl RouteSeries {
    pub(crate) fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.into(),
            requests: RefCell::default(),
            latency: OnceCell::new(),
        }
    }
}

/// The gauges that are read, not counted, at each scrape.
pub(crate) struct Gauges {
    pub(crate) pool_idle: i64,
    pub(crate) pool_connections: i64,
    pub(crate) pool_max: i64,
    pub(crate) listener_healthy: bool,
    pub(crate) verifying_keys: usize,
    pub(crate) revoked_in_memory: usize,
    pub(crate) rotation: QueueCounts,
}

impl Metrics {
    /// Sets the gauges, then encodes everything: the content type and the
    /// body of `/metrics`.
    pub(crate) fn render(&self, gauges: Gauges) -> Result<(String, Vec<u8>), ApiError> {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let pool = &self.pool_connections;
        pool.with_label_values(&["idle"]).set(gauges.pool_idle);
        pool.with_label_values(&["in_use"])
            .set(gauges.pool_connections - gauges.pool_idle);
        self.pool_max.set(gauges.pool_max);
        self.listener_healthy
            .set(i64::from(gauges.listener_healthy));
        self.verifying_keys.set(count(gauges.verifying_keys));
        self.revoked_in_memory.set(count(gauges.revoked_in_memory));
        self.rotations_waiting.set(count(gauges.rotation.waiting));
        self.catch_up(gauges.rotation);
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        encoder
            .encode(&self.registry.gather(), &mut body)
            .map_err(ApiError::internal)?;
        Ok((encoder.format_type().to_string(), body))
    }

    /// The rotation queue keeps its own counts; its counters catch up at
    /// each scrape, by what changed since the last (under a lock, so that
    /// two scrapes at once add it once).
    fn catch_up(&self, now: QueueCounts) {
        let mut seen = self
            .rotation_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let add = |c: &IntCounter, total: u64, before: u64| c.inc_by(total.saturating_sub(before));
        add(&self.rotation_statements, now.statements, seen.statements);
        add(&self.rotations_batched, now.rotations, seen.rotations);
        add(&self.rotation_statements_failed, now.failed, seen.failed);
        *seen = now;
    }

    /// The live sessions, counted now (see [`Metrics::live_sessions_due`]).
    pub(crate) fn set_live_sessions(&self, live: i64) {
        self.live_sessions.set(live);
    }
}
