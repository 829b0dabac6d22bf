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
use crate::config::Settings;
use crate::db;
use crate::domain::revocation::RevokedSessions;
use crate::domain::tokens::{TokenSettings, Tokens};
use crate::error::ApiError;
use crate::http::{self, AppState};
use crate::listener::{self, Listener, ListenerHandle};
use crate::services;

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
        let pool = db::build_pool(&settings)?;
        let now = clock.now();
        let (keys, revoked) = {
            let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
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
            ephemeral: mode == Mode::Ephemeral,
        });

        let address = (settings.server.host.as_str(), settings.server.port);
        let tcp = TcpListener::bind(address)
            .map_err(|e| format!("cannot bind {}:{}: {e}", address.0, address.1))?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        log::info!("keyward listening on http://{local}");

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
                .configure(|cfg| {
                    if ephemeral {
                        http::ephemeral::configure(cfg);
                    }
                })
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::not_found())
                }))
        })
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
            ..
        } = self;
        let result = server.await;
        drop(_cleanup);
        drop(_listener);
        result
    }
}
