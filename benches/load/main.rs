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
//!
//! Layout: [`client`] is the HTTP client, [`server`] the child process and
//! the run's fixture, [`scenarios`] what the clients do, [`limits`] the
//! figures below the server, [`report`] and [`svg`] the output; each
//! experiment is a module of its own, listed in `main` in the order it runs.

// A failed step panics: unwinding runs the Drop of the server child and of
// the database, which clean up; exit(1) would leave both behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod client;
mod database;
mod event_cost;
mod limits;
mod login_probe;
mod report;
mod revocation_set;
mod scenarios;
mod server;
mod settings;
mod svg;
mod table_size;
mod throughput;

use crate::limits::Bcrypt;
use crate::report::{write_output, LoadResults};
use crate::server::Bench;
use crate::settings::BenchConfig;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let config = BenchConfig::from_env();
    if std::env::var("KEYWARD_BENCH_ONLY").is_ok_and(|v| v.trim() == "abuse") {
        run_abuse(&config);
        return;
    }
    let mut bench = Bench::start(&config);
    let bcrypt = Bcrypt::measure(config.bcrypt_cost);
    bcrypt.print(config.bcrypt_cost, bench.cores);

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
    drop(bench);
    run_abuse(&config);
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
