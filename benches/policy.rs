//! The session-policy measurements of issue 16: `cargo bench --bench policy`.
//!
//! 1. Signing everyone out with a large `sessions` table: how long
//!    `services::session_policy::revoke_all` takes, and what refreshes of
//!    the sessions it spares see meanwhile (latency before and during, by
//!    clients refreshing over HTTP against the app running in-process).
//! 2. `GET /admin/stats`'s queries over a large `events` table: the first
//!    overview of 168 hours, which rolls up the week's complete hours into
//!    `event_hours` (what a first request after the upgrade pays, unless the
//!    cleanup job got there first), then `services::stats::overview` for 24
//!    and 168 hours with the rollup in place, the cleanup job's rollup step
//!    when nothing is left to roll up, and the plan of the hourly count.
//!
//! Each part creates a database of its own (`keyward_policy_bench_<random>`)
//! and drops it at the end. It prints what it measured and asserts nothing.
//!
//! Environment (all optional):
//! - `KEYWARD_BENCH_SESSIONS`: sessions to sign out (default 1000000)
//! - `KEYWARD_BENCH_EVENTS`: events in the log (default 10000000)
//! - `KEYWARD_BENCH_CLIENTS`: refreshing clients (default 8)
//! - `KEYWARD_BENCH_POSTGRES`: server URL without a database
//!   (default postgres://postgres@127.0.0.1:5432)
//! - `KEYWARD_BENCH_ONLY`: `revoke` or `stats` to run one part

// A failed step panics: unwinding runs the database's Drop, which drops it;
// exit(1) would leave it behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use keyward::clock::Clock;
use keyward::config::{Secret, Settings};
use keyward::services::{session_policy, stats};
use keyward::startup::Application;
use serde_json::{json, Value};

#[path = "load/database.rs"]
mod database;

use database::BenchDb;

/// A migrated database of its own, dropped when the value is.
fn migrated_db(base: &str) -> BenchDb {
    let db = BenchDb::create(base, "keyward_policy_bench");
    keyward::db::prepare_database(&db.url()).expect("migrate");
    db
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    println!("  {what}: {:.1} s", start.elapsed().as_secs_f64());
    out
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn describe(label: &str, mut latencies: Vec<Duration>, errors: usize, seconds: f64) {
    latencies.sort();
    println!(
        "  {label:<28} {:>7} refreshes ({:>6.0}/s), p50 {:>6.1} ms, p99 {:>6.1} ms, max {:>7.1} ms, errors {errors}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
    );
}

/// What the refreshing clients saw in one phase.
#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    errors: usize,
}

fn revoke_all_part(base: &str) {
    let sessions: i64 = env_or("KEYWARD_BENCH_SESSIONS", 1_000_000);
    let clients: usize = env_or("KEYWARD_BENCH_CLIENTS", 8);
    println!("signing everyone out: {sessions} sessions, {clients} clients refreshing meanwhile");
    let db = migrated_db(base);
    timed("insert the sessions (1,000 users)", || {
        db.connect()
            .batch_execute(&format!(
                "INSERT INTO users (id, username, password_hash, created_at) \
                 SELECT md5('bulk' || i)::uuid, 'bulk' || i, 'x', now() FROM generate_series(0, 999) i; \
                 INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, expires_at) \
                 SELECT gen_random_uuid(), md5('bulk' || (i % 1000))::uuid, gen_random_uuid(), now(), \
                        now() - interval '1 hour' - (i % 3600) * interval '1 second', now(), now() + interval '1 day' \
                 FROM generate_series(1, {sessions}) i;"
            ))
            .expect("insert sessions")
    });
    timed("VACUUM ANALYZE sessions", || {
        db.connect()
            .batch_execute("VACUUM ANALYZE sessions")
            .expect("vacuum")
    });

    let mut settings = Settings::defaults().expect("settings");
    settings.database.url = Secret::new(db.url());
    settings.database.pool_size = Some(16);
    settings.server.port = 0;
    settings.auth.bcrypt_cost = 4;
    settings.rate_limit.enabled = false;
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let app = Application::build(settings, Clock::system()).expect("app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        let http = reqwest::Client::new();
        let mut tokens = Vec::new();
        for i in 0..clients {
            let (username, password) = (format!("refresher{i}"), "refresher-password");
            let body = json!({"username": username, "password": password});
            let r = http
                .post(format!("{address}/auth/register"))
                .json(&body)
                .send()
                .await;
            assert!(r.is_ok_and(|r| r.status() == 201), "register");
            let pair: Value = http
                .post(format!("{address}/auth/login"))
                .json(&body)
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("pair");
            tokens.push(pair["refresh_token"].as_str().expect("token").to_string());
        }

        let phase = Arc::new(Mutex::new(Phase::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for token in tokens {
            let (http, address, phase, stop) =
                (http.clone(), address.clone(), phase.clone(), stop.clone());
            workers.push(actix_web::rt::spawn(async move {
                let mut token = token;
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let r = http
                        .post(format!("{address}/auth/refresh"))
                        .json(&json!({"refresh_token": token}))
                        .send()
                        .await;
                    let took = start.elapsed();
                    let pair = match r {
                        Ok(r) if r.status() == 200 => r.json::<Value>().await.ok(),
                        _ => None,
                    };
                    let mut phase = phase.lock().unwrap_or_else(|e| e.into_inner());
                    match pair.and_then(|p| p["refresh_token"].as_str().map(String::from)) {
                        Some(next) => {
                            phase.latencies.push(took);
                            token = next;
                        }
                        None => phase.errors += 1,
                    }
                }
            }));
        }
        let take = |phase: &Mutex<Phase>| {
            std::mem::take(&mut *phase.lock().unwrap_or_else(|e| e.into_inner()))
        };

        let baseline = Duration::from_secs(5);
        tokio::time::sleep(baseline).await;
        let before = take(&phase);
        describe(
            "before (5 s)",
            before.latencies,
            before.errors,
            baseline.as_secs_f64(),
        );

        let url = db.url();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&url).expect("connect");
            let now = Utc::now();
            session_policy::revoke_all(&mut conn, None, now - TimeDelta::minutes(10), now)
        })
        .await
        .expect("join")
        .expect("revoke_all");
        let took = started.elapsed();
        let during = take(&phase);
        println!(
            "  revoke_all: {} sessions in {:.1} s ({:.0}/s, batches of {})",
            outcome.revoked,
            took.as_secs_f64(),
            outcome.revoked as f64 / took.as_secs_f64(),
            session_policy::REVOKE_ALL_BATCH
        );
        describe(
            "during revoke_all",
            during.latencies,
            during.errors,
            took.as_secs_f64(),
        );
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.await;
        }
        handle.stop(true).await;
    });
}

fn stats_part(base: &str) {
    let events: i64 = env_or("KEYWARD_BENCH_EVENTS", 10_000_000);
    println!("GET /admin/stats: {events} events over the last 30 days");
    let db = migrated_db(base);
    let mut conn = db.connect();
    // Mostly refreshes, as in real use; every kind the overview counts.
    timed("insert the events", || {
        conn.batch_execute(&format!(
            "INSERT INTO events (at, kind, detail) \
             SELECT now() - (i::double precision / {events}) * interval '30 days', \
                    (ARRAY['refreshed','refreshed','refreshed','refreshed','refreshed','refreshed', \
                           'login_succeeded','login_failed','logout','session_revoked'])[1 + i % 10], \
                    CASE WHEN i % 10 = 8 THEN '{{\"revoked\": 1}}'::jsonb ELSE '{{}}'::jsonb END \
             FROM generate_series(1, {events}) i"
        ))
        .expect("insert events")
    });
    timed("VACUUM ANALYZE events", || {
        conn.batch_execute("VACUUM ANALYZE events").expect("vacuum")
    });
    let first = timed("first overview of 168 hours (rolls up the week)", || {
        stats::overview(&mut conn, 168, Utc::now()).expect("overview")
    });
    assert_eq!(first.hours.len(), 168);
    for hours in [24, 168] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let overview = stats::overview(&mut conn, hours, Utc::now()).expect("overview");
            times.push(start.elapsed());
            assert_eq!(overview.hours.len(), hours as usize);
        }
        times.sort();
        println!(
            "  overview of {hours:>3} hours: median {:.1} ms, slowest {:.1} ms (5 runs, warm cache)",
            percentile(&times, 0.5),
            percentile(&times, 1.0)
        );
    }
    let start = Instant::now();
    let added = stats::roll_up(&mut conn, Utc::now()).expect("roll up");
    println!(
        "  the cleanup job's rollup step with the week rolled up: {:.1} ms ({added} hours added)",
        start.elapsed().as_secs_f64() * 1000.0
    );
    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let plan: Vec<Plan> = diesel::sql_query(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT date_trunc('hour', at, 'UTC') AS hour, kind, count(*) \
         FROM events WHERE at >= now() - interval '24 hours' AND at < now() \
         AND kind = ANY(ARRAY['login_succeeded','login_failed','refreshed','reuse_detected','session_revoked']) \
         GROUP BY 1, 2",
    )
    .load(&mut conn)
    .expect("explain");
    println!("  the 24-hour count's plan:");
    for p in plan {
        println!("    {}", p.line);
    }
}

fn main() {
    let base: String = env_or(
        "KEYWARD_BENCH_POSTGRES",
        "postgres://postgres@127.0.0.1:5432".to_string(),
    );
    let only: String = env_or("KEYWARD_BENCH_ONLY", String::new());
    if only.is_empty() || only == "revoke" {
        revoke_all_part(&base);
    }
    if only.is_empty() || only == "stats" {
        stats_part(&base);
    }
}
