//! Refresh with about 1,000 sessions and 10,000 events in the tables, then
//! with `KEYWARD_BENCH_SESSIONS` (1,000,000) and `KEYWARD_BENCH_EVENTS`
//! (10,000,000), each right after VACUUM ANALYZE and a checkpoint so that
//! both start alike (issue 17's target e); and the rotation's plan at both
//! sizes.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use keyward::db::rotation::ROTATE_SQL;
use std::time::Instant;
use uuid::Uuid;

use crate::limits::raw_rows;
use crate::report::{human, ratio, Ratio, Stats};
use crate::scenarios::Scenario;
use crate::server::{fill_sessions, session_count, Bench};
use crate::targets::{rate_label, row_json, Goal, Target};

/// Events in the small run.
const SMALL_EVENTS: i64 = 10_000;

pub(crate) struct TableSize {
    pub(crate) small: Stats,
    pub(crate) big: Stats,
    /// Sessions in each run.
    pub(crate) small_count: i64,
    pub(crate) big_count: i64,
    /// Events in each run.
    pub(crate) small_events: i64,
    pub(crate) big_events: i64,
    pub(crate) plan_small: Vec<String>,
    pub(crate) plan_big: Vec<String>,
}

pub(crate) fn run(bench: &mut Bench) -> TableSize {
    let rc = bench.config.reference_concurrency();
    let refresh = |bench: &mut Bench| {
        let slices = (0..bench.config.rounds)
            .map(|_| bench.run(Scenario::Refresh, rc, bench.config.slice()))
            .collect();
        Stats::from_slices(Scenario::Refresh, rc, slices)
    };
    let small_events = set_events(&mut bench.admin, SMALL_EVENTS);
    fill_sessions(&mut bench.admin, 0);
    let small_count = session_count(&mut bench.admin);
    let mut small = refresh(bench);
    small.label = label(small_count, small_events);
    let plan_small = explain_rotation(&mut bench.admin);
    let fill_started = Instant::now();
    let big_events = set_events(&mut bench.admin, bench.config.big_events);
    let big_count = fill_sessions(&mut bench.admin, bench.config.big_sessions);
    eprintln!(
        "sessions table: {big_count} rows, events: {big_events} (bulk inserts, VACUUM ANALYZE, CHECKPOINT: {:.1} s)",
        fill_started.elapsed().as_secs_f64()
    );
    let mut big = refresh(bench);
    big.label = label(big_count, big_events);
    let plan_big = explain_rotation(&mut bench.admin);
    TableSize {
        small,
        big,
        small_count,
        big_count,
        small_events,
        big_events,
        plan_small,
        plan_big,
    }
}

impl TableSize {
    pub(crate) fn ratio(&self) -> Ratio {
        ratio(
            "refresh@1M / refresh@1k",
            self.big.rps / self.small.rps,
            Some(0.9),
            None,
            format!(
                "{:.0} req/s with {} sessions, {} events / {:.0} with {}, {} (x{})",
                self.big.rps,
                human(self.big_count),
                human(self.big_events),
                self.small.rps,
                human(self.small_count),
                human(self.small_events),
                self.big.concurrency,
            ),
        )
    }

    /// Target e: refresh with the big tables ≥ 0.9 × with the small ones.
    pub(crate) fn target(&self) -> Target {
        Target {
            id: "e",
            name: "refresh, big tables / small".into(),
            figure: self.big.rps,
            figure_is: rate_label(&self.big),
            baseline: Some(self.small.rps),
            baseline_is: rate_label(&self.small),
            unit: "req/s",
            goal: Goal::RatioAtLeast(0.9),
            notes: Vec::new(),
            json: serde_json::json!({
                "big": row_json(&self.big), "small": row_json(&self.small),
                "sessions": [self.small_count, self.big_count],
                "events": [self.small_events, self.big_events],
            }),
        }
    }

    pub(crate) fn print_plans(&self) {
        for (count, plan) in [
            (self.small_count, &self.plan_small),
            (self.big_count, &self.plan_big),
        ] {
            println!(
                "EXPLAIN (ANALYZE, BUFFERS) of the rotation with {} sessions:",
                human(count)
            );
            for l in plan {
                println!("  {l}");
            }
        }
    }
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the rotation statement exactly as
/// `db::rotation::rotate` sends it, for one rotation on a live row, rolled back.
fn explain_rotation(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        #[diesel(column_name = "QUERY PLAN")]
        line: String,
    }
    let (id, jti) = raw_rows(conn, 1000).pop().unwrap();
    let mut plan = Vec::new();
    // Roll back: the plan is all we want, not the rotation.
    let _ = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        conn.batch_execute(&format!(
            "PREPARE keyward_bench_rotate (uuid[], uuid[], uuid[], timestamptz[], text[], float8, float8) \
             AS {ROTATE_SQL}"
        ))?;
        plan = diesel::sql_query(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE keyward_bench_rotate \
             (ARRAY['{id}'::uuid], ARRAY['{jti}'::uuid], ARRAY['{}'::uuid], \
             ARRAY[date_trunc('second', now())], ARRAY['127.0.0.1'], 86400, 2592000)",
            Uuid::new_v4()
        ))
        .load::<Line>(conn)?
        .into_iter()
        .map(|l| l.line)
        .collect();
        // keyward prepares the statement once per connection, so after five
        // executions PostgreSQL may switch to this generic plan.
        conn.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")?;
        plan.push("generic plan (what a long-lived prepared statement may use):".into());
        plan.extend(
            diesel::sql_query(format!(
                "EXPLAIN (COSTS OFF) EXECUTE keyward_bench_rotate \
                 (ARRAY['{id}'::uuid], ARRAY['{jti}'::uuid], ARRAY['{}'::uuid], \
             ARRAY[date_trunc('second', now())], ARRAY['127.0.0.1'], 86400, 2592000)",
                Uuid::new_v4()
            ))
            .load::<Line>(conn)?
            .into_iter()
            .map(|l| format!("  {}", l.line)),
        );
        Err(diesel::result::Error::RollbackTransaction)
    });
    // Prepared statements outlive transactions.
    let _ = conn.batch_execute("DEALLOCATE keyward_bench_rotate");
    plan
}

fn label(sessions: i64, events: i64) -> String {
    format!(
        "refresh, {} sessions, {} events",
        human(sessions),
        human(events)
    )
}

/// Brings `events` to `total` rows, or as near as the kinds allow: filler
/// events of the seeded users over the last 30 days (mostly refreshes, as
/// in real use) in one `INSERT … SELECT generate_series`, or, when the runs
/// before wrote more, the oldest `refreshed` ones deleted. The next
/// [`fill_sessions`] vacuums and checkpoints. Returns the count.
fn set_events(conn: &mut PgConnection, total: i64) -> i64 {
    let have = event_count(conn);
    if have > total {
        diesel::sql_query(
            "DELETE FROM events WHERE id IN \
             (SELECT id FROM events WHERE kind = 'refreshed' ORDER BY id LIMIT $1)",
        )
        .bind::<diesel::sql_types::BigInt, _>(have - total)
        .execute(conn)
        .unwrap();
    } else if have < total {
        diesel::sql_query(
            "WITH u AS (SELECT array_agg(id ORDER BY username) AS ids FROM users) \
             INSERT INTO events (at, kind, user_id, session_id, ip) \
             SELECT now() - interval '30 days' * (1 - g::float8 / $1), \
                    (ARRAY['refreshed','refreshed','refreshed','refreshed','refreshed','refreshed', \
                           'refreshed','refreshed','login_succeeded','logout'])[1 + g % 10], \
                    u.ids[1 + g % cardinality(u.ids)], gen_random_uuid(), '127.0.0.1' \
             FROM u, generate_series(1, $1) AS g",
        )
        .bind::<diesel::sql_types::BigInt, _>(total - have)
        .execute(conn)
        .unwrap();
    }
    event_count(conn)
}

fn event_count(conn: &mut PgConnection) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM events")
        .get_result::<Count>(conn)
        .unwrap()
        .n
}
