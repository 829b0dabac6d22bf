//! Target g: keyward-verify's protected route against an unprotected one of
//! the same resource server (the example's, in this process, as many
//! workers as keyward), interleaved in `BenchConfig::paired_rounds` slices,
//! every request carrying another of the fixture's access tokens (the
//! unprotected route ignores it).

use crate::client::get;
use crate::inproc;
use crate::report::{Series, Stats};
use crate::scenarios::{run_fixed, Scenario};
use crate::server::Bench;
use crate::targets::{not_measured, rate_label, round_order, row_json, Goal, RoundRatios, Target};

pub(crate) struct ResourceServer {
    pub(crate) protected: Stats,
    pub(crate) unprotected: Stats,
    pub(crate) tokens: usize,
    pub(crate) protected_over_open: RoundRatios,
}

const NAME: &str = "keyward-verify protected / open";

pub(crate) fn run(bench: &mut Bench) -> Result<ResourceServer, String> {
    let clients = bench.config.reference_concurrency();
    let slice = bench.config.slice();
    let server = inproc::resource_server(
        bench.cores,
        format!("http://{}", bench.server.addr),
        bench.client_id.clone(),
        bench.client_secret.clone(),
    )
    .ok_or("the resource server did not start")?;
    let protected = bench.requests(|token| get("/me", Some(token)));
    let unprotected = bench.requests(|token| get("/health", Some(token)));
    let mut series: [Series; 2] = Default::default();
    for round in 0..bench.config.paired_rounds() {
        for kind in round_order(round, 2) {
            let requests = [&protected, &unprotected][kind];
            series[kind].0.push(bench.measured(|b| {
                b.runtime
                    .block_on(run_fixed(server.addr, requests, clients, None, slice))
            }));
        }
    }
    server.stop(&bench.runtime);
    let [p, u] = series;
    let protected_over_open = RoundRatios::of(&p, &u);
    Ok(ResourceServer {
        protected: p.stats(Scenario::Me, clients, "GET /me (VerifiedUser)").0,
        unprotected: u
            .stats(Scenario::Health, clients, "GET /health (no check)")
            .0,
        tokens: protected.len(),
        protected_over_open,
    })
}

pub(crate) fn target(result: &Result<ResourceServer, String>) -> Target {
    let r = match result {
        Ok(r) => r,
        Err(why) => return not_measured("g", NAME, Goal::RatioAtLeast(0.9), "", why),
    };
    Target {
        id: "g",
        name: NAME.into(),
        figure: r.protected.rps,
        figure_is: format!("{}, {} distinct tokens", rate_label(&r.protected), r.tokens),
        baseline: Some(r.unprotected.rps),
        baseline_is: rate_label(&r.unprotected),
        unit: "req/s",
        goal: Goal::RatioAtLeast(0.9),
        notes: vec![r.protected_over_open.note()],
        json: serde_json::json!({
            "protected": row_json(&r.protected), "unprotected": row_json(&r.unprotected),
            "round_ratios": r.protected_over_open.json(),
        }),
    }
}
