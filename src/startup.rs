//! Building the server: prepare the database, the pool, the keys and the
//! revocation listener, then bind (port 0 picks a free port) and report the
//! port.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{Condition, Logger};
use actix_web::{web, App, HttpServer};

use crate::cleanup::{self, CleanupHandle};
use crate::clock::Clock;
use crate::clock_sync::{self, ClockSyncHandle};
use crate::config::Settings;
use crate::db::{self, drain::PoolDrain};
use crate::domain::revocation::RevokedSessions;
use crate::domain::revocation_feed::Feed;
use crate::domain::tokens::{TokenSettings, Tokens};
use crate::error::ApiError;
use crate::http::{self, AppState};
use crate::listener::{self, Listener, ListenerHandle};
use crate::services;
use crate::services::refresh::Refresher;
use crate::services::service_registry::ServiceRegistry;

/// What kind of instance to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An ordinary server.
    Serve,
    /// `serve --ephemeral` (API.md section 8): the `/ephemeral/*` routes
    /// too, and a short shutdown (it is thrown away).
    Ephemeral,
}

/// A bound, not yet running server.
pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
    drain: Arc<PoolDrain>,
    _clock_sync: ClockSyncHandle,
    _listener: ListenerHandle,
    _cleanup: CleanupHandle,
}

impl Application {
    /// Everything up to binding the port; the database is created and
    /// migrated if needed.
    pub fn build(settings: Settings, clock: Clock) -> Result<Self, String> {
        Self::build_as(settings, clock, Mode::Serve)
    }

    /// [`Application::build`] for a given [`Mode`].
    pub fn build_as(settings: Settings, clock: Clock, mode: Mode) -> Result<Self, String> {
        let settings = Arc::new(settings);
        db::prepare_database(settings.database.url.expose())?;
        let (pool, drain) = db::build_pool(&settings)?;
        // First, so that everything below reads the database's time.
        let clock_sync = clock_sync::spawn(pool.clone(), clock.clone())
            .map_err(|e| format!("cannot start the clock alignment: {e}"))?;
        let now = clock.now();
        let feed = Arc::new(Feed::new(services::revocation_horizon(&settings)));
        let registry = Arc::new(ServiceRegistry::new());
        let (keys, revoked, from_tx) = {
            let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
            services::keys::prepare(&mut conn, &settings, now).map_err(|e| e.to_string())?;
            registry
                .reload(&mut conn)
                .map_err(|e| format!("database: {e}"))?;
            let keys =
                services::keys::load(&mut conn, &settings, now).map_err(|e| e.to_string())?;
            let revoked = RevokedSessions::new();
            let from_tx = listener::catch_up(&mut conn, &revoked, &feed, &settings, now)
                .map_err(|e| format!("database: {e}"))?;
            (keys, Arc::new(revoked), from_tx)
        };
        let tokens = Arc::new(Tokens::new(
            TokenSettings {
                issuer: settings.auth.issuer.clone(),
                audience: settings.auth.audience.clone(),
                access_ttl_seconds: settings.auth.access_ttl_seconds,
                leeway_seconds: settings.auth.leeway_seconds,
            },
            keys,
        ));
        let dummy_hash = services::accounts::dummy_hash(settings.auth.bcrypt_cost)
            .map_err(|e| format!("bcrypt: {e}"))?;
        let (listener_handle, listener_status) = Listener {
            settings: settings.clone(),
            revoked: revoked.clone(),
            feed: feed.clone(),
            tokens: tokens.clone(),
            clock: clock.clone(),
            from_tx,
            hooks: vec![registry.clone()],
        }
        .spawn()
        .map_err(|e| format!("cannot start the revocation listener: {e}"))?;

        let cleanup_handle = cleanup::spawn(pool.clone(), settings.clone(), clock.clone())
            .map_err(|e| format!("cannot start the cleanup job: {e}"))?;

        let proxies = http::client_addr::ProxyTrust::new(
            settings.server.trust_proxy,
            settings.trusted_proxy_nets().map_err(|e| e.to_string())?,
        );
        let max_pending_hashes = settings.max_pending_hashes();
        let address = (settings.server.host.as_str(), settings.server.port);
        let tcp = TcpListener::bind(address)
            .map_err(|e| format!("cannot bind {}:{}: {e}", address.0, address.1))?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        log::info!("keyward listening on http://{local}");
        let public_url = settings
            .server
            .public_url()
            .map_or_else(|| format!("http://{local}"), str::to_string);

        let refresher = Refresher::new(pool.clone(), tokens.clone(), settings.clone());
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            pool,
            tokens,
            refresher,
            revoked,
            feed,
            listener: listener_status,
            clock,
            dummy_hash: dummy_hash.into(),
            metrics: Arc::new(http::metrics::Metrics::new().map_err(|e| format!("metrics: {e}"))?),
            rate_limit: http::rate_limit::RateLimiter::new(&settings.rate_limit),
            services: registry,
            service_auth_limit: http::rate_limit::RateLimiter::new(&settings.rate_limit),
            public_url,
            refresh_limit: http::rate_limit::RateLimiter::per_session(&settings.rate_limit),
            proxies,
            hash_slots: crate::domain::bcrypt_threads::HashSlots::new(max_pending_hashes),
            openapi: openapi_json(mode == Mode::Ephemeral)?,
        });

        let app_state = state.clone();
        let ephemeral = mode == Mode::Ephemeral;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::invalid_request(format!("The query string is invalid: {e}")).into()
                }))
                .app_data(
                    web::PathConfig::default().error_handler(|_, _| ApiError::not_found().into()),
                )
                .wrap(http::cors::CorsPolicy::new(app_state.settings.clone()))
                .wrap(http::edge::Edge::new(app_state.metrics.clone()))
                // The access log costs a formatted line per request even when
                // its level is filtered out; it is only built when it is kept.
                .wrap(Condition::new(
                    log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info),
                    Logger::new("%{method}xi %U %s %Dms")
                        .custom_request_replace("method", |req| req.method().to_string()),
                ))
                .configure(|cfg| http::configure(cfg, ephemeral))
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::not_found())
                }))
        })
        .worker_max_blocking_threads(blocking_threads(max_pending_hashes))
        .listen(tcp)
        .map_err(|e| format!("cannot listen: {e}"))?
        .shutdown_timeout(match mode {
            Mode::Serve => 10,
            Mode::Ephemeral => 1,
        })
        .client_request_timeout(Duration::from_secs(10))
        .run();

        Ok(Self {
            server,
            port: local.port(),
            state,
            drain,
            _clock_sync: clock_sync,
            _listener: listener_handle,
            _cleanup: cleanup_handle,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for tests and tools that need the pool or the set.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Closes the request pool (see `PoolDrain`): for the process's exit,
    /// once the server has stopped.
    pub fn drain(&self) -> Arc<PoolDrain> {
        self.drain.clone()
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (finishing in-flight requests) or until
    /// stopped through the handle.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            _listener,
            _cleanup,
            _clock_sync,
            ..
        } = self;
        let result = server.await;
        drop(_cleanup);
        drop(_clock_sync);
        drop(_listener);
        result
    }
}

/// Blocking threads per worker: actix's own budget (512 shared by the
/// workers) for the database work of every route, plus one for each
/// password check that may wait for bcrypt. A waiting check holds its
/// blocking thread, and all of them may land on one worker: counted on top,
/// they can never take the threads that refresh, logout and the admin
/// routes need.
fn blocking_threads(max_pending_hashes: usize) -> usize {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    (512 / workers).max(1) + max_pending_hashes
}

/// `/openapi.json`'s body, built once from the route table.
fn openapi_json(ephemeral: bool) -> Result<std::sync::Arc<[u8]>, String> {
    serde_json::to_vec(&http::document(ephemeral))
        .map(Into::into)
        .map_err(|e| format!("the OpenAPI document: {e}"))
}
