//! The only reader of the system time. Services take `now` as a parameter;
//! tests move the app's clock forward with [`Clock::advance`], so expiry,
//! grace windows and bans are tested without sleeping. The clock keeps
//! ticking with real time in between.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Microseconds added to the system time; only a test clock moves it.
    offset_us: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::microseconds(self.offset_us.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward. For tests.
    pub fn advance(&self, by: TimeDelta) {
        self.offset_us
            .fetch_add(by.num_microseconds().unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}
