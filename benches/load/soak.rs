//! Target f: the server's memory under the mix (90% `/api/me`, 9% refresh,
//! 1% login) for `KEYWARD_BENCH_SOAK_SECONDS` without a pause, every
//! session of the fixture in use: `VmRSS` and `VmHWM` at a tenth, half and
//! all of the time (1, 5 and 10 minutes by default), and every tenth for the
//! JSON.

use std::time::{Duration, Instant};

use crate::procfs::status_mib;
use crate::report::{round, Stats};
use crate::scenarios::{deal, run_sessions, Scenario};
use crate::server::Bench;
use crate::targets::{not_measured, rate_label, row_json, Goal, Target};

/// The memory at one point of the soak, in MiB.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) seconds: f64,
    pub(crate) rss: f64,
    pub(crate) hwm: f64,
}

pub(crate) struct Soak {
    pub(crate) mix: Stats,
    /// At every tenth of the time; [0], [4] and [9] are the reported ones.
    pub(crate) samples: Vec<Sample>,
}

pub(crate) fn run(bench: &mut Bench) -> Option<Soak> {
    if bench.config.soak_seconds <= 0.0 {
        return None;
    }
    let total = Duration::from_secs_f64(bench.config.soak_seconds);
    let clients = bench
        .config
        .reference_concurrency()
        .min(bench.sessions.len());
    let pid = bench.server.pid();
    eprintln!(
        "soak: the mix for {:.0} s at x{clients}",
        total.as_secs_f64()
    );
    let hands = deal(std::mem::take(&mut bench.sessions), clients);
    let shared = bench.shared.clone();
    let ((tally, seconds, back), samples) = bench.runtime.block_on(async {
        let load = run_sessions(&shared, Scenario::Mix, hands, total);
        let sampler = async {
            let start = Instant::now();
            let mut samples = Vec::new();
            for tenth in 1..=10u32 {
                tokio::time::sleep_until((start + total * tenth / 10).into()).await;
                let sample = Sample {
                    seconds: start.elapsed().as_secs_f64(),
                    rss: status_mib(pid, "VmRSS"),
                    hwm: status_mib(pid, "VmHWM"),
                };
                eprintln!(
                    "  soak {:>5.0} s: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                    sample.seconds, sample.rss, sample.hwm
                );
                samples.push(sample);
            }
            samples
        };
        tokio::join!(load, sampler)
    });
    bench.sessions = back.into_iter().flatten().collect();
    let mut mix = Stats::from_tally(Scenario::Mix, clients, tally, seconds);
    mix.label = "mix 90/9/1".into();
    Some(Soak { mix, samples })
}

fn at(samples: &[Sample], tenth: usize) -> Sample {
    samples[(tenth - 1).min(samples.len() - 1)]
}

/// f: the peak (VmHWM at the end) at most 50 MiB, and VmRSS at the end at
/// most 1.1 × at the first point (flat). Without a soak, the peak is the
/// main run's mix (`fallback_peak`) and flatness is not measured.
pub(crate) fn targets(soak: &Option<Soak>, fallback_peak: Option<f64>) -> Vec<Target> {
    const PEAK: &str = "server peak RSS under the mix";
    const FLAT: &str = "RSS flat over the soak";
    let Some(soak) = soak else {
        let why = "KEYWARD_BENCH_SOAK_SECONDS=0";
        let flat = not_measured("f", FLAT, Goal::RatioAtMost(1.1), "MiB", why);
        let Some(fallback_peak) = fallback_peak else {
            let peak = not_measured("f", PEAK, Goal::FigureAtMost(50.0), "MiB", why);
            return vec![peak, flat];
        };
        return vec![
            Target {
                id: "f",
                name: PEAK.into(),
                figure: fallback_peak,
                figure_is: format!(
                    "VmHWM {fallback_peak:.1} MiB under the main run's mix (no soak)"
                ),
                baseline: None,
                baseline_is: String::new(),
                unit: "MiB",
                goal: Goal::FigureAtMost(50.0),
                notes: Vec::new(),
                json: serde_json::json!({"source": "main run mix, VmHWM"}),
            },
            flat,
        ];
    };
    let (first, middle, last) = (
        at(&soak.samples, 1),
        at(&soak.samples, 5),
        at(&soak.samples, 10),
    );
    let points = format!(
        "VmRSS {:.1} / {:.1} / {:.1} MiB at {:.0} / {:.0} / {:.0} s",
        first.rss, middle.rss, last.rss, first.seconds, middle.seconds, last.seconds
    );
    let json = serde_json::json!({
        "mix": row_json(&soak.mix),
        "samples": soak.samples.iter().map(|s| serde_json::json!({
            "seconds": round(s.seconds, 1), "vm_rss_mib": round(s.rss, 2), "vm_hwm_mib": round(s.hwm, 2),
        })).collect::<Vec<_>>(),
    });
    vec![
        Target {
            id: "f",
            name: PEAK.into(),
            figure: last.hwm,
            figure_is: format!("VmHWM {:.1} MiB after {:.0} s", last.hwm, last.seconds),
            baseline: None,
            baseline_is: String::new(),
            unit: "MiB",
            goal: Goal::FigureAtMost(50.0),
            notes: vec![format!("soak {}", rate_label(&soak.mix)), points.clone()],
            json: json.clone(),
        },
        Target {
            id: "f",
            name: FLAT.into(),
            figure: last.rss,
            figure_is: format!("VmRSS {:.1} MiB at {:.0} s", last.rss, last.seconds),
            baseline: Some(first.rss),
            baseline_is: format!("VmRSS {:.1} MiB at {:.0} s", first.rss, first.seconds),
            unit: "MiB",
            goal: Goal::RatioAtMost(1.1),
            notes: Vec::new(),
            json,
        },
    ]
}
