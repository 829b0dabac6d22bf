//! What the listener thread shares with the request handlers (healthy,
//! how long since the revocation set was confirmed current), and the handle
//! that stops the thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the listener shares with the request handlers.
#[derive(Debug)]
pub struct ListenerStatus {
    healthy: AtomicBool,
    stop: AtomicBool,
    started: Instant,
    /// Milliseconds after `started` of the last read that brought the
    /// revocation set up to date.
    confirmed_ms: AtomicU64,
}

impl Default for ListenerStatus {
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            confirmed_ms: AtomicU64::new(0),
        }
    }
}

impl ListenerStatus {
    /// Listening and caught up with the database.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(super) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
    }

    /// Whether the thread has been told to stop.
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(super) fn confirm(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.confirmed_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// How long since the revocation set was last confirmed current.
    pub(crate) fn unconfirmed_for(&self) -> Duration {
        let confirmed = Duration::from_millis(self.confirmed_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(confirmed)
    }
}

/// Stops the listener thread when dropped.
pub(crate) struct ListenerHandle {
    status: Arc<ListenerStatus>,
    thread: Option<JoinHandle<()>>,
}

impl ListenerHandle {
    pub(super) fn new(status: Arc<ListenerStatus>, thread: JoinHandle<()>) -> Self {
        Self {
            status,
            thread: Some(thread),
        }
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.status.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
