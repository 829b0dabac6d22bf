//! What the run prints and writes: a row per measured scenario, the ratios
//! against their targets, and the files under `target/bench/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::event_cost::EventCost;
use crate::limits::Bcrypt;
use crate::login_probe::LoginProbe;
use crate::procfs::Cpu;
use crate::revocation_set::RevocationSet;
use crate::scenarios::{Scenario, Tally};
use crate::server::Bench;
use crate::svg;
use crate::table_size::TableSize;
use crate::throughput::Throughput;

#[derive(Clone, Debug)]
pub(crate) struct Stats {
    pub(crate) scenario: Scenario,
    pub(crate) label: String,
    pub(crate) concurrency: usize,
    pub(crate) requests: usize,
    pub(crate) seconds: f64,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) errors: u64,
    pub(crate) rss_mib: Option<f64>,
}

impl Stats {
    /// Several slices of one scenario: latencies over all of them, and as
    /// the rate the median of the slices' rates, so that a burst of other
    /// work on the machine during one slice does not decide the figure.
    pub(crate) fn from_slices(
        scenario: Scenario,
        concurrency: usize,
        slices: Vec<(Tally, f64)>,
    ) -> Self {
        let mut rates: Vec<f64> = slices.iter().map(|(t, secs)| rate(t, *secs)).collect();
        let median = median(&mut rates);
        let mut tally = Tally::default();
        let mut seconds = 0.0;
        for (t, secs) in slices {
            tally.merge(t);
            seconds += secs;
        }
        let mut stats = Self::from_tally(scenario, concurrency, tally, seconds);
        stats.rps = median;
        stats
    }

    pub(crate) fn from_tally(
        scenario: Scenario,
        concurrency: usize,
        mut tally: Tally,
        seconds: f64,
    ) -> Self {
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

    pub(crate) fn print_row(&self) {
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

    pub(crate) fn json(&self) -> serde_json::Value {
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

/// One slice of a scenario with the CPU it cost.
pub(crate) struct Slice {
    pub(crate) tally: Tally,
    pub(crate) seconds: f64,
    pub(crate) cpu: Cpu,
}

impl Slice {
    /// Its requests per second.
    pub(crate) fn rate(&self) -> f64 {
        rate(&self.tally, self.seconds)
    }
}

/// Requests per second of `tally` over `seconds`.
fn rate(tally: &Tally, seconds: f64) -> f64 {
    tally.latencies_us.len() as f64 / seconds
}

/// The median of `values` (sorted in place; the mean of the middle two for
/// an even count, NaN for none).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 0 => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        n => values[n / 2],
    }
}

/// A scenario's slices over the rounds.
#[derive(Default)]
pub(crate) struct Series(pub(crate) Vec<Slice>);

impl Series {
    /// The rate is the median of the slices' (see [`Stats::from_slices`]).
    pub(crate) fn stats(self, scenario: Scenario, concurrency: usize, label: &str) -> (Stats, Cpu) {
        let mut cpu = Cpu::default();
        let mut requests = 0;
        let slices = self
            .0
            .into_iter()
            .map(|s| {
                cpu += s.cpu;
                requests += s.tally.latencies_us.len();
                (s.tally, s.seconds)
            })
            .collect();
        let mut stats = Stats::from_slices(scenario, concurrency, slices);
        stats.label = label.to_string();
        (stats, cpu.per_request_us(requests))
    }
}

/// The 99th percentile of one tally's latencies, in milliseconds.
pub(crate) fn p99_ms(tally: &Tally) -> f64 {
    let mut l = tally.latencies_us.clone();
    l.sort_unstable();
    if l.is_empty() {
        return f64::NAN;
    }
    let i = ((l.len() as f64 * 0.99).ceil() as usize).clamp(1, l.len()) - 1;
    l[i] as f64 / 1000.0
}

pub(crate) fn round(v: f64, digits: i32) -> serde_json::Value {
    if v.is_finite() {
        let f = 10f64.powi(digits);
        serde_json::json!((v * f).round() / f)
    } else {
        serde_json::Value::Null
    }
}

pub(crate) fn print_header() {
    println!(
        "{:<26} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "scenario", "conc", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "RSS MiB"
    );
}

/// One figure against its target, with how it was formed.
pub(crate) struct Ratio {
    pub(crate) name: &'static str,
    pub(crate) value: f64,
    pub(crate) target: String,
    pub(crate) met: bool,
    pub(crate) detail: String,
}

pub(crate) fn ratio(
    name: &'static str,
    value: f64,
    at_least: Option<f64>,
    at_most: Option<f64>,
    detail: String,
) -> Ratio {
    let (target, met) = match (at_least, at_most) {
        (Some(min), _) => (format!(">= {min}"), value >= min),
        (_, Some(max)) => (format!("<= {max}"), value <= max),
        _ => (String::new(), true),
    };
    Ratio {
        name,
        value,
        target,
        met,
        detail,
    }
}

pub(crate) fn output_dir() -> PathBuf {
    // Benches run with the package root as the working directory.
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    PathBuf::from(target).join("bench")
}

/// Writes `name` (pretty JSON or any text) under [`output_dir`]; returns its
/// path.
pub(crate) fn write_output(name: &str, contents: &str) -> PathBuf {
    let dir = output_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

pub(crate) fn print_ratios(ratios: &[Ratio]) {
    println!();
    println!(
        "{:<30} {:>8} {:>8} {:>5}  detail",
        "target", "value", "target", "met"
    );
    for r in ratios {
        println!(
            "{:<30} {:>8.2} {:>8} {:>5}  {}",
            r.name,
            r.value,
            r.target,
            if r.met { "yes" } else { "NO" },
            r.detail
        );
    }
}

pub(crate) fn ratios_json(ratios: &[Ratio]) -> Vec<serde_json::Value> {
    ratios
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name, "value": round(r.value, 3), "target": r.target, "met": r.met, "detail": r.detail,
            })
        })
        .collect()
}

pub(crate) fn human(n: i64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 1000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

/// The main run's results, for the tables and `load.json`.
pub(crate) struct LoadResults<'a> {
    pub(crate) bcrypt: &'a Bcrypt,
    pub(crate) throughput: &'a Throughput,
    pub(crate) login_probe: &'a LoginProbe,
    pub(crate) table_size: &'a TableSize,
    pub(crate) event_cost: &'a EventCost,
    pub(crate) revocation_set: &'a RevocationSet,
}

/// Prints the tables, the ratios and the plans; writes `load.json` and
/// `load.svg`.
pub(crate) fn write_load(bench: &Bench, results: &LoadResults) {
    let LoadResults {
        bcrypt,
        throughput,
        login_probe: probe,
        table_size: table,
        event_cost: events,
        revocation_set: set,
    } = results;
    let config = bench.config;
    let threads = bench.server.threads();
    println!();
    print_header();
    for scenario in Scenario::ALL {
        for row in throughput.rows.iter().filter(|r| r.scenario == scenario) {
            row.print_row();
        }
    }
    println!();
    let extra = [
        ("login_probe_idle", &probe.idle),
        ("login_probe_flood", &probe.flood),
        ("refresh_small_table", &table.small),
        ("refresh_large_table", &table.big),
        ("raw_cas_without_event", &events.plain),
        ("raw_cas_with_event", &events.with_event),
        ("health_revocation_set_empty", &set.health_empty),
        ("me_revocation_set_empty", &set.me_empty),
        ("health_revocation_set_100k", &set.health_full),
        ("me_revocation_set_100k", &set.me_full),
    ];
    for (_, row) in &extra {
        row.print_row();
    }
    println!("server threads at the end: {threads}");

    let mut ratios = throughput.ratios(bench.cores, bcrypt);
    ratios.push(probe.ratio(config.rounds));
    ratios.push(table.ratio());
    ratios.push(events.ratio());
    ratios.extend(set.ratios());
    ratios.push(throughput.rss_ratio());
    print_ratios(&ratios);
    println!();
    table.print_plans();

    let extra: BTreeMap<&str, serde_json::Value> =
        extra.iter().map(|(key, row)| (*key, row.json())).collect();
    let json = serde_json::json!({
        "cores": bench.cores,
        "seconds_per_scenario": config.seconds,
        "rounds": config.rounds,
        "requests_per_second_is": "the median of the rounds' rates for health, me, refresh and raw_update; the whole run's rate for login and mix",
        "probe_p99_median_ms": {"idle": round(probe.idle_p99, 3), "flood": round(probe.flood_p99, 3)},
        "concurrencies": config.concurrencies,
        "bcrypt_cost": config.bcrypt_cost,
        "bcrypt_seconds": round(bcrypt.cpu_seconds, 4),
        "bcrypt_wall_seconds": round(bcrypt.wall_seconds, 4),
        "login_flood": probe.json(),
        "rows": throughput.rows.iter().map(Stats::json).collect::<Vec<_>>(),
        "extra": extra,
        "ratios": ratios_json(&ratios),
        "explain_small": table.plan_small,
        "explain_large": table.plan_big,
        "sessions_small": table.small_count,
        "sessions_large": table.big_count,
        "events_small": table.small_events,
        "events_large": table.big_events,
        "server_threads": threads,
    });
    let json_path = write_output("load.json", &serde_json::to_string_pretty(&json).unwrap());
    let svg_path = write_output(
        "load.svg",
        &svg::chart(&throughput.rows, &config.concurrencies),
    );
    println!("\nwrote {} and {}", json_path.display(), svg_path.display());
}
