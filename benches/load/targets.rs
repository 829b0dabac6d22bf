//! Issue 17's targets: each a figure against a baseline measured in the
//! same run (interleaved where both are rates), printed as one table and
//! written to `target/bench/targets.json`.

use crate::procfs::Cpu;
use crate::report::{median, round, write_output, Series, Stats};

#[derive(Clone, Copy)]
pub(crate) enum Goal {
    /// The ratio figure / baseline at least this.
    RatioAtLeast(f64),
    /// The ratio figure / baseline at most this.
    RatioAtMost(f64),
    /// The figure itself at most this.
    FigureAtMost(f64),
}

/// One row of the targets table.
#[derive(Clone)]
pub(crate) struct Target {
    /// The letter of the target in issue 17.
    pub(crate) id: &'static str,
    pub(crate) name: String,
    pub(crate) figure: f64,
    /// What the figure is (the scenario, its p99, its tokens).
    pub(crate) figure_is: String,
    /// `None` when the goal is on the figure alone.
    pub(crate) baseline: Option<f64>,
    pub(crate) baseline_is: String,
    pub(crate) unit: &'static str,
    pub(crate) goal: Goal,
    /// More figures of the same measurement (CPU per request, rows), for
    /// the notes under the table and the JSON.
    pub(crate) notes: Vec<String>,
    pub(crate) json: serde_json::Value,
}

impl Target {
    pub(crate) fn ratio(&self) -> Option<f64> {
        self.baseline.map(|b| self.figure / b)
    }

    pub(crate) fn met(&self) -> bool {
        match (self.goal, self.ratio()) {
            (Goal::RatioAtLeast(min), Some(r)) => r >= min,
            (Goal::RatioAtMost(max), Some(r)) => r <= max,
            (Goal::FigureAtMost(max), _) => self.figure <= max,
            _ => false,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::RatioAtLeast(min) => format!(">= {min}"),
            Goal::RatioAtMost(max) => format!("<= {max}"),
            Goal::FigureAtMost(max) => format!("<= {max} {}", self.unit),
        }
    }
}

/// A target that could not be measured in this run (skipped by a setting,
/// or its setup failed): printed as such, so that the table always has
/// every letter.
pub(crate) fn not_measured(
    id: &'static str,
    name: &str,
    goal: Goal,
    unit: &'static str,
    why: &str,
) -> Target {
    Target {
        id,
        name: name.to_string(),
        figure: f64::NAN,
        figure_is: format!("not measured: {why}"),
        baseline: None,
        baseline_is: String::new(),
        unit,
        goal,
        notes: Vec::new(),
        json: serde_json::json!({"skipped": why}),
    }
}

/// One ratio taken round by round (each round's two slices side by side):
/// how far a single round's figure strays, printed beside the whole run's.
pub(crate) struct RoundRatios {
    min: f64,
    median: f64,
    max: f64,
    rounds: usize,
}

impl RoundRatios {
    pub(crate) fn of(figure: &Series, baseline: &Series) -> Self {
        let mut ratios: Vec<f64> = figure
            .0
            .iter()
            .zip(&baseline.0)
            .map(|(f, b)| f.rate() / b.rate())
            .collect();
        let median = median(&mut ratios);
        Self {
            min: ratios.first().copied().unwrap_or(f64::NAN),
            median,
            max: ratios.last().copied().unwrap_or(f64::NAN),
            rounds: ratios.len(),
        }
    }

    pub(crate) fn note(&self) -> String {
        format!(
            "the {} rounds' own ratios: min {:.3}, median {:.3}, max {:.3}",
            self.rounds, self.min, self.median, self.max
        )
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "min": round(self.min, 3),
            "median": round(self.median, 3),
            "max": round(self.max, 3),
            "rounds": self.rounds,
        })
    }
}

/// The order of `kinds` scenarios in round `round` of an interleaved
/// comparison: every other round reversed, so that no scenario always
/// follows the same other one.
pub(crate) fn round_order(round: usize, kinds: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..kinds).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// A rate figure's description: its scenario, rate, p99 and errors.
pub(crate) fn rate_label(stats: &Stats) -> String {
    let errors = if stats.errors > 0 {
        format!(", {} errors", stats.errors)
    } else {
        String::new()
    };
    format!(
        "{} x{}: {:.1} req/s, p99 {:.2} ms{errors}",
        stats.label, stats.concurrency, stats.rps, stats.p99_ms
    )
}

/// A figure for the table: fewer decimals the larger it is.
fn value(v: f64, unit: &str) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

/// CPU per request, for the notes.
pub(crate) fn cpu_note(what: &str, cpu: Cpu) -> String {
    format!(
        "{what}: CPU per request {:.1} µs keyward, {:.1} µs PostgreSQL ({:.1} µs on the bench database's backends)",
        cpu.keyward, cpu.postgres, cpu.postgres_db
    )
}

pub(crate) fn cpu_json(cpu: Cpu) -> serde_json::Value {
    serde_json::json!({
        "keyward_us": round(cpu.keyward, 1),
        "postgres_all_us": round(cpu.postgres, 1),
        "postgres_bench_db_us": round(cpu.postgres_db, 1),
    })
}

/// A row's JSON without the scenario key (the target's rows are not all
/// keyward's scenarios).
pub(crate) fn row_json(stats: &Stats) -> serde_json::Value {
    let mut json = stats.json();
    if let Some(map) = json.as_object_mut() {
        map.remove("scenario");
    }
    json
}

pub(crate) fn print_and_write(targets: &[Target], context: serde_json::Value) {
    println!();
    println!("issue 17 targets (figure and baseline from this run):");
    println!(
        "{:<3} {:<36} {:>14} {:>14} {:>7} {:>12} {:>5}",
        "", "target", "figure", "baseline", "ratio", "goal", "met?"
    );
    for t in targets {
        let ratio = t.ratio().map_or("-".into(), |r| format!("{r:.3}"));
        let met = if t.figure.is_nan() {
            "-"
        } else if t.met() {
            "yes"
        } else {
            "NO"
        };
        println!(
            "{:<3} {:<36} {:>14} {:>14} {:>7} {:>12} {:>5}",
            t.id,
            t.name,
            value(t.figure, t.unit),
            t.baseline.map_or("-".into(), |b| value(b, t.unit)),
            ratio,
            t.goal_text(),
            met
        );
    }
    for t in targets {
        println!("  {}: {}", t.id, t.figure_is);
        if !t.baseline_is.is_empty() {
            println!("     against {}", t.baseline_is);
        }
        for note in &t.notes {
            println!("     {note}");
        }
    }
    let json = serde_json::json!({
        "context": context,
        "targets": targets.iter().map(|t| serde_json::json!({
            "id": t.id,
            "name": t.name,
            "figure": round(t.figure, 3),
            "figure_is": t.figure_is,
            "baseline": t.baseline.map(|b| round(b, 3)),
            "baseline_is": t.baseline_is,
            "unit": t.unit,
            "ratio": t.ratio().map(|r| round(r, 3)),
            "goal": t.goal_text(),
            "met": (!t.figure.is_nan()).then(|| t.met()),
            "notes": t.notes,
            "detail": t.json,
        })).collect::<Vec<_>>(),
    });
    let path = write_output(
        "targets.json",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    println!("\nwrote {}", path.display());
}
