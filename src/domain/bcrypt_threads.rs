//! Where bcrypt runs: a few threads of its own (one per core) at a lower CPU
//! priority (nice 10).
//!
//! bcrypt is slow on purpose, and on the blocking pool next to the request
//! workers a flood of logins would take the CPU from every other request.
//! At nice 10 a bcrypt thread weighs about a tenth of a request worker, so
//! the workers take the CPU first; but unlike `SCHED_IDLE` bcrypt is never
//! starved, so logins keep going while the rest of the server is busy. When
//! logins are all there is, bcrypt gets every core. One thread per core also
//! bounds how many hashes run at once; further callers wait their turn on
//! their own (blocking) thread, which costs no CPU.
//!
//! How many may wait is bounded too ([`HashSlots`], `auth.max_pending_hashes`):
//! bcrypt does only a few hashes a second per core, and an unbounded queue of
//! logins, each holding a blocking thread, would make everything else that
//! needs one wait behind them. A request that finds every slot taken is
//! refused at once (`503` with `Retry-After`) instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The nice value of the bcrypt threads (0 is normal, 19 the lowest).
#[cfg(target_os = "linux")]
const BCRYPT_NICE: libc::c_int = 10;

/// The queue the bcrypt threads take work from; `None` if they could not
/// be started (the work then runs on the caller's thread, as before).
fn queue() -> Option<&'static Mutex<Sender<Job>>> {
    static QUEUE: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    QUEUE.get_or_init(start).as_ref()
}

fn start() -> Option<Mutex<Sender<Job>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("keyward-bcrypt-{i}"))
            .spawn(move || work(&rx));
        if spawned.is_ok() {
            started += 1;
        }
    }
    (started > 0).then(|| Mutex::new(tx))
}

fn work(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Nice 10 for the calling thread (Linux sets the nice value per thread);
/// if the system refuses, the thread keeps its priority (bcrypt still stays
/// off the request threads).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority changes only the
        // nice value of the calling thread, named by its id.
        let refused = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, BCRYPT_NICE)
        } != 0;
        if refused {
            log::debug!("bcrypt threads keep their CPU priority: setpriority refused");
        }
    }
}

/// Runs `f` on a bcrypt thread and waits for it (the caller is a blocking
/// thread, never a request worker). `None` only if the thread died while
/// running it.
pub(crate) fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    let Some(queue) = queue() else {
        job();
        return result.recv().ok();
    };
    let sent = queue.lock().unwrap_or_else(|e| e.into_inner()).send(job);
    if let Err(mpsc::SendError(job)) = sent {
        job();
    }
    result.recv().ok()
}

/// The places in the queue for bcrypt: a login, registration or password
/// change takes one before any of its work and holds it to the end.
#[derive(Debug, Clone)]
pub struct HashSlots {
    max: usize,
    taken: Arc<AtomicUsize>,
}

/// One taken place; dropping it gives it back.
#[derive(Debug)]
pub struct HashSlot {
    taken: Arc<AtomicUsize>,
}

impl HashSlots {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            taken: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A place, or `None` when `max` requests already hold one.
    pub(crate) fn try_take(&self) -> Option<HashSlot> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(HashSlot {
            taken: self.taken.clone(),
        })
    }
}

impl Drop for HashSlot {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let slots = super::HashSlots::new(2);
        let taken = || slots.taken.load(Ordering::Acquire);
        let a = slots.try_take().unwrap();
        let b = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        assert_eq!(taken(), 2);
        drop(a);
        let c = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        drop((b, c));
        assert_eq!(taken(), 0);
    }

    #[test]
    fn work_runs_and_returns_its_result() {
        let results: Vec<u32> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u32)
                .map(|i| s.spawn(move || super::run(move || i * 2)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert_eq!(results, vec![0, 2, 4, 6, 8, 10, 12, 14]);
    }
}
