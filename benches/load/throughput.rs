//! Every scenario at every concurrency (concurrency-major). The scenarios
//! that make the ratios (health, me, refresh, raw UPDATE) are interleaved in
//! `rounds` slices: the two halves of a ratio are measured side by side, so
//! that other work on the machine hits both alike. Logins and the mix (slow
//! requests: a slice would be mostly ramp-up and drain) run once for the
//! full time.

use std::collections::BTreeMap;

use crate::limits::{run_raw_update, Bcrypt, RAW_CAS};
use crate::report::{ratio, round, Ratio, Stats};
use crate::scenarios::{Scenario, Tally};
use crate::server::Bench;
use crate::targets::{rate_label, row_json, Goal, Target};

/// A row per scenario and concurrency.
pub(crate) struct Throughput {
    pub(crate) rows: Vec<Stats>,
}

pub(crate) fn run(bench: &mut Bench) -> Throughput {
    let config = bench.config;
    let (rounds, duration, slice) = (config.rounds, config.duration(), config.slice());
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
            bench.server.reset_peak_rss();
            let (tally, seconds) = if scenario == Scenario::RawUpdate {
                run_raw_update(&bench.db, RAW_CAS, &mut bench.raw, c, d)
            } else {
                let measured = bench.run(scenario, c, d);
                let peak = rss.entry(scenario).or_insert(0.0);
                *peak = peak.max(bench.server.peak_rss_mib());
                measured
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
    Throughput { rows }
}

impl Throughput {
    /// The scenario's row with the highest rate.
    pub(crate) fn best(&self, s: Scenario) -> &Stats {
        self.rows
            .iter()
            .filter(|r| r.scenario == s)
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
            .unwrap()
    }

    fn at(&self, s: Scenario, c: usize) -> &Stats {
        self.rows
            .iter()
            .find(|r| r.scenario == s && r.concurrency == c)
            .unwrap()
    }

    /// `a / b` at each concurrency, for a ratio's detail.
    fn per_concurrency(&self, a: Scenario, b: Scenario) -> String {
        let mut concurrencies: Vec<usize> = self.rows.iter().map(|r| r.concurrency).collect();
        concurrencies.dedup();
        concurrencies
            .iter()
            .map(|&c| format!("x{c}: {:.2}", self.at(a, c).rps / self.at(b, c).rps))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The server's peak RSS over the mix's runs, in MiB.
    pub(crate) fn mix_rss_mib(&self) -> f64 {
        self.rows
            .iter()
            .filter(|r| r.scenario == Scenario::Mix)
            .filter_map(|r| r.rss_mib)
            .fold(0.0, f64::max)
    }

    /// /api/me against /health, refresh against the raw UPDATE, logins
    /// against bcrypt's limit (`cores / bcrypt_s`).
    pub(crate) fn ratios(&self, cores: usize, bcrypt: &Bcrypt) -> Vec<Ratio> {
        let (me, health) = (self.best(Scenario::Me), self.best(Scenario::Health));
        let (refresh, raw) = (self.best(Scenario::Refresh), self.best(Scenario::RawUpdate));
        let login = self.best(Scenario::Login);
        let (bcrypt_s, bcrypt_limit) = (bcrypt.cpu_seconds, bcrypt.limit(cores));
        vec![
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
                    self.per_concurrency(Scenario::Me, Scenario::Health)
                ),
            ),
            ratio(
                "refresh / raw UPDATE",
                refresh.rps / raw.rps,
                Some(0.6),
                None,
                format!(
                    "peak {:.0} (x{}) / {:.0} (x{}); per concurrency {}",
                    refresh.rps,
                    refresh.concurrency,
                    raw.rps,
                    raw.concurrency,
                    self.per_concurrency(Scenario::Refresh, Scenario::RawUpdate)
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
        ]
    }

    /// Target d: the best login rate ≥ 0.9 × bcrypt's limit.
    pub(crate) fn login_target(&self, cores: usize, bcrypt: &Bcrypt) -> Target {
        let login = self.best(Scenario::Login);
        Target {
            id: "d",
            name: "logins / (cores / bcrypt)".into(),
            figure: login.rps,
            figure_is: format!("{} (the best concurrency)", rate_label(login)),
            baseline: Some(bcrypt.limit(cores)),
            baseline_is: format!(
                "{cores} cores / {:.4} s of CPU per hash (bcrypt cost {})",
                bcrypt.cpu_seconds, bcrypt.cost
            ),
            unit: "logins/s",
            goal: Goal::RatioAtLeast(0.9),
            notes: Vec::new(),
            json: serde_json::json!({
                "login": row_json(login),
                "bcrypt_cpu_seconds": round(bcrypt.cpu_seconds, 5),
                "bcrypt_cost": bcrypt.cost,
            }),
        }
    }

    pub(crate) fn rss_ratio(&self) -> Ratio {
        ratio(
            "peak RSS under mix (MiB)",
            self.mix_rss_mib(),
            None,
            Some(50.0),
            "server VmHWM, reset before each scenario".into(),
        )
    }
}
