//! The only reader of the system time. Services take `now` as a parameter;
//! tests move the app's clock forward with [`Clock::advance`], so expiry,
//! grace windows and bans are tested without sleeping. The clock keeps
//! ticking with real time in between.
//!
//! One clock for every instance: the time rules that several instances
//! share (a refresh's grace window measured from a `rotated_at` another
//! instance wrote, a ban's end, a revocation's horizon) compare times written
//! by one instance with another's `now`. So each instance reads the
//! database's clock (see `clock_sync`) and [`Clock::now`] is the database's
//! time, plus the offset tests and `serve --ephemeral` move (zero otherwise).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Microseconds added to the system time; only a test clock moves it.
    offset_us: Arc<AtomicI64>,
    /// The database's clock minus this machine's, in microseconds, as last
    /// measured (zero until then).
    to_database_us: Arc<AtomicI64>,
    /// Tests only: how far this machine's own clock is off.
    skew_us: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock whose machine runs `skew` ahead of the others (behind, if
    /// negative): for tests of several instances whose clocks disagree.
    pub fn skewed(skew: TimeDelta) -> Self {
        Self {
            skew_us: skew.num_microseconds().unwrap_or(0),
            ..Self::default()
        }
    }

    /// This machine's own time (skew included), unaligned.
    pub(crate) fn local_now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::microseconds(self.skew_us)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.local_now()
            + TimeDelta::microseconds(
                self.to_database_us.load(Ordering::Relaxed)
                    + self.offset_us.load(Ordering::Relaxed),
            )
    }

    /// [`Clock::now`] in whole Unix seconds (`now().timestamp()`), without
    /// building a calendar date: what every token check reads.
    pub fn unix_seconds(&self) -> i64 {
        let system_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
            });
        let offset_us = self.skew_us
            + self.to_database_us.load(Ordering::Relaxed)
            + self.offset_us.load(Ordering::Relaxed);
        system_us.saturating_add(offset_us).div_euclid(1_000_000)
    }

    /// Aligns this clock (and every clone of it) with the database's:
    /// `database` is its time read between `sent` and `received` (this
    /// machine's [`Clock::local_now`]), taken to be halfway. Returns the
    /// difference found.
    pub(crate) fn align(
        &self,
        sent: DateTime<Utc>,
        database: DateTime<Utc>,
        received: DateTime<Utc>,
    ) -> TimeDelta {
        let halfway = sent + (received - sent) / 2;
        let difference = database - halfway;
        self.to_database_us.store(
            difference.num_microseconds().unwrap_or(0),
            Ordering::Relaxed,
        );
        difference
    }

    /// Moves this clock (and every clone of it) forward. For tests.
    pub fn advance(&self, by: TimeDelta) {
        self.offset_us
            .fetch_add(by.num_microseconds().unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// `at` plus `by`, saturating at the end of the dates chrono can hold
/// instead of panicking: where a setting (a lifetime, a lockout) meets a date.
pub(crate) fn later(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(by)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whole seconds as a [`TimeDelta`], saturating instead of panicking.
pub(crate) fn seconds(n: i64) -> TimeDelta {
    TimeDelta::try_seconds(n).unwrap_or(if n < 0 {
        TimeDelta::MIN
    } else {
        TimeDelta::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_clock_reads_the_database_time_and_keeps_its_advance() {
        let clock = Clock::skewed(TimeDelta::seconds(30));
        let sent = clock.local_now();
        let received = sent + TimeDelta::milliseconds(2);
        let database = sent - TimeDelta::seconds(30) + TimeDelta::milliseconds(1);
        let found = clock.align(sent, database, received);
        assert_eq!(found, TimeDelta::seconds(-30));
        let error = (clock.now() - Utc::now()).num_milliseconds().abs();
        assert!(error < 50, "{error} ms off the database's time");
        clock.advance(TimeDelta::seconds(100));
        let ahead = (clock.now() - Utc::now()).num_seconds();
        assert!((99..=100).contains(&ahead), "{ahead}");
    }

    #[test]
    fn unix_seconds_are_the_whole_seconds_of_now() {
        let clock = Clock::skewed(TimeDelta::milliseconds(-1_700));
        clock.advance(TimeDelta::seconds(3_600) + TimeDelta::microseconds(250));
        // A second boundary may pass between the reads: read until both
        // fall in the same second, which takes one or two tries.
        let matched = (0..10).any(|_| {
            let before = clock.now().timestamp();
            let seconds = clock.unix_seconds();
            let after = clock.now().timestamp();
            before == after && seconds == before
        });
        assert!(matched, "unix_seconds disagrees with now().timestamp()");
        let ahead = clock.unix_seconds() - Utc::now().timestamp();
        assert!((3_597..=3_599).contains(&ahead), "{ahead}");
    }

    #[test]
    fn settings_meeting_dates_saturate_instead_of_panicking() {
        let now = Utc::now();
        assert_eq!(later(now, seconds(i64::MAX)), DateTime::<Utc>::MAX_UTC);
        assert_eq!(later(now, seconds(60)), now + TimeDelta::seconds(60));
    }
}
