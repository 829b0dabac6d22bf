//! Targets a and c: `/api/me` against a bare actix-web handler (in this
//! process, as many workers as keyward, answering the same request with a
//! copy of an `/api/me` body), and introspection against `/api/me`; the
//! three interleaved in `rounds` slices, every request with another of the
//! fixture's access tokens.

use base64::Engine as _;

use crate::client::{get, Conn};
use crate::inproc;
use crate::procfs::Cpu;
use crate::report::{Series, Stats};
use crate::scenarios::{run_fixed, Scenario};
use crate::server::Bench;
use crate::targets::{cpu_json, cpu_note, rate_label, row_json, Goal, Target};

pub(crate) struct TokenChecks {
    pub(crate) bare: Stats,
    pub(crate) me: (Stats, Cpu),
    pub(crate) introspection: (Stats, Cpu),
    /// The tokens' `alg` and how many distinct ones.
    pub(crate) algorithm: String,
    pub(crate) tokens: usize,
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
    let bare_server = inproc::bare(bench.cores, body).expect("the bare actix-web server");
    let addr = bench.server.addr;
    // Introspection answers 200 for an inactive token too.
    let active: &'static [u8] = b"\"active\":true";
    let kinds = [
        (bare_server.addr, &me, None),
        (addr, &me, None),
        (addr, &introspection, Some(active)),
    ];
    let mut series: [Series; 3] = Default::default();
    for _ in 0..bench.config.rounds {
        for ((addr, requests, must), out) in kinds.iter().zip(series.iter_mut()) {
            out.0.push(bench.measured(|b| {
                b.runtime
                    .block_on(run_fixed(*addr, requests, clients, *must, slice))
            }));
        }
    }
    bare_server.stop(&bench.runtime);
    let [bare, me_series, introspection_series] = series;
    let (bare, _) = bare.stats(Scenario::Me, clients, "bare actix-web, same requests");
    let me_stats = me_series.stats(Scenario::Me, clients, "GET /api/me");
    let introspection_stats =
        introspection_series.stats(Scenario::Me, clients, "POST /oauth/introspect");
    TokenChecks {
        bare,
        me: me_stats,
        introspection: introspection_stats,
        algorithm: algorithm(&bench.sessions[0].access),
        tokens: me.len(),
    }
}

impl TokenChecks {
    fn tokens(&self) -> String {
        format!("{} distinct {} tokens", self.tokens, self.algorithm)
    }

    /// a: `/api/me` ≥ 0.95 × the bare handler.
    pub(crate) fn me_target(&self) -> Target {
        let (me, cpu) = &self.me;
        Target {
            id: "a",
            name: "/api/me / bare actix-web".into(),
            figure: me.rps,
            figure_is: format!("{}, {}", rate_label(me), self.tokens()),
            baseline: Some(self.bare.rps),
            baseline_is: rate_label(&self.bare),
            unit: "req/s",
            goal: Goal::RatioAtLeast(0.95),
            notes: vec![cpu_note("/api/me", *cpu)],
            json: serde_json::json!({
                "me": row_json(me), "bare": row_json(&self.bare),
                "me_cpu_per_request": cpu_json(*cpu),
                "algorithm": self.algorithm, "distinct_tokens": self.tokens,
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
