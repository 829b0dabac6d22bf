//! Closing the request pool before the process exits.
//!
//! r2d2 opens connections on background threads of its own, and nothing
//! joins them: a process that returned from `main` while one of them was
//! inside libpq (connecting, or closing the pool's last connections) could
//! crash in libpq's or OpenSSL's exit handlers (a SIGSEGV, or SIGABRT from
//! Kerberos' `k5_mutex_lock`). [`PoolDrain::close`] stops new connections,
//! waits for those being opened, and closes the idle ones on the calling
//! thread, so that afterwards no pool thread touches libpq.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::r2d2::{ManageConnection, Pool};

/// Shared by the pool's connection manager and whoever shuts the pool down.
#[derive(Debug, Default)]
pub struct PoolDrain {
    closing: AtomicBool,
    /// Connections being opened (from `connect` until the customizer has
    /// set them up, or the attempt failed).
    opening: AtomicUsize,
}

impl PoolDrain {
    /// Whether the pool is being closed: no connection is opened, none is
    /// handed out again.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Counts a connection attempt; `false` (and nothing counted) once closing.
    pub(super) fn begin_open(&self) -> bool {
        self.opening.fetch_add(1, Ordering::AcqRel);
        if self.is_closing() {
            self.end_open();
            return false;
        }
        true
    }

    pub(super) fn end_open(&self) {
        self.opening.fetch_sub(1, Ordering::AcqRel);
    }

    /// Stops the pool opening connections, waits (up to `limit`) for those
    /// being opened, then closes every idle connection on this thread.
    /// Returns how many it closed. Connections still checked out are closed
    /// when they come back (the pool's manager then reports them broken).
    pub(crate) fn close<M: ManageConnection>(&self, pool: &Pool<M>, limit: Duration) -> usize {
        self.closing.store(true, Ordering::Release);
        let deadline = Instant::now() + limit;
        while self.opening.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // A connection taken out and given back while closing is reported
        // broken, so r2d2 drops it here, on this thread.
        let mut closed = 0;
        while let Some(conn) = pool.try_get() {
            drop(conn);
            closed += 1;
        }
        closed
    }
}
