//! Target b: refresh over HTTP against the database's rate for the minimal
//! compare-and-swap `UPDATE` of a sessions row, at the same concurrency,
//! interleaved; and what each costs in CPU, the server's and PostgreSQL's.
//! Refresh clients cycle through all the fixture's sessions, the `UPDATE`
//! threads through as many filler rows.

use crate::limits::{CasClients, MINIMAL_CAS};
use crate::procfs::Cpu;
use crate::report::{Series, Stats};
use crate::scenarios::Scenario;
use crate::server::Bench;
use crate::targets::{cpu_json, cpu_note, rate_label, row_json, Goal, Target};

pub(crate) struct RefreshCost {
    pub(crate) refresh: (Stats, Cpu),
    pub(crate) cas: (Stats, Cpu),
    /// Ed25519 on one core, in µs: a signature as keyward makes it
    /// (AWS-LC), one as ed25519-dalek makes it, and a verification
    /// (ed25519-dalek, as keyward verifies). A refresh signs two tokens and,
    /// when it presents the token this instance signed, verifies none.
    pub(crate) ed25519: Ed25519Us,
}

pub(crate) struct Ed25519Us {
    sign: f64,
    dalek_sign: f64,
    verify: f64,
}

/// Times Ed25519 over a token-sized message, on this thread.
fn ed25519_us() -> Ed25519Us {
    use ed25519_dalek::{Signer, SigningKey, Verifier};
    const N: u32 = 2000;
    let message = [b'x'; 300];
    let per_call =
        |started: std::time::Instant| started.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let aws = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32])
        .expect("an Ed25519 seed");
    let started = std::time::Instant::now();
    for _ in 0..N {
        std::hint::black_box(aws.sign(std::hint::black_box(&message)));
    }
    let sign = per_call(started);
    let key = SigningKey::from_bytes(&[7; 32]);
    let started = std::time::Instant::now();
    let mut signature = key.sign(&message);
    for _ in 1..N {
        signature = key.sign(std::hint::black_box(&message));
    }
    let dalek_sign = per_call(started);
    let verifying = key.verifying_key();
    let started = std::time::Instant::now();
    for _ in 0..N {
        assert!(verifying
            .verify(std::hint::black_box(&message), &signature)
            .is_ok());
    }
    let verify = per_call(started);
    Ed25519Us {
        sign,
        dalek_sign,
        verify,
    }
}

pub(crate) fn run(bench: &mut Bench) -> RefreshCost {
    let clients = bench
        .config
        .reference_concurrency()
        .min(bench.sessions.len());
    let slice = bench.config.slice();
    let mut cas = CasClients::open(&bench.db.url(), &bench.raw, clients);
    let (mut refresh_series, mut cas_series) = (Series::default(), Series::default());
    for _ in 0..bench.config.rounds {
        refresh_series
            .0
            .push(bench.measured(|b| b.run_dealt(Scenario::Refresh, clients, slice)));
        cas_series
            .0
            .push(bench.measured(|_| cas.run(MINIMAL_CAS, slice)));
    }
    bench.raw = cas.rows();
    RefreshCost {
        ed25519: ed25519_us(),
        refresh: refresh_series.stats(Scenario::Refresh, clients, "refresh"),
        cas: cas_series.stats(Scenario::RawUpdate, clients, "minimal CAS UPDATE"),
    }
}

impl RefreshCost {
    pub(crate) fn target(&self) -> Target {
        let ((refresh, refresh_cpu), (cas, cas_cpu)) = (&self.refresh, &self.cas);
        Target {
            id: "b",
            name: "refresh / minimal CAS UPDATE".into(),
            figure: refresh.rps,
            figure_is: rate_label(refresh),
            baseline: Some(cas.rps),
            baseline_is: format!("{} ({MINIMAL_CAS})", rate_label(cas)),
            unit: "req/s",
            goal: Goal::RatioAtLeast(0.5),
            notes: vec![
                cpu_note("refresh", *refresh_cpu),
                format!(
                    "minimal CAS UPDATE: PostgreSQL CPU per UPDATE {:.1} µs ({:.1} µs on the bench database's backends)",
                    cas_cpu.postgres, cas_cpu.postgres_db
                ),
                format!(
                    "Ed25519 here: sign {:.1} µs (AWS-LC, as keyward signs; ed25519-dalek {:.1} µs), verify {:.1} µs; a refresh's two signs {:.1} µs of its CPU",
                    self.ed25519.sign,
                    self.ed25519.dalek_sign,
                    self.ed25519.verify,
                    2.0 * self.ed25519.sign
                ),
            ],
            json: serde_json::json!({
                "refresh": row_json(refresh), "cas": row_json(cas),
                "refresh_cpu_per_request": cpu_json(*refresh_cpu),
                "cas_cpu_per_update": cpu_json(*cas_cpu),
                "cas_sql": MINIMAL_CAS,
                "ed25519_sign_us": self.ed25519.sign,
                "ed25519_dalek_sign_us": self.ed25519.dalek_sign,
                "ed25519_verify_us": self.ed25519.verify,
            }),
        }
    }
}
