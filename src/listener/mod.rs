//! The revocation listener: one thread per instance, on its own connection
//! outside the pool, that `LISTEN`s for revocations and new signing keys
//! and keeps the in-memory revocation set and key set current.
//!
//! diesel's `notifications_iter` does not block (it consumes what has
//! arrived), so the thread polls it every few milliseconds. A notification
//! on the revocation channel makes it read the `revocations` log at once;
//! besides, it reads the log every `revocation.poll_seconds` whatever
//! arrived, so a lost notification (a pooler that drops `LISTEN`, a
//! revocation written by hand) delays an entry by that much at most. Each
//! read asks only for rows with `tx` at or above the previous read's
//! snapshot xmin (see `db::revocations`): indexed, and empty most of the
//! time. When the connection fails it reconnects promptly, `LISTEN`s again,
//! and only then reads the log from where it was, so nothing falls between
//! the two. Until that read is done it reports itself unhealthy and `/ready`
//! says so.

mod catch_up;
mod hooks;
mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::keys::KEYS_CHANNEL;
use crate::db::revocations::{self, REVOCATION_CHANNEL};
use crate::domain::revocation::RevokedSessions;
use crate::domain::revocation_feed::Feed;
use crate::domain::tokens::Tokens;
use crate::services;

use catch_up::apply;
pub(crate) use catch_up::catch_up;
pub(crate) use hooks::ListenHook;
pub(crate) use status::{ListenerHandle, ListenerStatus};

/// How the listener's connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "keyward-listener";

const POLL_EVERY: Duration = Duration::from_millis(20);
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Reconnect attempts are cheap (a refused or timed-out connect): try
/// often, so that the set is current and `/ready` is `200` again soon
/// after the database answers.
const MAX_BACKOFF: Duration = Duration::from_millis(200);
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(60);
const KEY_RETRY_EVERY: Duration = Duration::from_secs(5);
/// A connection that silently died (no reset reached us) is only noticed
/// by using it.
const PING_EVERY: Duration = Duration::from_secs(3);

pub(crate) struct Listener {
    pub(crate) settings: Arc<Settings>,
    pub(crate) revoked: Arc<RevokedSessions>,
    pub(crate) feed: Arc<Feed>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) clock: Clock,
    /// Where the start-up read of the log ended ([`catch_up`]'s answer).
    pub(crate) from_tx: i64,
    pub(crate) hooks: Vec<Arc<dyn ListenHook>>,
}

/// Where the listener's reads of the log are.
struct Position {
    /// Every row with `tx` below this has been read.
    tx: i64,
}

impl Listener {
    /// Starts the thread; it reports healthy once it has listened and caught up.
    pub(crate) fn spawn(self) -> std::io::Result<(ListenerHandle, Arc<ListenerStatus>)> {
        let status = Arc::new(ListenerStatus::default());
        status.confirm();
        let shared = status.clone();
        let thread = std::thread::Builder::new()
            .name("keyward-listener".into())
            .spawn(move || self.run(&shared))?;
        Ok((ListenerHandle::new(status.clone(), thread), status))
    }

    fn run(&self, status: &ListenerStatus) {
        let mut position = Position { tx: self.from_tx };
        let mut backoff = Duration::from_millis(20);
        let mut failures = 0u32;
        while !status.stopping() {
            match self.connect_and_catch_up(&mut position, status) {
                Ok(mut conn) => {
                    backoff = Duration::from_millis(20);
                    failures = 0;
                    status.set_healthy(true);
                    let outcome = self.listen(&mut conn, &mut position, status);
                    status.set_healthy(false);
                    if let Err(e) = outcome {
                        log::warn!("revocation listener lost its connection: {e}; reconnecting");
                    }
                }
                Err(e) => {
                    // Retried five times a second: log the first and then
                    // about every ten seconds.
                    if failures % 50 == 0 {
                        log::warn!("revocation listener cannot connect: {e}; retrying");
                    }
                    failures = failures.wrapping_add(1);
                    sleep_unless_stopped(backoff, status);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn connect_and_catch_up(
        &self,
        position: &mut Position,
        status: &ListenerStatus,
    ) -> Result<PgConnection, String> {
        // The same connect and keepalive timeouts as the pool, so a silently
        // dead connection is noticed and a reconnect never hangs.
        let url = crate::db::url_with_timeouts(
            self.settings.database.url.expose(),
            self.settings.database.connect_timeout_ms,
        );
        let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
        let mut listen = format!(
            "SET application_name = '{APPLICATION_NAME}'; \
             LISTEN {REVOCATION_CHANNEL}; LISTEN {KEYS_CHANNEL};"
        );
        for hook in &self.hooks {
            listen.push_str(&format!(" LISTEN {};", hook.channel()));
        }
        conn.batch_execute(&listen).map_err(|e| e.to_string())?;
        self.read_log(&mut conn, position, status)
            .map_err(|e| e.to_string())?;
        self.reload_keys(&mut conn);
        for hook in &self.hooks {
            hook.reload(&mut conn);
        }
        Ok(conn)
    }

    /// Reads the log from `position` on and applies what it finds; the set
    /// is then confirmed current.
    fn read_log(
        &self,
        conn: &mut PgConnection,
        position: &mut Position,
        status: &ListenerStatus,
    ) -> diesel::QueryResult<()> {
        let now = self.clock.now();
        let horizon = services::revocation_horizon(&self.settings);
        let read = revocations::read_since(conn, position.tx, now - TimeDelta::seconds(horizon))?;
        apply(
            &self.revoked,
            &self.feed,
            read.rows,
            read.xmin,
            horizon,
            now,
        );
        position.tx = position.tx.max(read.xmin);
        status.confirm();
        Ok(())
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

    fn listen(
        &self,
        conn: &mut PgConnection,
        position: &mut Position,
        status: &ListenerStatus,
    ) -> Result<(), String> {
        let horizon = services::revocation_horizon(&self.settings);
        let poll_every = Duration::from_secs(self.settings.revocation.poll_seconds);
        let mut last_read = Instant::now();
        let mut last_prune = Instant::now();
        let mut last_ping = Instant::now();
        let mut last_key_load = Instant::now();
        let mut hook_loads = vec![(Instant::now(), false); self.hooks.len()];
        // A reload that failed is tried again soon rather than at the next
        // rotation.
        let mut key_retry_pending = false;
        while !status.stopping() {
            let mut keys_changed = false;
            let mut revoked_now = false;
            let mut hooks_changed = vec![false; self.hooks.len()];
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
                } else if notification.channel == REVOCATION_CHANNEL {
                    revoked_now = true;
                    // A session's id refuses its tokens before the read below.
                    if let Some((session, at)) = parse_revocation(&notification.payload) {
                        let at = at.unwrap_or_else(|| self.clock.now().timestamp());
                        self.revoked.insert(session, at + horizon);
                    }
                } else if let Some(i) = self
                    .hooks
                    .iter()
                    .position(|h| h.channel() == notification.channel)
                {
                    hooks_changed[i] = true;
                }
            }
            if revoked_now || last_read.elapsed() >= poll_every {
                self.read_log(conn, position, status)
                    .map_err(|e| e.to_string())?;
                last_read = Instant::now();
                last_ping = last_read;
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
            for (i, hook) in self.hooks.iter().enumerate() {
                let (loaded, failed) = &mut hook_loads[i];
                let due = loaded.elapsed() >= hook.safety_net()
                    || *failed && loaded.elapsed() >= KEY_RETRY_EVERY;
                if hooks_changed[i] || due {
                    *failed = !hook.reload(conn);
                    *loaded = Instant::now();
                }
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.revoked.prune(self.clock.now().timestamp());
                self.feed.prune(self.clock.now());
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

/// `<session id> <unix second>` (the second is optional).
fn parse_revocation(payload: &str) -> Option<(uuid::Uuid, Option<i64>)> {
    let mut parts = payload.split_whitespace();
    let session = parts.next()?.parse().ok()?;
    let at = parts.next().and_then(|at| at.parse().ok());
    Some((session, at))
}

fn sleep_unless_stopped(total: Duration, status: &ListenerStatus) {
    let deadline = Instant::now() + total;
    while Instant::now() < deadline && !status.stopping() {
        std::thread::sleep(POLL_EVERY);
    }
}
