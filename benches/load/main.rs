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
//! Then issue 17's targets, on a second server with many signed-in users
//! (`server::Bench::start_targets`), each against a baseline from the same run,
//! interleaved: `/api/me` against a bare actix-web handler in this process
//! (a), refresh against the minimal compare-and-swap `UPDATE` (b),
//! introspection against `/api/me` (c), logins against bcrypt (d, from the
//! main run), refresh with big tables against small ones (e, main run), the
//! server's memory over a mixed soak (f), keyward-verify's protected route
//! against an unprotected one (g). Last, the abuse limits (`abuse.rs`).
//!
//! Environment (all optional):
//! - `KEYWARD_BENCH_SECONDS`: seconds per scenario (default 5)
//! - `KEYWARD_BENCH_CONCURRENCY`: comma-separated client counts (default 1,8,32,64)
//! - `KEYWARD_BENCH_BCRYPT_COST`: bcrypt cost (default: the configured one, 12)
//! - `KEYWARD_BENCH_SESSIONS`: rows in `sessions` for the large-table run (default 1000000)
//! - `KEYWARD_BENCH_EVENTS`: rows in `events` for the large-table run (default 10000000)
//! - `KEYWARD_BENCH_POSTGRES`: server URL without a database (default postgres://postgres@127.0.0.1:5432)
//! - `KEYWARD_BENCH_SERVER_LOG`: the server's `RUST_LOG` during load (default warn)
//! - `KEYWARD_BENCH_ROUNDS`: slices the paired scenarios are interleaved in (default 5;
//!   targets a, c and g take four times as many, of the same length)
//! - `KEYWARD_BENCH_SERVER_ENV`: extra server settings, `K=V,K=V`
//! - `KEYWARD_BENCH_ONLY=abuse`: only the abuse-limit measurements (`abuse.rs`);
//!   `KEYWARD_BENCH_ONLY=targets`: only issue 17's targets (without d and e)
//! - `KEYWARD_BENCH_TARGET_SESSIONS`: users signed in on the targets' server,
//!   each client cycling through its share of their tokens (default 1000)
//! - `KEYWARD_BENCH_SOAK_SECONDS`: the mixed soak of target f (default 600;
//!   memory sampled at every tenth, reported at 1/10, 1/2 and the end; 0
//!   skips it)
//!
//! Output: tables on stdout, `target/bench/load.json`, `target/bench/load.svg`,
//! `target/bench/targets.json` and `target/bench/abuse.json`.
//!
//! Layout: [`client`] is the HTTP client, [`server`] the child process and
//! the runs' fixture, [`database`] the bench database, [`scenarios`] what the
//! clients do, [`limits`] the figures below the server, [`inproc`] the
//! actix-web baselines inside this process, [`procfs`] what `/proc` says
//! (CPU, memory), [`report`], [`svg`] and [`targets`] the output; each
//! experiment is a module of its own, listed in [`main_run`] and
//! [`targets_run`] in the order it runs.

// A failed step panics: unwinding runs the Drop of the server child and of
// the database, which clean up; exit(1) would leave both behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod bare_process;
mod client;
mod database;
mod event_cost;
mod inproc;
mod limits;
mod login_probe;
mod procfs;
mod refresh_cost;
mod report;
mod resource_server;
mod revocation_set;
mod scenarios;
mod server;
mod settings;
mod soak;
mod svg;
mod table_size;
mod targets;
mod throughput;
mod token_checks;

use crate::limits::Bcrypt;
use crate::report::{write_output, LoadResults};
use crate::server::Bench;
use crate::settings::{BenchConfig, Only};
use crate::targets::{not_measured, Goal, Target};

fn main() {
    // This binary is also target a's baseline server (see `bare_process`).
    bare_process::serve_if_asked();
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let config = BenchConfig::from_env();
    let main_run = (config.only == Only::All).then(|| main_run(&config));
    if config.only != Only::Abuse {
        targets_run(&config, main_run.as_ref());
    }
    if config.only != Only::Targets {
        run_abuse(&config);
    }
}

/// What the targets table takes from the main run.
struct MainRun {
    login: Target,
    table_size: Target,
    mix_rss_mib: f64,
}

/// The main run: one server at the configured bcrypt cost, 16 users, a
/// session per client.
fn main_run(config: &BenchConfig) -> MainRun {
    let mut bench = Bench::start(config);
    let bcrypt = Bcrypt::measure(config.bcrypt_cost);
    bcrypt.print(bench.cores);

    let throughput = throughput::run(&mut bench);
    let login_probe = login_probe::run(&mut bench);
    let table_size = table_size::run(&mut bench);
    let event_cost = event_cost::run(&mut bench);
    let revocation_set = revocation_set::run(&mut bench);

    report::write_load(
        &bench,
        &LoadResults {
            bcrypt: &bcrypt,
            throughput: &throughput,
            login_probe: &login_probe,
            table_size: &table_size,
            event_cost: &event_cost,
            revocation_set: &revocation_set,
        },
    );
    MainRun {
        login: throughput.login_target(bench.cores, &bcrypt),
        table_size: table_size.target(),
        mix_rss_mib: throughput.mix_rss_mib(),
    }
}

/// Issue 17's targets, on a server of their own with many signed-in users.
fn targets_run(config: &BenchConfig, main_run: Option<&MainRun>) {
    let mut bench = Bench::start_targets(config);
    let token_checks = token_checks::run(&mut bench); // a, c
    let refresh_cost = refresh_cost::run(&mut bench); // b
    let resource_server = resource_server::run(&mut bench); // g
    let soak = soak::run(&mut bench); // f
    let context = serde_json::json!({
        "cores": bench.cores,
        "clients": config.reference_concurrency(),
        "sessions": bench.sessions.len(),
        "seconds_per_scenario": config.seconds,
        "rounds": config.rounds,
        "rounds_of_a_c_g": config.paired_rounds(),
        "soak_seconds": config.soak_seconds,
        "requests_per_second_is": "the median of the rounds' rates; soak: the whole run's",
    });
    drop(bench);

    let from_main = |pick: fn(&MainRun) -> &Target, id, name| {
        main_run.map_or_else(
            || {
                let why = "KEYWARD_BENCH_ONLY=targets";
                not_measured(id, name, Goal::RatioAtLeast(0.9), "", why)
            },
            |m| pick(m).clone(),
        )
    };
    let mut targets = vec![
        token_checks.me_target(),
        refresh_cost.target(),
        token_checks.introspection_target(),
        from_main(|m| &m.login, "d", "logins / (cores / bcrypt)"),
        from_main(|m| &m.table_size, "e", "refresh, big tables / small"),
    ];
    targets.extend(soak::targets(&soak, main_run.map(|m| m.mix_rss_mib)));
    targets.push(resource_server::target(&resource_server));
    targets::print_and_write(&targets, context);
}

/// The abuse-limit measurements, each on servers and databases of their own.
fn run_abuse(config: &BenchConfig) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let json = abuse::run(config, &runtime);
    let path = write_output("abuse.json", &serde_json::to_string_pretty(&json).unwrap());
    println!("\nwrote {}", path.display());
}
