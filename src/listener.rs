//! The revocation listener: one thread per instance, on its own connection
//! outside the pool, that `LISTEN`s for revoked sessions and new signing keys
//! and keeps the in-memory revocation set and key set current.
//!
//! diesel's `notifications_iter` does not block (it consumes what has
//! arrived), so the thread polls it every few milliseconds. When the
//! connection fails it reconnects with backoff, `LISTEN`s again, and only then
//! reloads from the table every revocation it may have missed, so nothing
//! falls between the two. Until that catch-up is done it reports itself
//! unhealthy and `/ready` says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::services::SERVICES_CHANNEL;
use crate::db::{sessions, KEYS_CHANNEL, REVOCATION_CHANNEL};
use crate::domain::revocation::RevokedSessions;
use crate::domain::tokens::Tokens;
use crate::services;
use crate::services::service_registry::ServiceRegistry;

/// How the listener's connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "keyward-listener";

const POLL_EVERY: Duration = Duration::from_millis(20);
const PRUNE_EVERY: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(60);
const KEY_RETRY_EVERY: Duration = Duration::from_secs(5);
/// The service registry is reloaded on every NOTIFY on its channel, and this
/// often besides, in case a notification was lost.
const SERVICES_RELOAD_EVERY: Duration = Duration::from_secs(2);
/// A connection that silently died (no reset reached us) is only noticed
/// by using it.
const PING_EVERY: Duration = Duration::from_secs(3);

/// What the listener shares with the request handlers.
#[derive(Debug, Default)]
pub struct ListenerStatus {
    healthy: AtomicBool,
    stop: AtomicBool,
}

impl ListenerStatus {
    /// Listening and caught up with the database.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}

/// Stops the listener thread when dropped.
pub struct ListenerHandle {
    status: Arc<ListenerStatus>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.status.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub struct Listener {
    pub settings: Arc<Settings>,
    pub revoked: Arc<RevokedSessions>,
    pub tokens: Arc<Tokens>,
    pub services: Arc<ServiceRegistry>,
    pub clock: Clock,
}

impl Listener {
    /// Starts the thread; it reports healthy once it has listened and caught up.
    pub fn spawn(self) -> std::io::Result<(ListenerHandle, Arc<ListenerStatus>)> {
        let status = Arc::new(ListenerStatus::default());
        let shared = status.clone();
        let thread = std::thread::Builder::new()
            .name("keyward-listener".into())
            .spawn(move || self.run(&shared))?;
        Ok((
            ListenerHandle {
                status: status.clone(),
                thread: Some(thread),
            },
            status,
        ))
    }

    fn run(&self, status: &ListenerStatus) {
        let mut backoff = Duration::from_millis(50);
        while !status.stop.load(Ordering::Acquire) {
            match self.connect_and_catch_up() {
                Ok(mut conn) => {
                    backoff = Duration::from_millis(50);
                    status.healthy.store(true, Ordering::Release);
                    let outcome = self.listen(&mut conn, status);
                    status.healthy.store(false, Ordering::Release);
                    if let Err(e) = outcome {
                        log::warn!("revocation listener lost its connection: {e}; reconnecting");
                    }
                }
                Err(e) => {
                    log::warn!("revocation listener cannot connect: {e}; retrying in {backoff:?}");
                    sleep_unless_stopped(backoff, status);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn connect_and_catch_up(&self) -> Result<PgConnection, String> {
        // The same connect and keepalive timeouts as the pool, so a silently
        // dead connection is noticed and a reconnect never hangs.
        let url = crate::db::url_with_timeouts(
            self.settings.database.url.expose(),
            self.settings.database.connect_timeout_ms,
        );
        let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
        conn.batch_execute(&format!(
            "SET application_name = '{APPLICATION_NAME}'; \
             LISTEN {REVOCATION_CHANNEL}; LISTEN {KEYS_CHANNEL}; LISTEN {SERVICES_CHANNEL};"
        ))
        .map_err(|e| e.to_string())?;
        let now = self.clock.now();
        catch_up(&mut conn, &self.revoked, &self.settings, now).map_err(|e| e.to_string())?;
        self.reload_keys(&mut conn);
        self.reload_services(&mut conn);
        Ok(conn)
    }

    /// Reloads the key set; `false` when it could not (the old set stays).
    fn reload_keys(&self, conn: &mut PgConnection) -> bool {
        if self.settings.auth.jwt_secret.is_some() {
            return true;
        }
        match services::keys::load(conn, &self.settings, self.clock.now()) {
            Ok(keys) => {
                self.tokens.replace_keys(keys);
                true
            }
            Err(e) => {
                log::error!("cannot reload signing keys: {e}");
                false
            }
        }
    }

    fn reload_services(&self, conn: &mut PgConnection) {
        if let Err(e) = self.services.reload(conn) {
            log::error!("cannot reload the service registry: {e}");
        }
    }

    fn listen(&self, conn: &mut PgConnection, status: &ListenerStatus) -> Result<(), String> {
        let horizon = services::revocation_horizon(&self.settings);
        let mut last_prune = Instant::now();
        let mut last_ping = Instant::now();
        let mut last_key_load = Instant::now();
        let mut last_services_load = Instant::now();
        // A reload that failed is tried again soon rather than at the next
        // rotation.
        let mut key_retry_pending = false;
        while !status.stop.load(Ordering::Acquire) {
            let mut keys_changed = false;
            let mut services_changed = false;
            let mut arrived = Vec::new();
            // The iterator repeats its error forever once the connection is
            // gone: stop at the first one.
            for notification in conn.notifications_iter() {
                arrived.push(notification.map_err(|e| e.to_string())?);
                if arrived.len() >= 4096 {
                    break;
                }
            }
            for notification in arrived {
                if notification.channel == KEYS_CHANNEL {
                    keys_changed = true;
                } else if notification.channel == SERVICES_CHANNEL {
                    services_changed = true;
                } else if let Some((session, revoked_at)) = parse_revocation(&notification.payload)
                {
                    let revoked_at = revoked_at.unwrap_or_else(|| self.clock.now().timestamp());
                    self.revoked.insert(session, revoked_at + horizon);
                }
            }
            // Besides the notifications, a slow periodic reload: a safety
            // net that costs one small query a minute.
            let since_load = last_key_load.elapsed();
            if keys_changed
                || key_retry_pending && since_load >= KEY_RETRY_EVERY
                || since_load >= KEY_RELOAD_EVERY
            {
                key_retry_pending = !self.reload_keys(conn);
                last_key_load = Instant::now();
            }
            if services_changed || last_services_load.elapsed() >= SERVICES_RELOAD_EVERY {
                self.reload_services(conn);
                last_services_load = Instant::now();
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.revoked.prune(self.clock.now().timestamp());
                last_prune = Instant::now();
            }
            if last_ping.elapsed() >= PING_EVERY {
                conn.batch_execute("SELECT 1").map_err(|e| e.to_string())?;
                last_ping = Instant::now();
            }
            std::thread::sleep(POLL_EVERY);
        }
        Ok(())
    }
}

/// Loads every session revoked recently enough that its access tokens may
/// still be presented.
pub fn catch_up(
    conn: &mut PgConnection,
    revoked: &RevokedSessions,
    settings: &Settings,
    now: chrono::DateTime<chrono::Utc>,
) -> diesel::QueryResult<usize> {
    let horizon = services::revocation_horizon(settings);
    let rows = sessions::revoked_since(conn, now - TimeDelta::seconds(horizon))?;
    let count = rows.len();
    revoked.extend(
        rows.into_iter()
            .map(|r| (r.id, r.revoked_at.timestamp() + horizon)),
    );
    Ok(count)
}

/// `<session id> <unix second>` (the second is optional).
fn parse_revocation(payload: &str) -> Option<(uuid::Uuid, Option<i64>)> {
    let mut parts = payload.split_whitespace();
    let session = parts.next()?.parse().ok()?;
    let at = parts.next().and_then(|at| at.parse().ok());
    Some((session, at))
}

fn sleep_unless_stopped(total: Duration, status: &ListenerStatus) {
    let deadline = Instant::now() + total;
    while Instant::now() < deadline && !status.stop.load(Ordering::Acquire) {
        std::thread::sleep(POLL_EVERY);
    }
}
