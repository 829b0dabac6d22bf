//! The abuse limits under load (API.md section 3, "Abuse limits"), printed,
//! never asserted:
//!
//! - a flood of 500 concurrent logins at bcrypt cost 12 against the bound
//!   on waiting password checks (`auth.max_pending_hashes`, its default):
//!   `/api/me` and refresh p99 during the flood against the same probes
//!   without it, in the same run; how many logins got `503`, and how soon
//!   the first did. Flood clients honour `Retry-After` and try again, as
//!   the contract asks of a client.
//! - refresh throughput with the per-session limit on (a budget so large it
//!   never refuses, so that only the check's cost shows) against off, two
//!   servers on one database, interleaved.
//!
//! `KEYWARD_BENCH_ONLY=abuse` runs only this part.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{login_request, refresh_request, Conn, PairBody, Session};
use crate::database::BenchDb;
use crate::report::{print_header, round, Stats};
use crate::scenarios::{
    probe_me, register_users, run_http, sign_in, wait_ready, Scenario, Shared, Tally,
};
use crate::server::Server;
use crate::settings::BenchConfig;

/// Concurrent logins in the flood.
const FLOOD_LOGINS: usize = 500;

/// Each probe client sends one request every this long.
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// How the flood went.
#[derive(Default)]
struct Flood {
    ok: AtomicUsize,
    refused: AtomicUsize,
    /// 503s among the first answers of the 500 clients.
    refused_first: AtomicUsize,
    other: AtomicUsize,
    /// Microseconds from the release to the first 503; `u64::MAX`: none.
    first_refusal_us: AtomicU64,
}

/// One flood client: logs in until `stop`, waiting `Retry-After` (1 s)
/// after a 503.
async fn flood_client(
    shared: Arc<Shared>,
    i: usize,
    barrier: Arc<tokio::sync::Barrier>,
    stop: Arc<AtomicBool>,
    flood: Arc<Flood>,
    released: Arc<std::sync::OnceLock<Instant>>,
) {
    let mut conn = Conn::new(shared.addr);
    let request = login_request(&shared.users[i % shared.users.len()]);
    let connected = conn.connect().await.is_ok();
    barrier.wait().await;
    let start = *released.get_or_init(Instant::now);
    if !connected {
        flood.other.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        match conn.send(&request).await {
            Ok(r) if r.status == 200 => {
                flood.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) if r.status == 503 => {
                let at = start.elapsed().as_micros() as u64;
                flood.first_refusal_us.fetch_min(at, Ordering::Relaxed);
                flood.refused.fetch_add(1, Ordering::Relaxed);
                if first {
                    flood.refused_first.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => {
                flood.other.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        first = false;
    }
}

/// `/api/me` with one session and refresh with another, each one request
/// every [`PROBE_EVERY`], for `duration`.
async fn probe(
    shared: &Arc<Shared>,
    me: &Session,
    refresh: &mut Session,
    duration: Duration,
) -> (Tally, Tally) {
    let me_probe = probe_me(shared, std::slice::from_ref(me), PROBE_EVERY, duration);
    let refresh_probe = async {
        let mut conn = Conn::new(shared.addr);
        let mut tally = Tally::default();
        let mut ticks = tokio::time::interval(PROBE_EVERY);
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            ticks.tick().await;
            let started = Instant::now();
            match conn.send(&refresh_request(refresh)).await {
                Ok(r) if r.status == 200 => {
                    match serde_json::from_slice::<PairBody>(conn.body(&r)) {
                        Ok(pair) => {
                            refresh.refresh = pair.refresh_token;
                            tally.ok(started);
                        }
                        Err(e) => tally.error(started, e.to_string()),
                    }
                }
                Ok(r) => tally.error(started, format!("refresh: status {}", r.status)),
                Err(e) => tally.error(started, e.to_string()),
            }
        }
        tally
    };
    tokio::join!(me_probe, refresh_probe)
}

fn start(config: &BenchConfig, db: &BenchDb, extra: &[(&str, &str)]) -> (Server, Arc<Shared>) {
    let server = Server::start_with(config, &db.url(), extra);
    let shared = Shared::new(server.addr, "abuse", 16);
    (server, shared)
}

fn ms(us: u64) -> String {
    if us == u64::MAX {
        "none".into()
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

/// The login flood against the bound, with the probes.
fn login_flood(config: &BenchConfig, runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let db = BenchDb::create(&config.postgres, "keyward_bench");
    // Cost 12 and the default bound; no other limit (the bound stays).
    let (server, shared) = start(config, &db, &[("KEYWARD__AUTH__BCRYPT_COST", "12")]);
    runtime.block_on(wait_ready(server.addr));
    runtime.block_on(register_users(&shared, cores * 2));
    let sessions = runtime.block_on(sign_in(&shared, 2, 2));
    let (me, mut refresh) = (sessions[0].clone(), sessions[1].clone());
    let duration = config.duration();

    let (idle_me, idle_refresh) = runtime.block_on(probe(&shared, &me, &mut refresh, duration));
    let flood = Arc::new(Flood {
        first_refusal_us: AtomicU64::new(u64::MAX),
        ..Flood::default()
    });
    let (flood_me, flood_refresh, flood_seconds) = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(tokio::sync::Barrier::new(FLOOD_LOGINS + 1));
        let released = Arc::new(std::sync::OnceLock::new());
        let clients: Vec<_> = (0..FLOOD_LOGINS)
            .map(|i| {
                tokio::spawn(flood_client(
                    shared.clone(),
                    i,
                    barrier.clone(),
                    stop.clone(),
                    flood.clone(),
                    released.clone(),
                ))
            })
            .collect();
        barrier.wait().await;
        let started = *released.get_or_init(Instant::now);
        let (me_tally, refresh_tally) = probe(&shared, &me, &mut refresh, duration).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.await;
        }
        (me_tally, refresh_tally, started.elapsed().as_secs_f64())
    });
    drop(server);

    let (ok, refused) = (
        flood.ok.load(Ordering::Relaxed),
        flood.refused.load(Ordering::Relaxed),
    );
    let refused_first = flood.refused_first.load(Ordering::Relaxed);
    let first_us = flood.first_refusal_us.load(Ordering::Relaxed);
    let rows = [
        ("/api/me, no flood", idle_me),
        ("/api/me, login flood", flood_me),
        ("refresh, no flood", idle_refresh),
        ("refresh, login flood", flood_refresh),
    ];
    let mut json_rows = Vec::new();
    println!();
    println!(
        "login flood: {FLOOD_LOGINS} concurrent logins at bcrypt cost 12, auth.max_pending_hashes {} (16 per core)",
        16 * cores
    );
    println!(
        "  first answers: {refused_first} of {FLOOD_LOGINS} were 503; first 503 after {}",
        ms(first_us)
    );
    println!(
        "  over {flood_seconds:.1} s: {ok} logins signed in ({:.1}/s), {refused} answers 503, {} other",
        ok as f64 / flood_seconds,
        flood.other.load(Ordering::Relaxed)
    );
    print_header();
    for (label, tally) in rows {
        let mut stats = Stats::from_tally(Scenario::Me, 1, tally, duration.as_secs_f64());
        stats.label = label.to_string();
        stats.print_row();
        json_rows.push(stats.json());
    }
    serde_json::json!({
        "flood_logins": FLOOD_LOGINS,
        "max_pending_hashes": 16 * cores,
        "first_answers_503": refused_first,
        "first_503_ms": (first_us != u64::MAX).then(|| first_us as f64 / 1000.0),
        "signed_in": ok,
        "answers_503": refused,
        "seconds": round(flood_seconds, 2),
        "probes": json_rows,
    })
}

/// Refresh throughput with the per-session limit checked (never refusing)
/// against not checked, interleaved.
fn refresh_limit_cost(
    config: &BenchConfig,
    runtime: &tokio::runtime::Runtime,
) -> serde_json::Value {
    let db = BenchDb::create(&config.postgres, "keyward_bench");
    let cheap = [("KEYWARD__AUTH__BCRYPT_COST", "4")];
    let (off, shared_off) = start(config, &db, &cheap);
    runtime.block_on(wait_ready(off.addr));
    let (on, shared_on) = start(
        config,
        &db,
        &[
            ("KEYWARD__AUTH__BCRYPT_COST", "4"),
            ("KEYWARD__RATE_LIMIT__ENABLED", "true"),
            (
                "KEYWARD__RATE_LIMIT__REFRESH_PER_SESSION_PER_MINUTE",
                "4000000000",
            ),
        ],
    );
    runtime.block_on(wait_ready(on.addr));
    let clients = config.reference_concurrency();
    runtime.block_on(register_users(&shared_off, 4));
    let mut sessions = runtime.block_on(sign_in(&shared_off, clients, 4));
    let slice = config.slice();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..config.rounds {
        for (shared, out) in [(&shared_on, &mut with), (&shared_off, &mut without)] {
            let mine = std::mem::take(&mut sessions);
            let (tally, seconds, back) =
                runtime.block_on(run_http(shared, Scenario::Refresh, mine, slice));
            sessions = back;
            out.push((tally, seconds));
        }
    }
    drop((on, off));
    let mut with = Stats::from_slices(Scenario::Refresh, clients, with);
    with.label = "refresh, limit on".into();
    let mut without = Stats::from_slices(Scenario::Refresh, clients, without);
    without.label = "refresh, limit off".into();
    println!();
    println!(
        "per-session refresh limit: {} rounds interleaved",
        config.rounds
    );
    print_header();
    with.print_row();
    without.print_row();
    println!("  on / off: {:.3}", with.rps / without.rps);
    serde_json::json!({
        "on": with.json(),
        "off": without.json(),
        "ratio": round(with.rps / without.rps, 3),
    })
}

/// Both measurements; the JSON for `load.json`.
pub(crate) fn run(config: &BenchConfig, runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    let flood = login_flood(config, runtime);
    let refresh = refresh_limit_cost(config, runtime);
    serde_json::json!({"login_flood": flood, "refresh_limit": refresh})
}
