//! Keeps the instance's [`Clock`] on the database's time: at start, then
//! every [`EVERY`] on a background thread, one `SELECT clock_timestamp()`.
//! Instances whose machines' clocks disagree by seconds then still agree on
//! grace windows, bans and expiry to within a round trip.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::Timestamptz;
use diesel::RunQueryDsl;

use crate::clock::Clock;
use crate::db::DbPool;

/// How often the clock is aligned again (a machine's clock may be stepped).
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// A difference larger than this is logged: the machine's clock is off.
const NOTEWORTHY: TimeDelta = TimeDelta::seconds(1);

#[derive(diesel::QueryableByName)]
struct DatabaseTime {
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

/// Aligns `clock` with the database's time once; returns the difference.
pub(crate) fn align_once(conn: &mut PgConnection, clock: &Clock) -> diesel::QueryResult<TimeDelta> {
    let sent = clock.local_now();
    let database = diesel::sql_query("SELECT clock_timestamp() AS now")
        .get_result::<DatabaseTime>(conn)?
        .now;
    let received = clock.local_now();
    Ok(clock.align(sent, database, received))
}

/// Stops the thread when dropped (waking it at once).
pub(crate) struct ClockSyncHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ClockSyncHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Aligns `clock` now (an error only logs: the clock then keeps the
/// machine's time until the database answers), then every [`EVERY`].
pub(crate) fn spawn(pool: DbPool, clock: Clock) -> std::io::Result<ClockSyncHandle> {
    align_logged(&pool, &clock);
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("keyward-clock".into())
        .spawn(move || loop {
            match stopped.recv_timeout(EVERY) {
                Err(RecvTimeoutError::Timeout) => align_logged(&pool, &clock),
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        })?;
    Ok(ClockSyncHandle {
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn align_logged(pool: &DbPool, clock: &Clock) {
    let aligned = pool
        .get()
        .map_err(|e| e.to_string())
        .and_then(|mut conn| align_once(&mut conn, clock).map_err(|e| e.to_string()));
    match aligned {
        Ok(difference) if difference.abs() > NOTEWORTHY => log::warn!(
            "this machine's clock is {} ms off the database's; keyward follows the database's",
            -difference.num_milliseconds()
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot read the database's clock (retried in {EVERY:?}): {e}"),
    }
}
