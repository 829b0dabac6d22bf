//! Refresh with about 1,000 sessions in the table, then with 1,000,000,
//! each right after VACUUM ANALYZE and a checkpoint so that both start
//! alike; and the rotation's plan at both sizes.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use keyward::db::sessions::ROTATE_SQL;
use std::time::Instant;
use uuid::Uuid;

use crate::limits::raw_rows;
use crate::report::{human, ratio, Ratio, Stats};
use crate::scenarios::Scenario;
use crate::server::{fill_sessions, session_count, Bench};

pub(crate) struct TableSize {
    pub(crate) small: Stats,
    pub(crate) big: Stats,
    pub(crate) small_count: i64,
    pub(crate) big_count: i64,
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
    fill_sessions(&mut bench.admin, 0);
    let small_count = session_count(&mut bench.admin);
    let mut small = refresh(bench);
    small.label = format!("refresh, {} sessions", human(small_count));
    let plan_small = explain_rotation(&mut bench.admin);
    let fill_started = Instant::now();
    let big_count = fill_sessions(&mut bench.admin, bench.config.big_sessions);
    eprintln!(
        "sessions table: {big_count} rows (bulk insert, VACUUM ANALYZE, CHECKPOINT: {:.1} s)",
        fill_started.elapsed().as_secs_f64()
    );
    let mut big = refresh(bench);
    big.label = format!("refresh, {} sessions", human(big_count));
    let plan_big = explain_rotation(&mut bench.admin);
    TableSize {
        small,
        big,
        small_count,
        big_count,
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
                "{:.0} req/s with {} sessions / {:.0} with {} (x{})",
                self.big.rps,
                human(self.big_count),
                self.small.rps,
                human(self.small_count),
                self.big.concurrency,
            ),
        )
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
/// `db::sessions::rotate` sends it, on a live row, rolled back.
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
            "PREPARE keyward_bench_rotate (uuid, timestamptz, float8, float8, uuid, uuid, text) AS {ROTATE_SQL}"
        ))?;
        plan = diesel::sql_query(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE keyward_bench_rotate \
             ('{}', date_trunc('second', now()), 86400, 2592000, '{id}', '{jti}', '127.0.0.1')",
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
                 ('{}', date_trunc('second', now()), 86400, 2592000, '{id}', '{jti}', '127.0.0.1')",
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
