//! The release-built `keyward` binary as a child process on the bench
//! database (killed on drop, also when a panic unwinds), and what the kernel
//! says about it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::client::Session;
use crate::database::BenchDb;
use crate::limits::raw_rows;
use crate::procfs::{status_mib, CpuMark};
use crate::report::Slice;
use crate::scenarios::{
    deal, register_users, run_http, run_sessions, sign_in, wait_ready, Scenario, Shared, Tally,
};
use crate::settings::BenchConfig;

pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts the server with these settings on top of the benchmark's.
    pub(crate) fn start_with(
        config: &BenchConfig,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command.arg("serve");
        for (key, _) in std::env::vars() {
            if key.starts_with("KEYWARD__") || key == "KEYWARD_CONFIG" {
                command.env_remove(key);
            }
        }
        // The request log line is the one info-level line per request: keep
        // it out of the load, but keep the line that names the bound port.
        let log = format!("{},keyward::startup=info", config.server_log);
        let mut child = command
            .env("DATABASE_URL", database_url)
            .env("KEYWARD__SERVER__HOST", "127.0.0.1")
            .env("KEYWARD__SERVER__PORT", "0")
            .env("KEYWARD__RATE_LIMIT__ENABLED", "false")
            .env("KEYWARD__AUTH__BCRYPT_COST", config.bcrypt_cost.to_string())
            .env("RUST_LOG", log)
            .envs(extra.iter().copied())
            .envs(
                config
                    .server_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keyward");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut echoed = 0;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("keyward listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                } else if echoed < 20 {
                    echoed += 1;
                    eprintln!("[keyward] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("keyward did not report its address")
            .parse()
            .expect("keyward's address");
        Self { child, addr }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resets the kernel's peak-RSS counter (VmHWM) of the server, so that
    /// each scenario reports its own peak.
    pub(crate) fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Peak resident set size since start or the last reset, in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        status_mib(self.pid(), "VmHWM")
    }

    pub(crate) fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).map_or(0, |d| d.count())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A run's fixture: its database and server, signed-in users, filler rows
/// for the raw `UPDATE`s, a service credential. Fields drop in order: the
/// server before its database.
pub(crate) struct Bench<'a> {
    pub(crate) config: &'a BenchConfig,
    pub(crate) cores: usize,
    pub(crate) runtime: Runtime,
    pub(crate) shared: Arc<Shared>,
    /// The signed-in sessions, each with its newest tokens.
    pub(crate) sessions: Vec<Session>,
    /// Filler rows (id, current jti) for the raw compare-and-swap.
    pub(crate) raw: Vec<(Uuid, Uuid)>,
    /// A service credential, for introspection and keyward-verify.
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) admin: PgConnection,
    pub(crate) server: Server,
    pub(crate) db: BenchDb,
}

/// What a fixture holds.
struct Plan<'e> {
    /// Server settings on top of the benchmark's.
    env: &'e [(&'e str, &'e str)],
    users: usize,
    sessions: usize,
    /// Rows `sessions` is topped up to with filler.
    table: i64,
    filler: usize,
}

impl<'a> Bench<'a> {
    /// The main run's: 16 users at the configured bcrypt cost, one
    /// session per client of the largest concurrency, and as many filler
    /// rows.
    pub(crate) fn start(config: &'a BenchConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "keyward load benchmark: {cores} cores, {} s per scenario, concurrency {:?}, bcrypt cost {}",
            config.seconds, config.concurrencies, config.bcrypt_cost
        );
        let max_c = config.max_concurrency();
        // The throughput scenarios run up to 64 logins at once: keep the
        // bound on waiting password checks out of their way (`abuse.rs`
        // measures it at its default).
        let plan = Plan {
            env: &[("KEYWARD__AUTH__MAX_PENDING_HASHES", "4096")],
            users: 16,
            sessions: max_c,
            table: 1000,
            filler: max_c,
        };
        Self::launch(config, "bench", plan)
    }

    /// Issue 17's: `target_sessions` users, each signed in once (at bcrypt
    /// cost 4, so that signing in a thousand takes seconds; no target
    /// measured on it is about bcrypt), access tokens that outlive the run,
    /// and as many filler rows as sessions.
    pub(crate) fn start_targets(config: &'a BenchConfig) -> Self {
        eprintln!("issue 17 targets:");
        let n = config.target_sessions;
        // Tokens must stay valid through the soak and everything before it.
        let ttl = (config.soak_seconds as u64 + 1800).max(3600).to_string();
        let plan = Plan {
            env: &[
                ("KEYWARD__AUTH__MAX_PENDING_HASHES", "4096"),
                ("KEYWARD__AUTH__BCRYPT_COST", "4"),
                ("KEYWARD__AUTH__ACCESS_TTL_SECONDS", &ttl),
            ],
            users: n,
            sessions: n,
            table: 2 * n as i64,
            filler: n,
        };
        Self::launch(config, "target", plan)
    }

    fn launch(config: &'a BenchConfig, prefix: &str, plan: Plan) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let db = BenchDb::create(&config.postgres, "keyward_bench");
        eprintln!("created database {}", db.name);
        let server = Server::start_with(config, &db.url(), plan.env);
        eprintln!(
            "keyward (pid {}) listening on {}",
            server.pid(),
            server.addr
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let shared = Shared::new(server.addr, prefix, plan.users);
        runtime.block_on(wait_ready(server.addr));
        let seed_started = Instant::now();
        runtime.block_on(register_users(&shared, cores * 2));
        let sessions = runtime.block_on(sign_in(&shared, plan.sessions, cores * 2));
        eprintln!(
            "seeded {} users and {} sessions in {:.1} s",
            shared.users.len(),
            sessions.len(),
            seed_started.elapsed().as_secs_f64()
        );
        let mut admin = db.connect();
        let (_, credentials) = keyward::services::service_registry::create(
            &mut admin,
            "keyward-bench",
            chrono::Utc::now(),
        )
        .expect("create a service credential");
        let rows = fill_sessions(&mut admin, plan.table);
        let raw = raw_rows(&mut admin, plan.filler);
        eprintln!("sessions table: {rows} rows");
        Self {
            config,
            cores,
            runtime,
            shared,
            sessions,
            raw,
            client_id: credentials.client_id,
            client_secret: credentials.client_secret,
            admin,
            server,
            db,
        }
    }

    /// Runs `scenario` over HTTP with the first `clients` sessions for
    /// `duration`; they come back to the front of the list with their newest
    /// tokens.
    pub(crate) fn run(
        &mut self,
        scenario: Scenario,
        clients: usize,
        duration: Duration,
    ) -> (Tally, f64) {
        let mine: Vec<Session> = self.sessions.drain(..clients).collect();
        let (tally, seconds, back) =
            self.runtime
                .block_on(run_http(&self.shared, scenario, mine, duration));
        self.sessions.splice(0..0, back);
        (tally, seconds)
    }

    /// Runs `scenario` with every session, dealt out to `clients` clients.
    pub(crate) fn run_dealt(
        &mut self,
        scenario: Scenario,
        clients: usize,
        duration: Duration,
    ) -> (Tally, f64) {
        let hands = deal(std::mem::take(&mut self.sessions), clients);
        let (tally, seconds, back) =
            self.runtime
                .block_on(run_sessions(&self.shared, scenario, hands, duration));
        self.sessions = back.into_iter().flatten().collect();
        (tally, seconds)
    }

    /// One request per session's access token, built by `request`.
    pub(crate) fn requests(&self, request: impl Fn(&str) -> Vec<u8>) -> Arc<Vec<Vec<u8>>> {
        Arc::new(self.sessions.iter().map(|s| request(&s.access)).collect())
    }

    /// The process ids of PostgreSQL's backends on this database.
    fn backends(&mut self) -> Vec<u32> {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        diesel::sql_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid()",
        )
        .load::<Pid>(&mut self.admin)
        .map(|rows| rows.into_iter().map(|r| r.pid as u32).collect())
        .unwrap_or_default()
    }

    /// Runs `f` (one slice) and measures the CPU the server and PostgreSQL
    /// spent meanwhile.
    pub(crate) fn measured(&mut self, f: impl FnOnce(&mut Self) -> (Tally, f64)) -> Slice {
        let mark = CpuMark::now(self.server.pid());
        let (tally, seconds) = f(self);
        let backends = self.backends();
        Slice {
            tally,
            seconds,
            cpu: mark.since(&backends),
        }
    }
}

/// Tops `sessions` up to `total` rows with live filler sessions spread over
/// the seeded users, in one `INSERT … SELECT generate_series`, then
/// refreshes the planner's statistics (and the visibility map, so that
/// autovacuum does not wake up in the middle of the next measurement).
pub(crate) fn fill_sessions(conn: &mut PgConnection, total: i64) -> i64 {
    let have = session_count(conn);
    if have < total {
        diesel::sql_query(
            "WITH u AS (SELECT array_agg(id ORDER BY username) AS ids FROM users) \
             INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, \
                                   expires_at, user_agent, ip) \
             SELECT gen_random_uuid(), u.ids[1 + g % cardinality(u.ids)], gen_random_uuid(), \
                    now(), now(), now(), now() + interval '1 day', 'keyward-bench filler', '127.0.0.1' \
             FROM u, generate_series(1, $1) AS g",
        )
        .bind::<diesel::sql_types::BigInt, _>(total - have)
        .execute(conn)
        .unwrap();
    }
    // One statement per call: VACUUM cannot run in the implicit
    // transaction of a multi-statement batch.
    conn.batch_execute("VACUUM (ANALYZE) sessions").unwrap();
    conn.batch_execute("VACUUM (ANALYZE) events").unwrap();
    // Start the measurement after a checkpoint, not in the middle of the
    // one the bulk insert's WAL triggers (and its full-page writes).
    conn.batch_execute("CHECKPOINT").unwrap();
    session_count(conn)
}

pub(crate) fn session_count(conn: &mut PgConnection) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM sessions")
        .get_result::<Count>(conn)
        .unwrap()
        .n
}
