//! Building the server: prepare the database, the pool, the keys and the
//! revocation listener, then bind (port 0 picks a free port) and report the
//! port.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, Logger};
use actix_web::{web, App, HttpServer};

use crate::cleanup::{self, CleanupHandle};
use crate::clock::Clock;
use crate::clock_sync::{self, ClockSyncHandle};
use crate::config::Settings;
use crate::db::{self, drain::PoolDrain};
use crate::domain::revocation::RevokedSessions;
use crate::domain::tokens::{TokenSettings, Tokens};
use crate::error::ApiError;
use crate::http::{self, AppState};
use crate::listener::{self, Listener, ListenerHandle};
use crate::services;

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
        let settings = Arc::new(settings);
        db::prepare_database(settings.database.url.expose())?;
        let (pool, drain) = db::build_pool(&settings)?;
        // First, so that everything below reads the database's time.
        let clock_sync = clock_sync::spawn(pool.clone(), clock.clone())
            .map_err(|e| format!("cannot start the clock alignment: {e}"))?;
        let now = clock.now();
        let (keys, revoked) = {
            let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
            services::keys::prepare(&mut conn, &settings, now).map_err(|e| e.to_string())?;
            let keys =
                services::keys::load(&mut conn, &settings, now).map_err(|e| e.to_string())?;
            let revoked = RevokedSessions::new();
            listener::catch_up(&mut conn, &revoked, &settings, now)
                .map_err(|e| format!("database: {e}"))?;
            (keys, Arc::new(revoked))
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
            tokens: tokens.clone(),
            clock: clock.clone(),
        }
        .spawn()
        .map_err(|e| format!("cannot start the revocation listener: {e}"))?;

        let cleanup_handle = cleanup::spawn(pool.clone(), settings.clone(), clock.clone())
            .map_err(|e| format!("cannot start the cleanup job: {e}"))?;

        let state = web::Data::new(AppState {
            settings: settings.clone(),
            pool,
            tokens,
            revoked,
            listener: listener_status,
            clock,
            dummy_hash: dummy_hash.into(),
            metrics: http::metrics::Metrics::new().map_err(|e| format!("metrics: {e}"))?,
            rate_limit: http::rate_limit::RateLimiter::new(&settings.rate_limit),
        });

        let address = (settings.server.host.as_str(), settings.server.port);
        let tcp = TcpListener::bind(address)
            .map_err(|e| format!("cannot bind {}:{}: {e}", address.0, address.1))?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        log::info!("keyward listening on http://{local}");

        let app_state = state.clone();
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
                .wrap(actix_web::middleware::from_fn(http::metrics::track))
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "no-referrer")),
                )
                .wrap(
                    Logger::new("%{method}xi %U %s %Dms")
                        .custom_request_replace("method", |req| req.method().to_string()),
                )
                .configure(http::configure)
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::not_found())
                }))
        })
        .listen(tcp)
        .map_err(|e| format!("cannot listen: {e}"))?
        .shutdown_timeout(10)
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

    /// Closes the request pool (see [`PoolDrain`]): for the process's exit,
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
