//! keyward's load benchmark: `cargo bench --bench load`.
//!
//! It creates a database of its own (`keyward_bench_<random>`, dropped at the
//! end), starts the release-built `keyward` binary on it as a child process,
//! and drives each scenario for a fixed time at several concurrencies with a
//! small HTTP/1.1 keep-alive client (one tokio thread: on a 2-core machine
//! the load generator must cost as little as possible). In the same run it
//! measures the limits below the server: the database's rate for the
//! rotation's single-row compare-and-swap `UPDATE` (through diesel, one
//! connection per client thread) and one bcrypt hash on one core. Every
//! target is a ratio of two figures from this one run, because the absolute
//! numbers move with whatever else the machine is doing.
//!
//! Environment (all optional):
//! - `KEYWARD_BENCH_SECONDS`: seconds per scenario (default 5)
//! - `KEYWARD_BENCH_CONCURRENCY`: comma-separated client counts (default 1,8,32,64)
//! - `KEYWARD_BENCH_BCRYPT_COST`: bcrypt cost (default: the configured one, 12)
//! - `KEYWARD_BENCH_SESSIONS`: rows in `sessions` for the large-table run (default 1000000)
//! - `KEYWARD_BENCH_POSTGRES`: server URL without a database (default postgres://postgres@127.0.0.1:5432)
//! - `KEYWARD_BENCH_SERVER_LOG`: the server's `RUST_LOG` during load (default warn)
//! - `KEYWARD_BENCH_ROUNDS`: slices the paired scenarios are interleaved in (default 5)
//! - `KEYWARD_BENCH_SERVER_ENV`: extra server settings, `K=V,K=V`
//! - `KEYWARD_BENCH_ONLY=abuse`: only the abuse-limit measurements (`abuse.rs`)
//!
//! Output: a table on stdout, `target/bench/load.json`, `target/bench/load.svg`,
//! and `target/bench/abuse.json`.
//! The benchmark asserts nothing about timing; it reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use keyward::db::sessions::ROTATE_SQL;
use keyward::domain::Password;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

#[path = "load/abuse.rs"]
mod abuse;

// ---------------------------------------------------------------------------
// Settings

struct BenchConfig {
    seconds: f64,
    concurrencies: Vec<usize>,
    bcrypt_cost: u32,
    big_sessions: i64,
    postgres: String,
    server_log: String,
    /// Slices each ratio's scenarios are interleaved in.
    rounds: usize,
    /// Extra settings for the server (`K=V,K=V`), for experiments such as
    /// `KEYWARD__DATABASE__POOL_SIZE=16`.
    server_env: Vec<(String, String)>,
}

impl BenchConfig {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let configured_cost = keyward::config::Settings::defaults()
            .map(|s| s.auth.bcrypt_cost)
            .unwrap_or(12);
        let mut concurrencies: Vec<usize> = var("KEYWARD_BENCH_CONCURRENCY")
            .unwrap_or_else(|| "1,8,32,64".into())
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .expect("KEYWARD_BENCH_CONCURRENCY: numbers")
            })
            .filter(|&c| c > 0)
            .collect();
        concurrencies.sort_unstable();
        concurrencies.dedup();
        assert!(
            !concurrencies.is_empty(),
            "KEYWARD_BENCH_CONCURRENCY is empty"
        );
        Self {
            seconds: var("KEYWARD_BENCH_SECONDS")
                .map_or(5.0, |v| v.parse().expect("KEYWARD_BENCH_SECONDS")),
            concurrencies,
            bcrypt_cost: var("KEYWARD_BENCH_BCRYPT_COST").map_or(configured_cost, |v| {
                v.parse().expect("KEYWARD_BENCH_BCRYPT_COST")
            }),
            big_sessions: var("KEYWARD_BENCH_SESSIONS")
                .map_or(1_000_000, |v| v.parse().expect("KEYWARD_BENCH_SESSIONS")),
            postgres: var("KEYWARD_BENCH_POSTGRES")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into()),
            server_log: var("KEYWARD_BENCH_SERVER_LOG").unwrap_or_else(|| "warn".into()),
            rounds: var("KEYWARD_BENCH_ROUNDS")
                .map_or(5, |v| v.parse().expect("KEYWARD_BENCH_ROUNDS"))
                .max(1),
            server_env: var("KEYWARD_BENCH_SERVER_ENV")
                .map(|v| {
                    v.split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    fn max_concurrency(&self) -> usize {
        *self.concurrencies.last().unwrap()
    }

    /// The concurrency of the 1k-versus-1M refresh comparison: 32 when it is
    /// in the list, else the largest.
    fn reference_concurrency(&self) -> usize {
        if self.concurrencies.contains(&32) {
            32
        } else {
            self.max_concurrency()
        }
    }
}

// ---------------------------------------------------------------------------
// The database and the server, both cleaned up on drop (also on panic)

struct BenchDb {
    admin_url: String,
    name: String,
}

impl BenchDb {
    fn create(postgres: &str) -> Self {
        let admin_url = format!("{postgres}/postgres");
        let name = format!(
            "keyward_bench_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = PgConnection::establish(&admin_url).expect("connect to PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the bench database");
        Self { admin_url, name }
    }

    fn url(&self) -> String {
        let base = self.admin_url.trim_end_matches("/postgres");
        format!("{base}/{}", self.name)
    }

    fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url()).expect("connect to the bench database")
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        match PgConnection::establish(&self.admin_url).and_then(|mut admin| {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
        }) {
            Ok(()) => eprintln!("dropped database {}", self.name),
            Err(e) => eprintln!("could not drop database {}: {e}", self.name),
        }
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(config: &BenchConfig, database_url: &str) -> Self {
        // The throughput scenarios run up to 64 logins at once: keep the
        // bound on waiting password checks out of their way (`abuse.rs`
        // measures it at its default).
        Self::start_with(
            config,
            database_url,
            &[("KEYWARD__AUTH__MAX_PENDING_HASHES", "4096")],
        )
    }

    /// Starts the server with these settings on top of the benchmark's.
    fn start_with(config: &BenchConfig, database_url: &str, extra: &[(&str, &str)]) -> Self {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resets the kernel's peak-RSS counter (VmHWM) of the server, so that
    /// each scenario reports its own peak.
    fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Peak resident set size since start or the last reset, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }

    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).map_or(0, |d| d.count())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client

struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

struct Response {
    status: u16,
    body_start: usize,
    body_end: usize,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    async fn connect(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        Ok(())
    }

    fn body(&self, r: &Response) -> &[u8] {
        &self.buf[r.body_start..r.body_end]
    }

    /// Sends one request and reads its response; on any failure the
    /// connection is dropped and reopened by the next request.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<Response> {
        let result = self.exchange(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Response> {
        use std::io::{Error, ErrorKind};
        self.connect().await?;
        let stream = self.stream.as_mut().unwrap();
        stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = std::str::from_utf8(&self.buf[..header_end])
            .map_err(|_| Error::new(ErrorKind::InvalidData, "header not UTF-8"))?;
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad status line"))?;
        let mut length = 0usize;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(Error::new(ErrorKind::InvalidData, "chunked body"));
                } else if name.eq_ignore_ascii_case("connection")
                    && value.trim().eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        while self.buf.len() < header_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            body_start: header_end,
            body_end: header_end + length,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn get(path: &str, bearer: Option<&str>) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(token) = bearer {
        let _ = write!(r, "Authorization: Bearer {token}\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn post_json(path: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Deserialize)]
struct PairBody {
    access_token: String,
    refresh_token: String,
}

/// One signed-in client: its newest tokens.
#[derive(Clone)]
struct Session {
    access: String,
    refresh: String,
}

#[derive(Clone)]
struct User {
    username: String,
    password: String,
}

fn login_request(user: &User) -> Vec<u8> {
    post_json(
        "/auth/login",
        &serde_json::json!({"username": user.username, "password": user.password}),
    )
}

fn refresh_request(session: &Session) -> Vec<u8> {
    post_json(
        "/auth/refresh",
        &serde_json::json!({"refresh_token": session.refresh}),
    )
}

// ---------------------------------------------------------------------------
// Scenarios

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scenario {
    Health,
    Me,
    Refresh,
    RawUpdate,
    Login,
    Mix,
}

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Health,
        Scenario::Me,
        Scenario::Refresh,
        Scenario::RawUpdate,
        Scenario::Login,
        Scenario::Mix,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Health => "GET /health",
            Scenario::Me => "GET /api/me",
            Scenario::Refresh => "refresh chain",
            Scenario::RawUpdate => "raw CAS UPDATE (db)",
            Scenario::Login => "login",
            Scenario::Mix => "mix 90/9/1",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::Me => "me",
            Scenario::Refresh => "refresh",
            Scenario::RawUpdate => "raw_update",
            Scenario::Login => "login",
            Scenario::Mix => "mix",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Scenario::Health => "#7f7f7f",
            Scenario::Me => "#1f77b4",
            Scenario::Refresh => "#d62728",
            Scenario::RawUpdate => "#ff7f0e",
            Scenario::Login => "#2ca02c",
            Scenario::Mix => "#9467bd",
        }
    }
}

/// What one client measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    last_error: Option<String>,
}

impl Tally {
    fn ok(&mut self, started: Instant) {
        self.latencies_us
            .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }

    fn error(&mut self, started: Instant, what: String) {
        self.ok(started);
        self.errors += 1;
        self.last_error = Some(what);
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
    }
}

#[derive(Clone, Debug)]
struct Stats {
    scenario: Scenario,
    label: String,
    concurrency: usize,
    requests: usize,
    seconds: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    rss_mib: Option<f64>,
}

impl Stats {
    /// Several slices of one scenario: latencies over all of them, and as
    /// the rate the median of the slices' rates, so that a burst of other
    /// work on the machine during one slice does not decide the figure.
    fn from_slices(scenario: Scenario, concurrency: usize, slices: Vec<(Tally, f64)>) -> Self {
        let mut rates: Vec<f64> = slices
            .iter()
            .map(|(t, secs)| t.latencies_us.len() as f64 / secs)
            .collect();
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let mut tally = Tally::default();
        let mut seconds = 0.0;
        for (t, secs) in slices {
            tally.merge(t);
            seconds += secs;
        }
        let mut stats = Self::from_tally(scenario, concurrency, tally, seconds);
        if rates.len() % 2 == 0 {
            stats.rps = (median + rates[rates.len() / 2 - 1]) / 2.0;
        } else {
            stats.rps = median;
        }
        stats
    }

    fn from_tally(scenario: Scenario, concurrency: usize, mut tally: Tally, seconds: f64) -> Self {
        tally.latencies_us.sort_unstable();
        let l = &tally.latencies_us;
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                return f64::NAN;
            }
            let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
            l[i] as f64 / 1000.0
        };
        if let Some(e) = &tally.last_error {
            eprintln!(
                "  {} x{concurrency}: {} errors, last: {e}",
                scenario.name(),
                tally.errors
            );
        }
        Self {
            scenario,
            label: scenario.name().to_string(),
            concurrency,
            requests: l.len(),
            seconds,
            rps: l.len() as f64 / seconds,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            max_ms: l.last().map_or(f64::NAN, |&v| v as f64 / 1000.0),
            errors: tally.errors,
            rss_mib: None,
        }
    }

    fn print_row(&self) {
        println!(
            "{:<26} {:>5} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>9}",
            self.label,
            self.concurrency,
            self.rps,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
            self.rss_mib.map_or("-".to_string(), |r| format!("{r:.1}")),
        );
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario.key(),
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.errors,
            "server_peak_rss_mib": self.rss_mib.map(|r| round(r, 1)),
        })
    }
}

/// The 99th percentile of one tally's latencies, in milliseconds.
fn p99_ms(tally: &Tally) -> f64 {
    let mut l = tally.latencies_us.clone();
    l.sort_unstable();
    if l.is_empty() {
        return f64::NAN;
    }
    let i = ((l.len() as f64 * 0.99).ceil() as usize).clamp(1, l.len()) - 1;
    l[i] as f64 / 1000.0
}

fn round(v: f64, digits: i32) -> serde_json::Value {
    if v.is_finite() {
        let f = 10f64.powi(digits);
        serde_json::json!((v * f).round() / f)
    } else {
        serde_json::Value::Null
    }
}

fn print_header() {
    println!(
        "{:<26} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "scenario", "conc", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "RSS MiB"
    );
}

struct Shared {
    addr: SocketAddr,
    users: Vec<User>,
}

/// A tiny xorshift generator: the mix needs dice, not cryptography.
struct Dice(u64);

impl Dice {
    fn roll(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One request of a scenario; updates the session on a token answer.
async fn step(
    kind: Scenario,
    conn: &mut Conn,
    session: &mut Session,
    user: &User,
    dice: &mut Dice,
    tally: &mut Tally,
    health: &[u8],
) {
    let kind = match kind {
        Scenario::Mix => match dice.roll() % 100 {
            0..=89 => Scenario::Me,
            90..=98 => Scenario::Refresh,
            _ => Scenario::Login,
        },
        k => k,
    };
    let (request, expect) = match kind {
        Scenario::Health => (None, 200),
        Scenario::Me => (Some(get("/api/me", Some(&session.access))), 200),
        Scenario::Refresh => (Some(refresh_request(session)), 200),
        Scenario::Login => (Some(login_request(user)), 200),
        Scenario::RawUpdate | Scenario::Mix => unreachable!(),
    };
    let started = Instant::now();
    let result = conn.send(request.as_deref().unwrap_or(health)).await;
    match result {
        Ok(r) if r.status == expect => {
            if matches!(kind, Scenario::Refresh | Scenario::Login) {
                match serde_json::from_slice::<PairBody>(conn.body(&r)) {
                    Ok(pair) => {
                        session.access = pair.access_token;
                        session.refresh = pair.refresh_token;
                        tally.ok(started);
                    }
                    Err(e) => tally.error(started, format!("{kind:?}: bad token body: {e}")),
                }
            } else {
                tally.ok(started);
            }
        }
        Ok(r) => {
            let body = String::from_utf8_lossy(conn.body(&r)).into_owned();
            tally.error(started, format!("{kind:?}: status {}: {body}", r.status));
        }
        Err(e) => tally.error(started, format!("{kind:?}: {e}")),
    }
}

/// Runs `kind` with one client per session for `duration`. Requests that
/// are in flight at the deadline are finished and counted, and the rate is
/// taken over the whole time, so slow requests (a queue of logins) are not
/// cut off.
async fn run_http(
    shared: &Arc<Shared>,
    kind: Scenario,
    sessions: Vec<Session>,
    duration: Duration,
) -> (Tally, f64, Vec<Session>) {
    let concurrency = sessions.len();
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let mut c = Conn::new(shared.addr);
        c.connect().await.expect("connect to keyward");
        conns.push(c);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for (i, (mut session, mut conn)) in sessions.into_iter().zip(conns).enumerate() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let user = shared.users[i % shared.users.len()].clone();
            let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x2545_F491_4F6C_DD1D));
            let mut tally = Tally::default();
            let health = get("/health", None);
            tokio::time::sleep_until(start.into()).await;
            while Instant::now() < deadline {
                step(
                    kind,
                    &mut conn,
                    &mut session,
                    &user,
                    &mut dice,
                    &mut tally,
                    &health,
                )
                .await;
            }
            (tally, session)
        }));
    }
    let mut tally = Tally::default();
    let mut sessions = Vec::with_capacity(concurrency);
    for t in tasks {
        let (t, s) = t.await.unwrap();
        tally.merge(t);
        sessions.push(s);
    }
    (tally, start.elapsed().as_secs_f64(), sessions)
}

/// `/api/me` at a steady, light rate: `clients` clients, each one request
/// every `interval`. Its latency shows whether the request workers are
/// being held up, without the probe itself saturating the machine.
async fn probe_me(
    shared: &Arc<Shared>,
    sessions: &[Session],
    interval: Duration,
    duration: Duration,
) -> Tally {
    let mut tasks = Vec::new();
    for session in sessions.iter().cloned() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            conn.connect().await.unwrap();
            let request = get("/api/me", Some(&session.access));
            let mut tally = Tally::default();
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                ticks.tick().await;
                let started = Instant::now();
                match conn.send(&request).await {
                    Ok(r) if r.status == 200 => tally.ok(started),
                    Ok(r) => tally.error(started, format!("status {}", r.status)),
                    Err(e) => tally.error(started, e.to_string()),
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap());
    }
    tally
}

/// Logins at a steady concurrency until `stop` is set; returns the tally.
async fn login_flood(
    shared: &Arc<Shared>,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Tally {
    let mut tasks = Vec::new();
    for i in 0..clients {
        let shared = shared.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            let request = login_request(&shared.users[i % shared.users.len()]);
            let mut tally = Tally::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                match conn.send(&request).await {
                    Ok(r) if r.status == 200 => tally.ok(started),
                    Ok(r) => tally.error(started, format!("status {}", r.status)),
                    Err(e) => tally.error(started, e.to_string()),
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap());
    }
    tally
}

/// Signs in `n` sessions, `parallel` at a time.
async fn sign_in(shared: &Arc<Shared>, n: usize, parallel: usize) -> Vec<Session> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel.min(n) {
        let shared = shared.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = conn
                    .send(&login_request(&shared.users[i % shared.users.len()]))
                    .await
                    .expect("login");
                assert_eq!(
                    r.status,
                    200,
                    "login: {}",
                    String::from_utf8_lossy(conn.body(&r))
                );
                let pair: PairBody = serde_json::from_slice(conn.body(&r)).unwrap();
                out.push((
                    i,
                    Session {
                        access: pair.access_token,
                        refresh: pair.refresh_token,
                    },
                ));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

async fn register_users(shared: &Arc<Shared>, parallel: usize) {
    let mut tasks = Vec::new();
    for chunk in 0..parallel {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            for user in shared.users.iter().skip(chunk).step_by(parallel) {
                let r = conn
                    .send(&post_json(
                        "/auth/register",
                        &serde_json::json!({"username": user.username, "password": user.password}),
                    ))
                    .await
                    .expect("register");
                assert_eq!(
                    r.status,
                    201,
                    "register: {}",
                    String::from_utf8_lossy(conn.body(&r))
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = Conn::new(addr);
    loop {
        if let Ok(r) = conn.send(&get("/ready", None)).await {
            if r.status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "keyward never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// The database's own limit: the rotation's compare-and-swap UPDATE

/// Same shape as `db::sessions::rotate`'s compare-and-swap, without the
/// user join, the sliding expiry and the event: the one write a rotation
/// cannot do without.
const RAW_CAS: &str = "UPDATE sessions SET previous_jti = current_jti, current_jti = $1, \
     rotated_at = now(), last_used_at = now() WHERE id = $2 AND current_jti = $3";

/// The same compare-and-swap writing the `refreshed` event in the same
/// statement, as `db::sessions::rotate` does: what the event log costs a
/// rotation at the database.
const RAW_CAS_WITH_EVENT: &str =
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
/// `jti` of its own row for `duration`.
fn run_raw_update(
    db: &BenchDb,
    sql: &'static str,
    rows: &mut [(Uuid, Uuid)],
    concurrency: usize,
    duration: Duration,
) -> (Tally, f64) {
    let url = db.url();
    let barrier = Arc::new(std::sync::Barrier::new(concurrency + 1));
    let handles: Vec<_> = rows[..concurrency]
        .iter()
        .copied()
        .map(|(id, jti)| {
            let url = url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).expect("raw UPDATE connection");
                let mut current = jti;
                let mut tally = Tally::default();
                barrier.wait();
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline {
                    let next = Uuid::new_v4();
                    let started = Instant::now();
                    match diesel::sql_query(sql)
                        .bind::<SqlUuid, _>(next)
                        .bind::<SqlUuid, _>(id)
                        .bind::<SqlUuid, _>(current)
                        .execute(&mut conn)
                    {
                        Ok(1) => {
                            current = next;
                            tally.ok(started);
                        }
                        Ok(n) => tally.error(started, format!("{n} rows updated")),
                        Err(e) => tally.error(started, e.to_string()),
                    }
                }
                (tally, id, current)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut tally = Tally::default();
    // Each row's newest jti, for the next round's compare-and-swap.
    for (row, h) in rows.iter_mut().zip(handles) {
        let (t, id, jti) = h.join().unwrap();
        tally.merge(t);
        *row = (id, jti);
    }
    let seconds = start.elapsed().as_secs_f64();
    (tally, seconds)
}

fn raw_rows(conn: &mut PgConnection, n: usize) -> Vec<(Uuid, Uuid)> {
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

/// Tops `sessions` up to `total` rows with live filler sessions spread over
/// the seeded users, in one `INSERT … SELECT generate_series`, then
/// refreshes the planner's statistics (and the visibility map, so that
/// autovacuum does not wake up in the middle of the next measurement).
fn fill_sessions(conn: &mut PgConnection, total: i64) -> i64 {
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
    diesel::sql_query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'bench' WHERE id IN \
         (SELECT id FROM sessions WHERE user_agent = 'keyward-bench filler' \
          AND revoked_at IS NULL LIMIT $1)",
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

fn session_count(conn: &mut PgConnection) -> i64 {
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

/// `EXPLAIN (ANALYZE, BUFFERS)` of the rotation statement exactly as
/// `db::sessions::rotate` sends it, on a live row, rolled back.
fn explain_rotation(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        #[diesel(column_name = "QUERY PLAN")]
        line: String,
    }
    let (id, jti) = raw_rows(conn, 1000).pop().unwrap();
    let mut plan = Vec::new();
    // Roll back: the plan is all we want, not the rotation.
    let _ = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        conn.batch_execute(&format!(
            "PREPARE keyward_bench_rotate (uuid, timestamptz, float8, float8, uuid, uuid, text) AS {ROTATE_SQL}"
        ))?;
        plan = diesel::sql_query(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE keyward_bench_rotate \
             ('{}', date_trunc('second', now()), 86400, 2592000, '{id}', '{jti}', '127.0.0.1')",
            Uuid::new_v4()
        ))
        .load::<Line>(conn)?
        .into_iter()
        .map(|l| l.line)
        .collect();
        // keyward prepares the statement once per connection, so after five
        // executions PostgreSQL may switch to this generic plan.
        conn.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")?;
        plan.push("generic plan (what a long-lived prepared statement may use):".into());
        plan.extend(
            diesel::sql_query(format!(
                "EXPLAIN (COSTS OFF) EXECUTE keyward_bench_rotate \
                 ('{}', date_trunc('second', now()), 86400, 2592000, '{id}', '{jti}', '127.0.0.1')",
                Uuid::new_v4()
            ))
            .load::<Line>(conn)?
            .into_iter()
            .map(|l| format!("  {}", l.line)),
        );
        Err(diesel::result::Error::RollbackTransaction)
    });
    // Prepared statements outlive transactions.
    let _ = conn.batch_execute("DEALLOCATE keyward_bench_rotate");
    plan
}

// ---------------------------------------------------------------------------
// bcrypt on one core

/// The CPU time of one `Password::hash` at `cost` (the best of three): the
/// process is otherwise idle, so this is the hash's cost on one core, and
/// unlike the wall time it does not grow when other work on the machine
/// pushes the (lowest-priority) bcrypt thread aside. Returns (cpu, wall).
fn bcrypt_seconds(cost: u32) -> (f64, f64) {
    fn process_cpu() -> f64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into `t`, which outlives the call.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    }
    let password = Password::parse("correct horse battery staple", "password").unwrap();
    let mut times: Vec<(f64, f64)> = (0..3)
        .map(|_| {
            let (cpu, wall) = (process_cpu(), Instant::now());
            password.hash(cost).unwrap();
            (process_cpu() - cpu, wall.elapsed().as_secs_f64())
        })
        .collect();
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    times[0]
}

// ---------------------------------------------------------------------------
// Output: table, ratios, JSON, SVG

struct Ratio {
    name: &'static str,
    value: f64,
    target: &'static str,
    met: bool,
    detail: String,
}

fn ratio(
    name: &'static str,
    value: f64,
    at_least: Option<f64>,
    at_most: Option<f64>,
    detail: String,
) -> Ratio {
    let (target, met) = match (at_least, at_most) {
        (Some(min), _) => (
            Box::leak(format!(">= {min}").into_boxed_str()) as &str,
            value >= min,
        ),
        (_, Some(max)) => (
            Box::leak(format!("<= {max}").into_boxed_str()) as &str,
            value <= max,
        ),
        _ => ("", true),
    };
    Ratio {
        name,
        value,
        target,
        met,
        detail,
    }
}

fn svg_chart(rows: &[Stats], concurrencies: &[usize]) -> String {
    let (w, h) = (980.0, 420.0);
    let panel_w = 400.0;
    let panel_h = 300.0;
    let top = 50.0;
    let lefts = [70.0, 70.0 + panel_w + 110.0];
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let x_of = |c: usize, left: f64| -> f64 {
        let i = concurrencies.iter().position(|&x| x == c).unwrap_or(0) as f64;
        let n = (concurrencies.len().max(2) - 1) as f64;
        left + 20.0 + i * (panel_w - 40.0) / n
    };
    type Metric = fn(&Stats) -> f64;
    let panels: [(&str, Metric); 2] = [
        ("throughput (requests/s, log scale)", |s| s.rps),
        ("p99 latency (ms, log scale)", |s| s.p99_ms),
    ];
    for (panel, (title, metric)) in panels.iter().enumerate() {
        let left = lefts[panel];
        let values: Vec<f64> = rows
            .iter()
            .map(metric)
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let lo = values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .max(1e-3)
            .log10()
            .floor();
        let hi = values
            .iter()
            .copied()
            .fold(0.0, f64::max)
            .max(1e-3)
            .log10()
            .ceil()
            .max(lo + 1.0);
        let y_of = |v: f64| top + panel_h - (v.max(1e-9).log10() - lo) / (hi - lo) * panel_h;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{title}</text>"#,
            left,
            top - 15.0
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#333"/>"##
        );
        let mut e = lo as i32;
        while e <= hi as i32 {
            let y = y_of(10f64.powi(e));
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + panel_w,
                left - 5.0,
                y + 4.0,
                fmt_power(e)
            );
            e += 1;
        }
        for &c in concurrencies {
            let x = x_of(c, left);
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{}" text-anchor="middle">{c}</text>"#,
                top + panel_h + 16.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">concurrent clients</text>"#,
            left + panel_w / 2.0,
            top + panel_h + 34.0
        );
        for scenario in Scenario::ALL {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|s| s.scenario == scenario)
                .filter(|s| metric(s).is_finite() && metric(s) > 0.0)
                .map(|s| (x_of(s.concurrency, left), y_of(metric(s))))
                .collect();
            if points.is_empty() {
                continue;
            }
            let path: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                scenario.color(),
                path.join(" ")
            );
            for (x, y) in points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"#,
                    scenario.color()
                );
            }
        }
    }
    for (i, scenario) in Scenario::ALL.iter().enumerate() {
        let x = 70.0 + i as f64 * 150.0;
        let y = h - 22.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 4.0,
            scenario.color(),
            x + 18.0,
            scenario.name()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn fmt_power(e: i32) -> String {
    if e >= 0 {
        format!("{}", 10u64.pow(e as u32))
    } else {
        format!("{}", 10f64.powi(e))
    }
}

fn output_dir() -> PathBuf {
    // Benches run with the package root as the working directory.
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    PathBuf::from(target).join("bench")
}

// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let config = BenchConfig::from_env();
    if std::env::var("KEYWARD_BENCH_ONLY").is_ok_and(|v| v.trim() == "abuse") {
        run_abuse(&config);
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let duration = config.duration();
    println!(
        "keyward load benchmark: {cores} cores, {} s per scenario, concurrency {:?}, bcrypt cost {}",
        config.seconds, config.concurrencies, config.bcrypt_cost
    );

    let db = BenchDb::create(&config.postgres);
    eprintln!("created database {}", db.name);
    let server = Server::start(&config, &db.url());
    eprintln!(
        "keyward (pid {}) listening on {}",
        server.pid(),
        server.addr
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let users: Vec<User> = (0..16)
        .map(|i| User {
            username: format!("bench_user_{i:02}"),
            password: format!("bench-password-{i:02}"),
        })
        .collect();
    let shared = Arc::new(Shared {
        addr: server.addr,
        users,
    });

    runtime.block_on(wait_ready(server.addr));
    let seed_started = Instant::now();
    runtime.block_on(register_users(&shared, cores * 2));
    let max_c = config.max_concurrency();
    let mut sessions = runtime.block_on(sign_in(&shared, max_c, cores * 2));
    eprintln!(
        "seeded {} users and {} sessions in {:.1} s",
        shared.users.len(),
        sessions.len(),
        seed_started.elapsed().as_secs_f64()
    );

    let (bcrypt_s, bcrypt_wall) = bcrypt_seconds(config.bcrypt_cost);
    println!(
        "one bcrypt hash at cost {} on one core: {:.3} s CPU ({:.3} s wall) -> bcrypt limit {:.2} logins/s on {cores} cores",
        config.bcrypt_cost,
        bcrypt_s,
        bcrypt_wall,
        cores as f64 / bcrypt_s
    );

    let mut admin = db.connect();
    let small = fill_sessions(&mut admin, 1000);
    let mut raw = raw_rows(&mut admin, max_c);
    eprintln!("sessions table: {small} rows");

    // Concurrency-major order, and the scenarios that make the ratios
    // (health, me, refresh, raw UPDATE) interleaved in `rounds` slices: the
    // two halves of a ratio are measured side by side, so that other work on
    // the machine hits both alike. Logins and the mix (slow requests: a
    // slice would be mostly ramp-up and drain) run once for the full time.
    let rounds = config.rounds;
    let slice = duration / rounds as u32;
    let sliced = [
        Scenario::Health,
        Scenario::Me,
        Scenario::Refresh,
        Scenario::RawUpdate,
    ];
    let mut rows: Vec<Stats> = Vec::new();
    for &c in &config.concurrencies {
        let mut slices: BTreeMap<Scenario, Vec<(Tally, f64)>> = BTreeMap::new();
        let mut rss: BTreeMap<Scenario, f64> = BTreeMap::new();
        let plan = (0..rounds)
            .flat_map(|_| sliced.iter().map(|&s| (s, slice)))
            .chain([(Scenario::Login, duration), (Scenario::Mix, duration)]);
        for (scenario, d) in plan {
            server.reset_peak_rss();
            let (tally, seconds) = if scenario == Scenario::RawUpdate {
                run_raw_update(&db, RAW_CAS, &mut raw, c, d)
            } else {
                let mine: Vec<Session> = sessions.drain(..c).collect();
                let (tally, seconds, mut back) =
                    runtime.block_on(run_http(&shared, scenario, mine, d));
                back.append(&mut sessions);
                sessions = back;
                let peak = rss.entry(scenario).or_insert(0.0);
                *peak = peak.max(server.peak_rss_mib());
                (tally, seconds)
            };
            slices.entry(scenario).or_default().push((tally, seconds));
        }
        for scenario in Scenario::ALL {
            let mut stats = Stats::from_slices(scenario, c, slices.remove(&scenario).unwrap());
            stats.rss_mib = rss.get(&scenario).copied();
            eprintln!(
                "  {:<22} x{:<3} {:>9.1} req/s  p99 {:>8.2} ms  errors {}",
                stats.label, c, stats.rps, stats.p99_ms, stats.errors
            );
            rows.push(stats);
        }
    }

    // /api/me at a light, steady rate, idle and while logins flood the
    // server, alternating in `rounds` slices.
    let probe_clients = 2.min(sessions.len());
    let probe_interval = Duration::from_millis(2);
    let probe_rate = (probe_clients as f64 * 1000.0 / probe_interval.as_millis() as f64) as u64;
    let flood_clients = 16;
    let (mut idle_slices, mut flood_slices) = (Vec::new(), Vec::new());
    let (mut flood_tally, mut flood_seconds) = (Tally::default(), 0.0);
    for _ in 0..rounds {
        let idle = runtime.block_on(probe_me(
            &shared,
            &sessions[..probe_clients],
            probe_interval,
            slice,
        ));
        idle_slices.push((idle, slice.as_secs_f64()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (probe, logins, seconds) = runtime.block_on(async {
            let flood_started = Instant::now();
            let flood_task = {
                let shared = shared.clone();
                let stop = stop.clone();
                tokio::spawn(async move { login_flood(&shared, flood_clients, stop).await })
            };
            // Let the logins pile up first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let probe = probe_me(&shared, &sessions[..probe_clients], probe_interval, slice).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let logins = flood_task.await.unwrap();
            // Until the last login in flight has finished: every login
            // counted, and the next idle slice starts idle.
            (probe, logins, flood_started.elapsed().as_secs_f64())
        });
        flood_slices.push((probe, slice.as_secs_f64()));
        flood_tally.merge(logins);
        flood_seconds += seconds;
    }
    let median_p99 = |slices: &[(Tally, f64)]| -> f64 {
        let mut p: Vec<f64> = slices.iter().map(|(t, _)| p99_ms(t)).collect();
        p.sort_by(f64::total_cmp);
        p[p.len() / 2]
    };
    let (idle_p99, flood_p99) = (median_p99(&idle_slices), median_p99(&flood_slices));
    let mut idle = Stats::from_slices(Scenario::Me, probe_clients, idle_slices);
    idle.label = format!("/api/me probe, idle ({probe_rate} req/s)");
    let mut flood = Stats::from_slices(Scenario::Me, probe_clients, flood_slices);
    flood.label = format!("/api/me probe, {flood_clients} logins");
    eprintln!(
        "  login flood: {} logins ({} errors), {:.1} logins/s",
        flood_tally.latencies_us.len(),
        flood_tally.errors,
        flood_tally.latencies_us.len() as f64 / flood_seconds
    );

    // Refresh with ~1k sessions in the table, then with 1M, each right
    // after VACUUM ANALYZE and a checkpoint so that both start alike.
    let rc = config.reference_concurrency();
    let refresh_slices = |sessions: &mut Vec<Session>| -> Vec<(Tally, f64)> {
        (0..rounds)
            .map(|_| {
                let mine: Vec<Session> = sessions.drain(..rc).collect();
                let (tally, seconds, back) =
                    runtime.block_on(run_http(&shared, Scenario::Refresh, mine, slice));
                sessions.splice(0..0, back);
                (tally, seconds)
            })
            .collect()
    };
    fill_sessions(&mut admin, 0);
    let small_count = session_count(&mut admin);
    let mut at_small = Stats::from_slices(Scenario::Refresh, rc, refresh_slices(&mut sessions));
    at_small.label = format!("refresh, {} sessions", human(small_count));
    let plan_small = explain_rotation(&mut admin);
    let fill_started = Instant::now();
    let big = fill_sessions(&mut admin, config.big_sessions);
    eprintln!(
        "sessions table: {big} rows (bulk insert, VACUUM ANALYZE, CHECKPOINT: {:.1} s)",
        fill_started.elapsed().as_secs_f64()
    );
    let mut at_big = Stats::from_slices(Scenario::Refresh, rc, refresh_slices(&mut sessions));
    at_big.label = format!("refresh, {} sessions", human(big));
    let plan_big = explain_rotation(&mut admin);

    // What the event log costs a rotation: the raw compare-and-swap with and
    // without the `refreshed` event in the same statement, interleaved.
    let (mut cas_plain, mut cas_event) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        cas_plain.push(run_raw_update(&db, RAW_CAS, &mut raw, rc, slice));
        cas_event.push(run_raw_update(&db, RAW_CAS_WITH_EVENT, &mut raw, rc, slice));
    }
    let mut cas_plain = Stats::from_slices(Scenario::RawUpdate, rc, cas_plain);
    cas_plain.label = "raw CAS UPDATE".into();
    let mut cas_event = Stats::from_slices(Scenario::RawUpdate, rc, cas_event);
    cas_event.label = "raw CAS UPDATE + event".into();

    // Verifying an access token includes a look-up in the in-memory set of
    // revoked sessions: /api/me against /health, interleaved, with the set
    // (nearly) empty and then holding 100,000 sessions, loaded the way an
    // instance loads them after losing its listener connection.
    let health_and_me = |sessions: &mut Vec<Session>| -> (Stats, Stats) {
        let mut slices: BTreeMap<Scenario, Vec<(Tally, f64)>> = BTreeMap::new();
        for _ in 0..rounds {
            for s in [Scenario::Health, Scenario::Me] {
                let mine: Vec<Session> = sessions.drain(..rc).collect();
                let (tally, seconds, back) = runtime.block_on(run_http(&shared, s, mine, slice));
                sessions.splice(0..0, back);
                slices.entry(s).or_default().push((tally, seconds));
            }
        }
        let mut take = |s| Stats::from_slices(s, rc, slices.remove(&s).unwrap());
        (take(Scenario::Health), take(Scenario::Me))
    };
    let set_small = revoked_in_memory(server.addr);
    let (mut health_set0, mut me_set0) = health_and_me(&mut sessions);
    health_set0.label = format!("/health, {set_small} revoked in memory");
    me_set0.label = format!("/api/me, {set_small} revoked in memory");
    let set_big = fill_revocation_set(&mut admin, server.addr, 100_000);
    let (mut health_set1, mut me_set1) = health_and_me(&mut sessions);
    health_set1.label = format!("/health, {} revoked in memory", human(set_big));
    me_set1.label = format!("/api/me, {} revoked in memory", human(set_big));
    let threads = server.threads();

    // ---- report
    println!();
    print_header();
    for scenario in Scenario::ALL {
        for row in rows.iter().filter(|r| r.scenario == scenario) {
            row.print_row();
        }
    }
    println!();
    idle.print_row();
    flood.print_row();
    at_small.print_row();
    at_big.print_row();
    cas_plain.print_row();
    cas_event.print_row();
    health_set0.print_row();
    me_set0.print_row();
    health_set1.print_row();
    me_set1.print_row();
    println!("server threads at the end: {threads}");

    let best = |s: Scenario| -> &Stats {
        rows.iter()
            .filter(|r| r.scenario == s)
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
            .unwrap()
    };
    let at = |s: Scenario, c: usize| {
        rows.iter()
            .find(|r| r.scenario == s && r.concurrency == c)
            .unwrap()
    };
    let per_c = |a: Scenario, b: Scenario| -> String {
        config
            .concurrencies
            .iter()
            .map(|&c| format!("x{c}: {:.2}", at(a, c).rps / at(b, c).rps))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (me, health) = (best(Scenario::Me), best(Scenario::Health));
    let (refresh, raw_best) = (best(Scenario::Refresh), best(Scenario::RawUpdate));
    let login = best(Scenario::Login);
    let bcrypt_limit = cores as f64 / bcrypt_s;
    let mix_rss = rows
        .iter()
        .filter(|r| r.scenario == Scenario::Mix)
        .filter_map(|r| r.rss_mib)
        .fold(0.0, f64::max);
    let ratios = vec![
        ratio(
            "/api/me / /health",
            me.rps / health.rps,
            Some(0.9),
            None,
            format!(
                "peak {:.0} (x{}) / {:.0} (x{}); per concurrency {}",
                me.rps,
                me.concurrency,
                health.rps,
                health.concurrency,
                per_c(Scenario::Me, Scenario::Health)
            ),
        ),
        ratio(
            "refresh / raw UPDATE",
            refresh.rps / raw_best.rps,
            Some(0.6),
            None,
            format!(
                "peak {:.0} (x{}) / {:.0} (x{}); per concurrency {}",
                refresh.rps,
                refresh.concurrency,
                raw_best.rps,
                raw_best.concurrency,
                per_c(Scenario::Refresh, Scenario::RawUpdate)
            ),
        ),
        ratio(
            "logins/s / (cores / bcrypt)",
            login.rps / bcrypt_limit,
            Some(0.9),
            None,
            format!(
                "peak {:.2} logins/s (x{}) / ({cores} / {:.3} s = {:.2})",
                login.rps, login.concurrency, bcrypt_s, bcrypt_limit
            ),
        ),
        ratio(
            "/api/me p99 flood / idle",
            flood_p99 / idle_p99,
            None,
            Some(2.0),
            format!(
                "median of {rounds} slices' p99: {flood_p99:.2} ms with {flood_clients} concurrent logins / {idle_p99:.2} ms idle ({probe_rate} req/s probe); over all slices {:.2} / {:.2} ms",
                flood.p99_ms,
                idle.p99_ms,
            ),
        ),
        ratio(
            "refresh@1M / refresh@1k",
            at_big.rps / at_small.rps,
            Some(0.9),
            None,
            format!(
                "{:.0} req/s with {} sessions / {:.0} with {} (x{rc})",
                at_big.rps,
                human(big),
                at_small.rps,
                human(small_count)
            ),
        ),
        ratio(
            "CAS with event / without",
            cas_event.rps / cas_plain.rps,
            None,
            None,
            format!(
                "{:.0} / {:.0} rotations/s at the database (x{rc}): the cost of the refreshed event",
                cas_event.rps, cas_plain.rps
            ),
        ),
        ratio(
            "/api/me / /health, set empty",
            me_set0.rps / health_set0.rps,
            Some(0.9),
            None,
            format!(
                "{:.0} / {:.0} req/s (x{rc}) with {set_small} sessions in the revocation set",
                me_set0.rps, health_set0.rps
            ),
        ),
        ratio(
            "/api/me / /health, set 100k",
            me_set1.rps / health_set1.rps,
            Some(0.9),
            None,
            format!(
                "{:.0} / {:.0} req/s (x{rc}) with {} sessions in the revocation set",
                me_set1.rps,
                health_set1.rps,
                human(set_big)
            ),
        ),
        ratio(
            "peak RSS under mix (MiB)",
            mix_rss,
            None,
            Some(50.0),
            "server VmHWM, reset before each scenario".into(),
        ),
    ];
    println!();
    println!(
        "{:<30} {:>8} {:>8} {:>5}  detail",
        "target", "value", "target", "met"
    );
    for r in &ratios {
        println!(
            "{:<30} {:>8.2} {:>8} {:>5}  {}",
            r.name,
            r.value,
            r.target,
            if r.met { "yes" } else { "NO" },
            r.detail
        );
    }
    println!();
    println!(
        "EXPLAIN (ANALYZE, BUFFERS) of the rotation with {} sessions:",
        human(small_count)
    );
    for l in &plan_small {
        println!("  {l}");
    }
    println!(
        "EXPLAIN (ANALYZE, BUFFERS) of the rotation with {} sessions:",
        human(big)
    );
    for l in &plan_big {
        println!("  {l}");
    }

    let dir = output_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut extra = BTreeMap::new();
    extra.insert("login_probe_idle", idle.json());
    extra.insert("login_probe_flood", flood.json());
    extra.insert("refresh_small_table", at_small.json());
    extra.insert("refresh_large_table", at_big.json());
    extra.insert("raw_cas_without_event", cas_plain.json());
    extra.insert("raw_cas_with_event", cas_event.json());
    extra.insert("health_revocation_set_empty", health_set0.json());
    extra.insert("me_revocation_set_empty", me_set0.json());
    extra.insert("health_revocation_set_100k", health_set1.json());
    extra.insert("me_revocation_set_100k", me_set1.json());
    let json = serde_json::json!({
        "cores": cores,
        "seconds_per_scenario": config.seconds,
        "rounds": rounds,
        "requests_per_second_is": "the median of the rounds' rates for health, me, refresh and raw_update; the whole run's rate for login and mix",
        "probe_p99_median_ms": {"idle": round(idle_p99, 3), "flood": round(flood_p99, 3)},
        "concurrencies": config.concurrencies,
        "bcrypt_cost": config.bcrypt_cost,
        "bcrypt_seconds": round(bcrypt_s, 4),
        "bcrypt_wall_seconds": round(bcrypt_wall, 4),
        "login_flood": {
            "clients": flood_clients,
            "logins": flood_tally.latencies_us.len(),
            "errors": flood_tally.errors,
            "logins_per_second": round(flood_tally.latencies_us.len() as f64 / flood_seconds, 2),
        },
        "rows": rows.iter().map(Stats::json).collect::<Vec<_>>(),
        "extra": extra,
        "ratios": ratios.iter().map(|r| serde_json::json!({
            "name": r.name, "value": round(r.value, 3), "target": r.target, "met": r.met, "detail": r.detail,
        })).collect::<Vec<_>>(),
        "explain_small": plan_small,
        "explain_large": plan_big,
        "sessions_small": small_count,
        "sessions_large": big,
        "server_threads": threads,
    });
    std::fs::write(
        dir.join("load.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("load.svg"),
        svg_chart(&rows, &config.concurrencies),
    )
    .unwrap();
    println!(
        "\nwrote {} and {}",
        dir.join("load.json").display(),
        dir.join("load.svg").display()
    );
    drop(server);
    drop(db);
    run_abuse(&config);
}

/// The abuse-limit measurements, each on servers and databases of their own.
fn run_abuse(config: &BenchConfig) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let json = abuse::run(config, &runtime);
    let dir = output_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("abuse.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nwrote {}", path.display());
}

fn human(n: i64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 1000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}
