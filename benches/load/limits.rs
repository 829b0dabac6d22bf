//! The limits below the server, measured in the same run: the database's
//! rate for the rotation's single-row compare-and-swap `UPDATE` (through
//! diesel, one connection per client thread), in the rotation's shape and
//! in the minimal one, and one bcrypt hash on one core.

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Uuid as SqlUuid;
use keyward::domain::Password;
use uuid::Uuid;

use crate::database::BenchDb;
use crate::scenarios::{deal, Tally};

/// Same shape as `db::rotation::rotate`'s compare-and-swap, without the
/// user join, the sliding expiry and the event: the one write a rotation
/// cannot do without.
pub(crate) const RAW_CAS: &str =
    "UPDATE sessions SET previous_jti = current_jti, current_jti = $1, \
     rotated_at = now(), last_used_at = now() WHERE id = $2 AND current_jti = $3";

/// The same compare-and-swap writing the `refreshed` event in the same
/// statement, as `db::rotation::rotate` does: what the event log costs a
/// rotation at the database.
pub(crate) const RAW_CAS_WITH_EVENT: &str =
    "WITH rotated AS (UPDATE sessions SET previous_jti = current_jti, \
     current_jti = $1, rotated_at = now(), last_used_at = now() \
     WHERE id = $2 AND current_jti = $3 RETURNING id, user_id), \
     logged AS (INSERT INTO events (at, kind, user_id, session_id) \
       SELECT now(), 'refreshed', user_id, id FROM rotated) \
     SELECT id FROM rotated";

#[derive(QueryableByName)]
struct IdJti {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    current_jti: Uuid,
}

/// `concurrency` threads, each on its own connection, each swapping the
/// `jti` of its own row (the first `concurrency` of `rows`) for `duration`.
pub(crate) fn run_raw_update(
    db: &BenchDb,
    sql: &'static str,
    rows: &mut [(Uuid, Uuid)],
    concurrency: usize,
    duration: Duration,
) -> (Tally, f64) {
    let mine = &mut rows[..concurrency];
    let mut clients = CasClients::open(&db.url(), mine, concurrency);
    let measured = clients.run(sql, duration);
    // Each row's newest jti, for the next round's compare-and-swap.
    mine.copy_from_slice(&clients.rows());
    measured
}

/// The minimal compare-and-swap of issue 17's refresh target: one
/// statement, one row, no join, no event.
pub(crate) const MINIMAL_CAS: &str =
    "UPDATE sessions SET current_jti = $1 WHERE id = $2 AND current_jti = $3";

/// Threads with a connection each, each swapping the `jti` of its rows in
/// turn. The connections stay open between runs, so that their backends'
/// CPU can be read across a slice.
pub(crate) struct CasClients {
    clients: Vec<(PgConnection, Vec<(Uuid, Uuid)>)>,
}

impl CasClients {
    /// `threads` connections; `rows` dealt out to them round-robin.
    pub(crate) fn open(url: &str, rows: &[(Uuid, Uuid)], threads: usize) -> Self {
        let clients = deal(rows.to_vec(), threads)
            .into_iter()
            .map(|rows| {
                let conn = PgConnection::establish(url).expect("raw UPDATE connection");
                (conn, rows)
            })
            .collect();
        Self { clients }
    }

    /// Each thread runs `sql` on its rows for `duration`.
    pub(crate) fn run(&mut self, sql: &'static str, duration: Duration) -> (Tally, f64) {
        let barrier = std::sync::Barrier::new(self.clients.len() + 1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .clients
                .iter_mut()
                .map(|(conn, rows)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let mut tally = Tally::default();
                        barrier.wait();
                        let deadline = Instant::now() + duration;
                        let mut i = 0;
                        while Instant::now() < deadline {
                            let (id, current) = rows[i];
                            let next = Uuid::new_v4();
                            let started = Instant::now();
                            match diesel::sql_query(sql)
                                .bind::<SqlUuid, _>(next)
                                .bind::<SqlUuid, _>(id)
                                .bind::<SqlUuid, _>(current)
                                .execute(conn)
                            {
                                Ok(1) => {
                                    rows[i].1 = next;
                                    tally.ok(started);
                                }
                                Ok(n) => tally.error(started, format!("{n} rows updated")),
                                Err(e) => tally.error(started, e.to_string()),
                            }
                            i = (i + 1) % rows.len();
                        }
                        tally
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            let mut tally = Tally::default();
            for h in handles {
                tally.merge(h.join().unwrap());
            }
            (tally, start.elapsed().as_secs_f64())
        })
    }

    /// Every row with its newest jti, in the order [`CasClients::open`]
    /// was given them.
    pub(crate) fn rows(&self) -> Vec<(Uuid, Uuid)> {
        let threads = self.clients.len();
        let total: usize = self.clients.iter().map(|(_, r)| r.len()).sum();
        (0..total)
            .map(|i| self.clients[i % threads].1[i / threads])
            .collect()
    }
}

pub(crate) fn raw_rows(conn: &mut PgConnection, n: usize) -> Vec<(Uuid, Uuid)> {
    diesel::sql_query(
        "SELECT id, current_jti FROM sessions WHERE user_agent = 'keyward-bench filler' \
         ORDER BY id LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(n as i64)
    .load::<IdJti>(conn)
    .unwrap()
    .into_iter()
    .map(|r| (r.id, r.current_jti))
    .collect()
}

/// One bcrypt hash on one core, and what it allows on all of them.
pub(crate) struct Bcrypt {
    pub(crate) cost: u32,
    pub(crate) cpu_seconds: f64,
    pub(crate) wall_seconds: f64,
}

impl Bcrypt {
    /// The CPU time of one `Password::hash` at `cost` (the best of three):
    /// the process is otherwise idle, so this is the hash's cost on one
    /// core, and unlike the wall time it does not grow when other work on
    /// the machine pushes the (lowest-priority) bcrypt thread aside.
    pub(crate) fn measure(cost: u32) -> Self {
        let password = Password::parse("correct horse battery staple", "password").unwrap();
        let mut times: Vec<(f64, f64)> = (0..3)
            .map(|_| {
                let (cpu, wall) = (process_cpu(), Instant::now());
                password.hash(cost).unwrap();
                (process_cpu() - cpu, wall.elapsed().as_secs_f64())
            })
            .collect();
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (cpu_seconds, wall_seconds) = times[0];
        Self {
            cost,
            cpu_seconds,
            wall_seconds,
        }
    }

    /// Logins per second if every core did nothing but hash.
    pub(crate) fn limit(&self, cores: usize) -> f64 {
        cores as f64 / self.cpu_seconds
    }

    pub(crate) fn print(&self, cores: usize) {
        println!(
            "one bcrypt hash at cost {} on one core: {:.3} s CPU ({:.3} s wall) -> bcrypt limit {:.2} logins/s on {cores} cores",
            self.cost,
            self.cpu_seconds,
            self.wall_seconds,
            self.limit(cores)
        );
    }
}

/// This process's CPU time so far, in seconds.
fn process_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `t`, which outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}
