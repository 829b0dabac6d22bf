//! `target/bench/load.svg`: throughput and p99 latency against the number of
//! clients, one line per scenario, both on log scales.

use std::fmt::Write as _;

use crate::report::Stats;
use crate::scenarios::Scenario;

pub(crate) fn chart(rows: &[Stats], concurrencies: &[usize]) -> String {
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
