//! The benchmark's settings, read once from the environment (the list is in
//! `main.rs`'s doc comment).

use std::time::Duration;

/// Which parts run (`KEYWARD_BENCH_ONLY`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Only {
    /// The main run, the targets, the abuse limits.
    All,
    Abuse,
    Targets,
}

pub(crate) struct BenchConfig {
    pub(crate) seconds: f64,
    pub(crate) concurrencies: Vec<usize>,
    pub(crate) bcrypt_cost: u32,
    pub(crate) big_sessions: i64,
    pub(crate) big_events: i64,
    pub(crate) postgres: String,
    pub(crate) server_log: String,
    /// Slices each ratio's scenarios are interleaved in.
    pub(crate) rounds: usize,
    /// Extra settings for the server (`K=V,K=V`), for experiments such as
    /// `KEYWARD__DATABASE__POOL_SIZE=16`.
    pub(crate) server_env: Vec<(String, String)>,
    pub(crate) only: Only,
    /// Users, each signed in once, of the targets' server.
    pub(crate) target_sessions: usize,
    /// The mixed soak's length (0: no soak).
    pub(crate) soak_seconds: f64,
}

impl BenchConfig {
    pub(crate) fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let configured_cost = keyward::config::Settings::defaults()
            .map(|s| s.auth.bcrypt_cost)
            .unwrap_or(12);
        let mut concurrencies: Vec<usize> = var("KEYWARD_BENCH_CONCURRENCY")
            .unwrap_or_else(|| "1,8,32,64".into())
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .expect("KEYWARD_BENCH_CONCURRENCY: numbers")
            })
            .filter(|&c| c > 0)
            .collect();
        concurrencies.sort_unstable();
        concurrencies.dedup();
        assert!(
            !concurrencies.is_empty(),
            "KEYWARD_BENCH_CONCURRENCY is empty"
        );
        Self {
            seconds: var("KEYWARD_BENCH_SECONDS")
                .map_or(5.0, |v| v.parse().expect("KEYWARD_BENCH_SECONDS")),
            concurrencies,
            bcrypt_cost: var("KEYWARD_BENCH_BCRYPT_COST").map_or(configured_cost, |v| {
                v.parse().expect("KEYWARD_BENCH_BCRYPT_COST")
            }),
            big_sessions: var("KEYWARD_BENCH_SESSIONS")
                .map_or(1_000_000, |v| v.parse().expect("KEYWARD_BENCH_SESSIONS")),
            big_events: var("KEYWARD_BENCH_EVENTS")
                .map_or(10_000_000, |v| v.parse().expect("KEYWARD_BENCH_EVENTS")),
            postgres: var("KEYWARD_BENCH_POSTGRES")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into()),
            server_log: var("KEYWARD_BENCH_SERVER_LOG").unwrap_or_else(|| "warn".into()),
            rounds: var("KEYWARD_BENCH_ROUNDS")
                .map_or(5, |v| v.parse().expect("KEYWARD_BENCH_ROUNDS"))
                .max(1),
            server_env: var("KEYWARD_BENCH_SERVER_ENV")
                .map(|v| {
                    v.split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            only: match var("KEYWARD_BENCH_ONLY").as_deref().map(str::trim) {
                None => Only::All,
                Some("abuse") => Only::Abuse,
                Some("targets") => Only::Targets,
                Some(other) => panic!("KEYWARD_BENCH_ONLY: abuse or targets, not {other}"),
            },
            target_sessions: var("KEYWARD_BENCH_TARGET_SESSIONS").map_or(1000, |v| {
                v.parse::<usize>()
                    .expect("KEYWARD_BENCH_TARGET_SESSIONS")
                    .max(1)
            }),
            soak_seconds: var("KEYWARD_BENCH_SOAK_SECONDS").map_or(600.0, |v| {
                v.parse::<f64>()
                    .expect("KEYWARD_BENCH_SOAK_SECONDS")
                    .max(0.0)
            }),
        }
    }

    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    /// One of the `rounds` slices of a scenario's time.
    pub(crate) fn slice(&self) -> Duration {
        self.duration() / self.rounds as u32
    }

    /// The rounds of the comparisons made from outside at full load (targets
    /// a, c and g): four times `rounds`, of slices as long. At 5 slices of a
    /// second, two runs of the same build put `/api/me` at 0.98 and 0.91 of
    /// the bare handler, a spread wider than the margin target a is about.
    pub(crate) fn paired_rounds(&self) -> usize {
        self.rounds * 4
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        *self.concurrencies.last().unwrap()
    }

    /// The concurrency of the 1k-versus-1M refresh comparison: 32 when it is
    /// in the list, else the largest.
    pub(crate) fn reference_concurrency(&self) -> usize {
        if self.concurrencies.contains(&32) {
            32
        } else {
            self.max_concurrency()
        }
    }
}
