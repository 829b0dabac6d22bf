//! Targets a and c: `/api/me` against a bare actix-web handler (a process
//! of its own, as keyward's server is, with as many workers, answering the
//! same request with a copy of an `/api/me` body; the same handler inside
//! this process is measured too, for comparison), and introspection against
//! `/api/me`; the four interleaved in `BenchConfig::paired_rounds` slices,
//! every request with another of the fixture's access tokens.

use base64::Engine as _;

use crate::bare_process::BareProcess;
use crate::client::{get, Conn};
use crate::inproc;
use crate::procfs::Cpu;
use crate::procfs::{process_ticks, tick_seconds};
use crate::report::{Series, Stats};
use crate::scenarios::{run_fixed, Scenario};
use crate::server::Bench;
use crate::targets::{
    cpu_json, cpu_note, rate_label, round_order, row_json, Goal, RoundRatios, Target,
};

pub(crate) struct TokenChecks {
    /// The bare handler in a process of its own, and its CPU per request.
    pub(crate) bare: (Stats, f64),
    /// The bare handler inside the bench process.
    pub(crate) bare_inproc: Stats,
    pub(crate) me: (Stats, Cpu),
    pub(crate) introspection: (Stats, Cpu),
    /// The tokens' `alg` and how many distinct ones.
    pub(crate) algorithm: String,
    pub(crate) tokens: usize,
    /// Target a's ratio round by round.
    pub(crate) me_over_bare: RoundRatios,
}

/// `POST /oauth/introspect` for `token` with the service's credential.
fn introspect_request(token: &str, basic: &str) -> Vec<u8> {
    let body = format!("token={token}");
    format!(
        "POST /oauth/introspect HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The `alg` of a JWT's header.
fn algorithm(token: &str) -> String {
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(String::from))
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn run(bench: &mut Bench) -> TokenChecks {
    let clients = bench.config.reference_concurrency();
    let slice = bench.config.slice();
    let me = bench.requests(|token| get("/api/me", Some(token)));
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", bench.client_id, bench.client_secret));
    let introspection = bench.requests(|token| introspect_request(token, &basic));
    // The bare server answers what keyward answers, byte for byte.
    let body = bench.runtime.block_on(async {
        let mut conn = Conn::new(bench.server.addr);
        let r = conn.send(&me[0]).await.expect("GET /api/me");
        String::from_utf8_lossy(conn.body(&r)).into_owned()
    });
    let bare_process = BareProcess::start(bench.cores, &body).expect("the bare server's process");
    let bare_server = inproc::bare(bench.cores, body).expect("the bare actix-web server");
    let addr = bench.server.addr;
    // Introspection answers 200 for an inactive token too.
    let active: &'static [u8] = b"\"active\":true";
    let kinds = [
        (bare_process.addr, &me, None),
        (bare_server.addr, &me, None),
        (addr, &me, None),
        (addr, &introspection, Some(active)),
    ];
    let mut series: [Series; 4] = Default::default();
    let mut bare_ticks = 0;
    for round in 0..bench.config.paired_rounds() {
        for kind in round_order(round, kinds.len()) {
            let ((addr, requests, must), out) = (&kinds[kind], &mut series[kind]);
            let before = process_ticks(bare_process.pid());
            out.0.push(bench.measured(|b| {
                b.runtime
                    .block_on(run_fixed(*addr, requests, clients, *must, slice))
            }));
            if kind == 0 {
                bare_ticks += process_ticks(bare_process.pid()) - before;
            }
        }
    }
    drop(bare_process);
    bare_server.stop(&bench.runtime);
    let [bare, bare_inproc, me_series, introspection_series] = series;
    let me_over_bare = RoundRatios::of(&me_series, &bare);
    let (bare, _) = bare.stats(
        Scenario::Me,
        clients,
        "bare actix-web (own process), same requests",
    );
    let bare_cpu_us = bare_ticks as f64 * tick_seconds() * 1e6 / bare.requests.max(1) as f64;
    let (bare_inproc, _) =
        bare_inproc.stats(Scenario::Me, clients, "bare actix-web in the bench process");
    let me_stats = me_series.stats(Scenario::Me, clients, "GET /api/me");
    let introspection_stats =
        introspection_series.stats(Scenario::Me, clients, "POST /oauth/introspect");
    TokenChecks {
        bare: (bare, bare_cpu_us),
        bare_inproc,
        me: me_stats,
        introspection: introspection_stats,
        algorithm: algorithm(&bench.sessions[0].access),
        tokens: me.len(),
        me_over_bare,
    }
}

impl TokenChecks {
    fn tokens(&self) -> String {
        format!("{} distinct {} tokens", self.tokens, self.algorithm)
    }

    /// a: `/api/me` ≥ 0.95 × the bare handler.
    pub(crate) fn me_target(&self) -> Target {
        let ((me, cpu), (bare, bare_cpu)) = (&self.me, &self.bare);
        let inproc = &self.bare_inproc;
        Target {
            id: "a",
            name: "/api/me / bare actix-web".into(),
            figure: me.rps,
            figure_is: format!("{}, {}", rate_label(me), self.tokens()),
            baseline: Some(bare.rps),
            baseline_is: rate_label(bare),
            unit: "req/s",
            goal: Goal::RatioAtLeast(0.95),
            notes: vec![
                self.me_over_bare.note(),
                cpu_note("/api/me", *cpu),
                format!("bare actix-web: CPU per request {bare_cpu:.1} µs (its own process)"),
                format!(
                    "{}; /api/me / that = {:.3}",
                    rate_label(inproc),
                    me.rps / inproc.rps.max(1.0)
                ),
            ],
            json: serde_json::json!({
                "me": row_json(me), "bare": row_json(bare),
                "bare_cpu_us_per_request": bare_cpu,
                "bare_in_bench_process": row_json(inproc),
                "me_cpu_per_request": cpu_json(*cpu),
                "algorithm": self.algorithm, "distinct_tokens": self.tokens,
                "round_ratios": self.me_over_bare.json(),
            }),
        }
    }

    /// c: introspection ≥ 0.8 × `/api/me`.
    pub(crate) fn introspection_target(&self) -> Target {
        let ((me, _), (intro, cpu)) = (&self.me, &self.introspection);
        Target {
            id: "c",
            name: "introspection / /api/me".into(),
            figure: intro.rps,
            figure_is: format!("{}, {}", rate_label(intro), self.tokens()),
            baseline: Some(me.rps),
            baseline_is: rate_label(me),
            unit: "req/s",
            goal: Goal::RatioAtLeast(0.8),
            notes: vec![cpu_note("introspection", *cpu)],
            json: serde_json::json!({
                "introspection": row_json(intro), "me": row_json(me),
                "introspection_cpu_per_request": cpu_json(*cpu),
            }),
        }
    }
}
