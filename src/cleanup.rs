//! The cleanup job: a background thread that deletes what is kept no longer.
//!
//! Sessions that expired or were revoked more than `retention.sessions_days`
//! ago, events older than `retention.events_days`, and per-username failure
//! counts untouched (and unlocked) for `retention.sessions_days`. Each delete
//! takes at most [`BATCH`] rows in its own short statement, so no lock is
//! held for long and live traffic interleaves. The work is
//! [`sweep`], a plain function of a connection and `now`: tests call it
//! directly with an advanced time.
//!
//! A run keeps deleting while its batches come back full, taking the tables
//! in turn, for at most `RUN_BUDGET`; if that was not enough, the next run
//! follows after `PAUSE` instead of `EVERY`. A budget of time rather
//! than a number of batches, because a fixed count caps the rows deleted per
//! run, and a busy server's event log outgrows any such cap.
//!
//! Every instance runs the job; the deletes are idempotent, so two instances
//! sweeping at once only share the work. Each run first rolls up the event
//! counts of completed hours for `GET /admin/stats` (`services::stats::roll_up`),
//! idempotent too.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel::RunQueryDsl;

use crate::clock::Clock;
use crate::config::{RetentionSettings, Settings};
use crate::db::DbPool;

/// Rows per delete statement.
pub const BATCH: i64 = 1000;

/// How long one run may go on deleting; the rest waits for the next run.
pub(crate) const RUN_BUDGET: Duration = Duration::from_secs(30);

/// How often the job runs when the last run finished.
pub(crate) const EVERY: Duration = Duration::from_secs(5 * 60);

/// The wait before the next run when the last one ran out of time.
pub(crate) const PAUSE: Duration = Duration::from_secs(1);

/// The first sweep comes a little after start-up, off the critical path.
const FIRST_AFTER: Duration = Duration::from_secs(30);

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub sessions: usize,
    pub events: usize,
    pub throttle: usize,
}

/// One kind of row the job deletes: `ended` is the SQL condition, where `$1`
/// is the retention cut-off and `$2` is now.
struct Expiring {
    table: &'static str,
    key: &'static str,
    ended: &'static str,
}

const SESSIONS: Expiring = Expiring {
    table: "sessions",
    key: "id",
    ended: "expires_at < $1 OR revoked_at < $1",
};

const EVENTS: Expiring = Expiring {
    table: "events",
    key: "id",
    ended: "at < $1",
};

/// Usernames sprayed once and never again would otherwise pile up; a count
/// untouched for the session retention starts again from zero.
const THROTTLE: Expiring = Expiring {
    table: "login_throttle",
    key: "username_key",
    ended: "last_failure < $1 AND (locked_until IS NULL OR locked_until < $2)",
};

/// What one run did, and whether it got to the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub swept: Swept,
    /// Every table's last batch came back short: nothing is left to delete.
    pub finished: bool,
}

/// One run of the job at `now`, with the budget of `RUN_BUDGET`.
pub fn sweep(
    conn: &mut PgConnection,
    retention: &RetentionSettings,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Swept> {
    Ok(sweep_for(conn, retention, now, RUN_BUDGET, &|| false)?.swept)
}

/// Deletes, in batches of [`BATCH`], whatever has outlived its retention at
/// `now`: a batch from each table in turn, while any comes back full, until
/// `budget` has passed or `stop` says so. Each table gets at least one
/// batch, so every run makes progress.
pub fn sweep_for(
    conn: &mut PgConnection,
    retention: &RetentionSettings,
    now: DateTime<Utc>,
    budget: Duration,
    stop: &dyn Fn() -> bool,
) -> diesel::QueryResult<Run> {
    let deadline = Instant::now() + budget;
    // Validated settings keep these in range; an out-of-range one (a clock
    // moved to the end of time, say) deletes nothing rather than panicking.
    let cutoff = |days: i64| TimeDelta::try_days(days).and_then(|d| now.checked_sub_signed(d));
    let (Some(sessions_cutoff), Some(events_cutoff)) = (
        cutoff(retention.sessions_days),
        cutoff(retention.events_days),
    ) else {
        log::warn!("cleanup skipped: the retention settings overflow the date {now}");
        return Ok(Run {
            swept: Swept::default(),
            finished: true,
        });
    };
    let mut tables = [
        (&SESSIONS, sessions_cutoff, 0, true),
        (&EVENTS, events_cutoff, 0, true),
        (&THROTTLE, sessions_cutoff, 0, true),
    ];
    loop {
        for (what, cutoff, total, more) in tables.iter_mut().filter(|t| t.3) {
            let deleted = delete_batch(conn, what, *cutoff, now)?;
            *total += deleted;
            *more = deleted >= BATCH as usize;
        }
        let finished = tables.iter().all(|t| !t.3);
        if finished || Instant::now() >= deadline || stop() {
            let [sessions, events, throttle] = tables.map(|t| t.2);
            return Ok(Run {
                swept: Swept {
                    sessions,
                    events,
                    throttle,
                },
                finished,
            });
        }
    }
}

/// One short statement per batch, so no lock is held for long.
fn delete_batch(
    conn: &mut PgConnection,
    what: &Expiring,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    let Expiring { table, key, ended } = what;
    let sql = format!(
        "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {ended} LIMIT $3)"
    );
    diesel::sql_query(&sql)
        .bind::<Timestamptz, _>(cutoff)
        .bind::<Timestamptz, _>(now)
        .bind::<BigInt, _>(BATCH)
        .execute(conn)
}

/// Stops the cleanup thread when dropped (waking it at once).
pub(crate) struct CleanupHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for CleanupHandle {
    fn drop(&mut self) {
        // Dropping the sender disconnects the channel the thread waits on.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the cleanup thread on the request pool.
pub(crate) fn spawn(
    pool: DbPool,
    settings: Arc<Settings>,
    clock: Clock,
) -> std::io::Result<CleanupHandle> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("keyward-cleanup".into())
        .spawn(move || {
            let mut wait = FIRST_AFTER;
            loop {
                match stopped.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                // A dropped handle ends a run between two batches.
                let stop = || !matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Empty));
                let finished = run_once(&pool, &settings, clock.now(), &stop);
                wait = if finished { EVERY } else { PAUSE };
            }
        })?;
    Ok(CleanupHandle {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// One run; whether it finished (a failed run waits for the usual time).
fn run_once(
    pool: &DbPool,
    settings: &Settings,
    now: DateTime<Utc>,
    stop: &dyn Fn() -> bool,
) -> bool {
    let retention = &settings.retention;
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            log::warn!("cleanup skipped: database unavailable: {e}");
            return true;
        }
    };
    // Before the deletes: an hour rolled up keeps its counts in the overview
    // after its events are gone.
    match crate::services::stats::roll_up(&mut conn, now) {
        Ok(0) => {}
        Ok(n) => log::info!("cleanup: rolled up the event counts of {n} completed hours"),
        Err(e) => log::warn!("rollup of event counts failed (retried at the next run): {e}"),
    }
    let finished = match sweep_for(&mut conn, retention, now, RUN_BUDGET, stop) {
        Ok(Run { swept, finished }) => {
            log::info!(
                "cleanup: deleted {} sessions ended before {} days ago, {} events older than {} days, {} stale login counters{}",
                swept.sessions,
                retention.sessions_days,
                swept.events,
                retention.events_days,
                swept.throttle,
                if finished { "" } else { "; more to delete, going on in a second" }
            );
            finished
        }
        Err(e) => {
            log::warn!("cleanup failed (retried at the next run): {e}");
            true
        }
    };
    match crate::services::keys::delete_expired(&mut conn, settings, now) {
        Ok(0) => {}
        Ok(n) => log::info!("cleanup: deleted {n} signing keys whose tokens have all expired"),
        Err(e) => log::warn!("cleanup of signing keys failed (retried at the next run): {e}"),
    }
    finished
}
