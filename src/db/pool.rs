//! The request pool: how connections are opened (timeouts, session
//! settings), when one is checked before use, and when one is thrown away.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::result::Error as DieselError;

use super::drain::PoolDrain;
use crate::config::Settings;

pub(crate) type DbPool = Pool<Manager>;

/// When (Unix seconds) a query last found its connection lost (or cut short
/// by `statement_timeout`) or a checkout last timed out, in any pool of the
/// process; 0: never.
static LAST_LOST: AtomicI64 = AtomicI64::new(0);

/// For how long after [`LAST_LOST`] every checkout pings its connection
/// first; after that, checkouts ping nothing.
const PING_AFTER_LOSS_SECONDS: i64 = 60;

thread_local! {
    /// Set when a query error on this thread is converted into a
    /// [`StoreError::Unavailable`](super::StoreError::Unavailable) for a lost
    /// connection; read and cleared when the next connection goes back to
    /// the pool from this thread. That is the failed one as long as the
    /// error is converted while the connection is still held (inside the
    /// blocking closure).
    static LOST_ON_THIS_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Notes that a query found its connection lost (see [`Manager`]).
pub(super) fn connection_lost() {
    LAST_LOST.store(now_unix(), Ordering::Relaxed);
    LOST_ON_THIS_THREAD.with(|lost| lost.set(true));
}

/// Notes that no connection could be had: the idle ones may be dead as well.
pub(super) fn pool_exhausted() {
    LAST_LOST.store(now_unix(), Ordering::Relaxed);
}

/// The pool's connection manager: diesel's, with a cheaper check at checkout.
///
/// r2d2 asks [`is_valid`](diesel::r2d2::ManageConnection::is_valid) at every
/// checkout (`test_on_check_out`), and diesel answers with a ping: a second
/// round trip on every request, where a refresh is otherwise one statement.
/// So `is_valid` pings only within [`PING_AFTER_LOSS_SECONDS`] of
/// [`LAST_LOST`], while idle connections may be dead too, and otherwise
/// trusts the connection. A connection whose query found it lost is thrown
/// away when it comes back (`has_broken`) instead of being handed out again
/// (diesel alone only discards one left in a broken transaction).
///
/// It also counts the connections being opened, and once the pool is
/// closing opens none and hands none out (see [`drain`](super::drain)).
#[derive(Debug)]
pub struct Manager(ConnectionManager<PgConnection>, Arc<PoolDrain>);

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgConnection, Self::Error> {
        if !self.1.begin_open() {
            return Err(diesel::r2d2::Error::ConnectionError(
                diesel::ConnectionError::BadConnection("the pool is closing".into()),
            ));
        }
        // Counted until the customizer has set the connection up (it ends
        // the count), or until here when the attempt failed.
        let conn = self.0.connect();
        if conn.is_err() {
            self.1.end_open();
        }
        conn
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Self::Error> {
        if self.1.is_closing() {
            return Err(diesel::r2d2::Error::QueryError(
                DieselError::BrokenTransactionManager,
            ));
        }
        if now_unix() - LAST_LOST.load(Ordering::Relaxed) <= PING_AFTER_LOSS_SECONDS {
            self.0.is_valid(conn)
        } else {
            Ok(())
        }
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        LOST_ON_THIS_THREAD.with(|lost| lost.replace(false))
            || self.1.is_closing()
            || self.0.has_broken(conn)
    }
}

/// Longest a statement of the pool may run: a query stuck behind a lock, or
/// otherwise slow, ends with an error (a `503`) rather than holding a
/// blocking thread. (A connection whose server vanished is the TCP
/// timeouts' of [`url_with_timeouts`].)
const STATEMENT_TIMEOUT_MS: u64 = 5_000;

/// Prepares every connection the pool opens; the connection is no longer
/// being opened (for [`PoolDrain`]) once this is done.
#[derive(Debug, Clone)]
struct SessionSettings(Arc<PoolDrain>);

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        let set = conn
            .batch_execute(&format!(
                "SET statement_timeout = {STATEMENT_TIMEOUT_MS}; \
                 SET application_name = 'keyward';"
            ))
            .map_err(diesel::r2d2::Error::QueryError);
        self.0.end_open();
        set
    }
}

/// The database URL with client-side timeouts added, unless the URL sets
/// them itself: libpq's `connect_timeout` (whole seconds; a connect to an
/// address that drops packets would otherwise wait for the kernel), and TCP
/// keepalives plus `tcp_user_timeout` so that a connection whose peer
/// vanished without a reset is noticed in seconds, not hours. A URL whose
/// hosts are all this machine's loopback also gets `sslmode=disable` (unless
/// it sets `sslmode`): libpq's default, `prefer`, negotiates TLS with a
/// server that has `ssl` on, and on loopback that protects nothing while
/// both sides encrypt every message (about a fifth of the CPU of a refresh,
/// on each side).
pub(crate) fn url_with_timeouts(url: &str, connect_timeout_ms: u64) -> String {
    let connect_seconds = connect_timeout_ms.div_ceil(1000).max(1).to_string();
    let wanted = [
        ("connect_timeout", connect_seconds.as_str()),
        ("keepalives", "1"),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "2"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "10000"),
    ];
    let is_uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let loopback = is_uri && uri_hosts_are_loopback(url);
    let wanted = wanted
        .into_iter()
        .chain(loopback.then_some(("sslmode", "disable")));
    let query = if is_uri {
        url.split_once('?').map_or("", |(_, q)| q)
    } else {
        url
    };
    let has = |key: &str| {
        if is_uri {
            query.split('&').any(|p| p.split('=').next() == Some(key))
        } else {
            query
                .split_whitespace()
                .any(|p| p.split('=').next().map(str::trim) == Some(key))
        }
    };
    let mut out = url.to_string();
    for (key, value) in wanted {
        if has(key) {
            continue;
        }
        if is_uri {
            out.push(if out.contains('?') { '&' } else { '?' });
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The request pool. A checkout waits at most `database.connect_timeout_ms`,
/// so a database outage becomes a quick `503`, never a hang. A checkout
/// pings its connection only for a while after a sign of trouble (see
/// [`Manager`]): then a connection that died while idle in the pool is
/// dropped and replaced instead of failing one request after another.
///
/// Connections are never closed for age or idleness: r2d2 would close them
/// on its own threads, which nothing joins (see [`drain`](super::drain)). The
/// returned [`PoolDrain`] closes the pool before the process exits.
pub(crate) fn build_pool(settings: &Settings) -> Result<(DbPool, Arc<PoolDrain>), String> {
    let url = url_with_timeouts(
        settings.database.url.expose(),
        settings.database.connect_timeout_ms,
    );
    let drain = Arc::new(PoolDrain::default());
    let manager = Manager(ConnectionManager::<PgConnection>::new(url), drain.clone());
    let pool = Pool::builder()
        .max_size(settings.pool_size())
        .min_idle(Some(2.min(settings.pool_size())))
        .max_lifetime(None)
        .idle_timeout(None)
        .connection_timeout(Duration::from_millis(settings.database.connect_timeout_ms))
        .test_on_check_out(true)
        .connection_customizer(Box::new(SessionSettings(drain.clone())))
        .build(manager)
        .map_err(|e| format!("database pool: {e}"))?;
    Ok((pool, drain))
}

/// Whether every host of a `postgres://` URL is this machine: `localhost`,
/// `127.0.0.0/8`, `::1`, or none (libpq then uses its Unix socket).
fn uri_hosts_are_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    hosts.split(',').all(|host_port| {
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host_port.split(':').next().unwrap_or_default(),
        };
        host.is_empty()
            || host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_urls_skip_tls_unless_they_ask_for_it() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/db",
            "postgres://postgres@localhost/db",
            "postgres://u:p@[::1]:5432/db?application_name=x",
            "postgres://127.0.0.1:5433,127.0.0.2:5434/db?target_session_attrs=read-write",
            "postgresql:///db",
        ] {
            assert!(
                super::url_with_timeouts(url, 1000).contains("sslmode=disable"),
                "{url}"
            );
        }
        for url in [
            "postgres://postgres@db.example.com/db",
            "postgres://127.0.0.1:5432,db.example.com:5432/db",
            "postgres://10.0.0.5/db",
            "host=127.0.0.1 dbname=db",
        ] {
            assert!(
                !super::url_with_timeouts(url, 1000).contains("sslmode"),
                "{url}"
            );
        }
        let asked = super::url_with_timeouts("postgres://127.0.0.1/db?sslmode=require", 1000);
        assert!(asked.contains("sslmode=require"), "{asked}");
        assert!(!asked.contains("sslmode=disable"), "{asked}");
    }

    #[test]
    fn timeouts_are_added_unless_the_url_sets_them() {
        let url = super::url_with_timeouts("postgres://h/db", 500);
        assert!(
            url.starts_with("postgres://h/db?connect_timeout=1&keepalives=1"),
            "{url}"
        );
        let url =
            super::url_with_timeouts("postgres://h/db?sslmode=disable&connect_timeout=9", 2500);
        assert!(
            url.contains("sslmode=disable&connect_timeout=9&keepalives=1"),
            "{url}"
        );
        assert!(!url.contains("connect_timeout=3"), "{url}");
        let url = super::url_with_timeouts("host=h dbname=db", 2000);
        assert!(
            url.starts_with("host=h dbname=db connect_timeout=2 keepalives=1"),
            "{url}"
        );
    }
}
