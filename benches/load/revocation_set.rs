//! Verifying an access token includes a look-up in the in-memory set of
//! revoked sessions: /api/me against /health, interleaved, with the set
//! (nearly) empty and then holding 100,000 sessions, loaded the way an
//! instance loads them after losing its listener connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::report::{human, ratio, Ratio, Stats};
use crate::scenarios::{Scenario, Tally};
use crate::server::Bench;

pub(crate) struct RevocationSet {
    pub(crate) health_empty: Stats,
    pub(crate) me_empty: Stats,
    pub(crate) health_full: Stats,
    pub(crate) me_full: Stats,
    /// The set's size in each half.
    pub(crate) empty: i64,
    pub(crate) full: i64,
}

pub(crate) fn run(bench: &mut Bench) -> RevocationSet {
    let rc = bench.config.reference_concurrency();
    let health_and_me = |bench: &mut Bench| -> (Stats, Stats) {
        let mut slices: BTreeMap<Scenario, Vec<(Tally, f64)>> = BTreeMap::new();
        for _ in 0..bench.config.rounds {
            for s in [Scenario::Health, Scenario::Me] {
                let measured = bench.run(s, rc, bench.config.slice());
                slices.entry(s).or_default().push(measured);
            }
        }
        let mut take = |s| Stats::from_slices(s, rc, slices.remove(&s).unwrap());
        (take(Scenario::Health), take(Scenario::Me))
    };
    let empty = revoked_in_memory(bench.server.addr);
    let (mut health_empty, mut me_empty) = health_and_me(bench);
    health_empty.label = format!("/health, {empty} revoked in memory");
    me_empty.label = format!("/api/me, {empty} revoked in memory");
    let full = fill_revocation_set(&mut bench.admin, bench.server.addr, 100_000);
    let (mut health_full, mut me_full) = health_and_me(bench);
    health_full.label = format!("/health, {} revoked in memory", human(full));
    me_full.label = format!("/api/me, {} revoked in memory", human(full));
    RevocationSet {
        health_empty,
        me_empty,
        health_full,
        me_full,
        empty,
        full,
    }
}

impl RevocationSet {
    pub(crate) fn ratios(&self) -> Vec<Ratio> {
        let rc = self.me_empty.concurrency;
        vec![
            ratio(
                "/api/me / /health, set empty",
                self.me_empty.rps / self.health_empty.rps,
                Some(0.9),
                None,
                format!(
                    "{:.0} / {:.0} req/s (x{rc}) with {} sessions in the revocation set",
                    self.me_empty.rps, self.health_empty.rps, self.empty
                ),
            ),
            ratio(
                "/api/me / /health, set 100k",
                self.me_full.rps / self.health_full.rps,
                Some(0.9),
                None,
                format!(
                    "{:.0} / {:.0} req/s (x{rc}) with {} sessions in the revocation set",
                    self.me_full.rps,
                    self.health_full.rps,
                    human(self.full)
                ),
            ),
        ]
    }
}

/// `keyward_revoked_sessions_in_memory` from the server's `/metrics`.
fn revoked_in_memory(addr: SocketAddr) -> i64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("keyward_revoked_sessions_in_memory "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

/// Revokes `n` filler sessions in the table, then cuts the server's
/// listener connection off, so that on reconnecting it loads them all into
/// its revocation set (its catch-up); waits until it has. Returns the set's
/// size.
fn fill_revocation_set(conn: &mut PgConnection, addr: SocketAddr, n: i64) -> i64 {
    // The instances learn of revocations from the `revocations` log, not
    // from the sessions table: both are written, as keyward's revoking
    // statements do.
    diesel::sql_query(
        "WITH revoked AS (UPDATE sessions SET revoked_at = now(), revoked_reason = 'bench' \
         WHERE id IN (SELECT id FROM sessions WHERE user_agent = 'keyward-bench filler' \
         AND revoked_at IS NULL LIMIT $1) RETURNING id, user_id) \
         INSERT INTO revocations (at, reason, session_id, user_id) \
         SELECT now(), 'bench', id, user_id FROM revoked",
    )
    .bind::<diesel::sql_types::BigInt, _>(n)
    .execute(conn)
    .unwrap();
    conn.batch_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = '{}'",
        keyward::listener::APPLICATION_NAME
    ))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let size = revoked_in_memory(addr);
        if size >= n || Instant::now() > deadline {
            return size;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
