//! `/api/me` at a light, steady rate, idle and while logins flood the
//! server, alternating in `rounds` slices: do waiting password checks hold
//! up the request workers?

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::{p99_ms, ratio, Ratio, Stats};
use crate::scenarios::{login_flood, probe_me, Scenario, Tally};
use crate::server::Bench;

pub(crate) struct LoginProbe {
    pub(crate) idle: Stats,
    pub(crate) flood: Stats,
    /// The median of the slices' p99, in ms.
    pub(crate) idle_p99: f64,
    pub(crate) flood_p99: f64,
    pub(crate) probe_rate: u64,
    pub(crate) flood_clients: usize,
    /// The flooding logins themselves.
    pub(crate) logins: Tally,
    pub(crate) flood_seconds: f64,
}

pub(crate) fn run(bench: &mut Bench) -> LoginProbe {
    let (rounds, slice) = (bench.config.rounds, bench.config.slice());
    let (runtime, shared, sessions) = (&bench.runtime, &bench.shared, &bench.sessions);
    let probe_clients = 2.min(sessions.len());
    let probe_interval = Duration::from_millis(2);
    let probe_rate = (probe_clients as f64 * 1000.0 / probe_interval.as_millis() as f64) as u64;
    let flood_clients = 16;
    let (mut idle_slices, mut flood_slices) = (Vec::new(), Vec::new());
    let (mut flood_tally, mut flood_seconds) = (Tally::default(), 0.0);
    for _ in 0..rounds {
        let idle = runtime.block_on(probe_me(
            shared,
            &sessions[..probe_clients],
            probe_interval,
            slice,
        ));
        idle_slices.push((idle, slice.as_secs_f64()));
        let stop = Arc::new(AtomicBool::new(false));
        let (probe, logins, seconds) = runtime.block_on(async {
            let flood_started = Instant::now();
            let flood_task = {
                let shared = shared.clone();
                let stop = stop.clone();
                tokio::spawn(async move { login_flood(&shared, flood_clients, stop).await })
            };
            // Let the logins pile up first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let probe = probe_me(shared, &sessions[..probe_clients], probe_interval, slice).await;
            stop.store(true, Ordering::Relaxed);
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
    LoginProbe {
        idle,
        flood,
        idle_p99,
        flood_p99,
        probe_rate,
        flood_clients,
        logins: flood_tally,
        flood_seconds,
    }
}

impl LoginProbe {
    pub(crate) fn ratio(&self, rounds: usize) -> Ratio {
        ratio(
            "/api/me p99 flood / idle",
            self.flood_p99 / self.idle_p99,
            None,
            Some(2.0),
            format!(
                "median of {rounds} slices' p99: {:.2} ms with {} concurrent logins / {:.2} ms idle ({} req/s probe); over all slices {:.2} / {:.2} ms",
                self.flood_p99,
                self.flood_clients,
                self.idle_p99,
                self.probe_rate,
                self.flood.p99_ms,
                self.idle.p99_ms,
            ),
        )
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let logins = self.logins.latencies_us.len();
        serde_json::json!({
            "clients": self.flood_clients,
            "logins": logins,
            "errors": self.logins.errors,
            "logins_per_second": crate::report::round(logins as f64 / self.flood_seconds, 2),
        })
    }
}
