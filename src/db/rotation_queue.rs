//! Rotations of many requests, sent to the database together.
//!
//! A refresh waits here for its compare-and-swap. At most [`RUNNERS`]
//! tasks of the blocking pool run the waiting rotations, each taking all
//! that are waiting (up to [`MAX_BATCH`]) into one statement
//! ([`rotation::rotate`]) on one connection, and again while more wait;
//! a runner stops when none is left. Nothing waits for a batch to fill: a
//! rotation arriving at an idle queue runs at once, alone. Under load the
//! rotations that arrive while a statement runs go together in the next
//! one: the database commits once for many of them, and the hand-over to
//! the blocking pool (a thread woken and a connection checked out per
//! request before) is paid once per statement. Those were most of a
//! rotation's price on both sides (issue 17's profile).
//!
//! Each row keeps its own compare-and-swap, so a batch answers exactly as
//! the same rotations one at a time would; a session appears at most once
//! in a batch (a second rotation of it would lose its swap anyway, and is
//! answered [`Outcome::NotApplied`] once the first has committed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::rotation::{self, Lifetimes, Rotated, Rotation};
use super::{DbPool, StoreError};

/// How many statements run at once. One gives the biggest batches (in A/B
/// runs on two cores, 15 to 25 % more refreshes a second than two, with a
/// third less PostgreSQL CPU per refresh), but then one statement waiting
/// for a row lock another transaction holds would hold up every refresh of
/// the instance; with two, the others keep moving. Four made the batches
/// smaller and the refreshes 10 to 20 % slower than two.
pub(crate) const RUNNERS: usize = 2;

/// The most rotations one statement carries.
pub(crate) const MAX_BATCH: usize = 64;

/// What became of one rotation.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The swap applied.
    Rotated(Rotated),
    /// It did not: the presented `jti` is no longer the current one, or the
    /// session or its user is no longer allowed. Read the row to know which.
    NotApplied,
    /// The database could not be reached.
    Unavailable(String),
    /// The batch failed for another reason (a lock conflict with another
    /// instance, say): run this rotation alone, which reports its own error.
    RunAlone,
}

struct Job {
    rotation: Rotation,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Waiting {
    jobs: Vec<Job>,
    runners: usize,
}

/// The queue of rotations waiting for the database.
pub(crate) struct RotationQueue {
    pool: DbPool,
    lifetimes: Lifetimes,
    waiting: Mutex<Waiting>,
    counts: Counters,
}

/// What the queue has done since the start (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueCounts {
    /// Rotation statements sent.
    pub(crate) statements: u64,
    /// Rotations they carried.
    pub(crate) rotations: u64,
    /// Statements that failed (their rotations were answered
    /// [`Outcome::Unavailable`] or ran alone).
    pub(crate) failed: u64,
    /// Rotations waiting now for a statement.
    pub(crate) waiting: usize,
}

#[derive(Default)]
struct Counters {
    statements: AtomicU64,
    rotations: AtomicU64,
    failed: AtomicU64,
}

impl RotationQueue {
    pub(crate) fn new(pool: DbPool, lifetimes: Lifetimes) -> Arc<Self> {
        Arc::new(Self {
            pool,
            lifetimes,
            waiting: Mutex::default(),
            counts: Counters::default(),
        })
    }

    pub(crate) fn counts(&self) -> QueueCounts {
        let c = &self.counts;
        QueueCounts {
            statements: c.statements.load(Ordering::Relaxed),
            rotations: c.rotations.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            waiting: self.lock().jobs.len(),
        }
    }

    /// Queues `rotation` and waits for its outcome. Must be called from
    /// inside the server's runtime (a runner is a blocking-pool task).
    pub(crate) async fn rotate(self: &Arc<Self>, rotation: Rotation) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let start_runner = {
            let mut waiting = self.lock();
            waiting.jobs.push(Job { rotation, reply });
            let start = waiting.runners < RUNNERS;
            waiting.runners += usize::from(start);
            start
        };
        if start_runner {
            let runner = Runner {
                queue: Arc::clone(self),
                stopped: false,
            };
            tokio::task::spawn_blocking(move || runner.run());
        }
        // A runner that could not run (the runtime is shutting down) has
        // answered every waiting job already, or dropped its sender.
        outcome.await.unwrap_or(Outcome::RunAlone)
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // The lock guards a list and a counter, which no panic leaves
        // half-changed.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next batch; `None`, and one runner fewer, when none waits (under
    /// the same lock, so that a rotation queued a moment later starts a
    /// runner of its own instead of counting on this one).
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut waiting = self.lock();
        if waiting.jobs.is_empty() {
            waiting.runners -= 1;
            return None;
        }
        let take = waiting.jobs.len().min(MAX_BATCH);
        Some(waiting.jobs.drain(..take).collect())
    }
}

/// One runner: counted in `Waiting::runners` from its start until it finds
/// the queue empty, or until dropped if it never gets there.
struct Runner {
    queue: Arc<RotationQueue>,
    stopped: bool,
}

impl Runner {
    fn run(mut self) {
        let queue = Arc::clone(&self.queue);
        let mut conn = None;
        while let Some(batch) = queue.next_batch() {
            run_batch(&queue, &mut conn, batch);
        }
        // `next_batch` has counted this runner out.
        self.stopped = true;
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let mut waiting = self.queue.lock();
        waiting.runners -= 1;
        // A runner that stops with rotations still waiting and no other
        // runner (it never ran, or it panicked) answers them, so that none
        // waits forever: each then runs alone.
        if waiting.runners == 0 {
            for job in waiting.jobs.drain(..) {
                let _ = job.reply.send(Outcome::RunAlone);
            }
        }
    }
}

type Connection = diesel::r2d2::PooledConnection<super::pool::Manager>;

/// Runs one batch on the runner's connection (taken from the pool when it
/// has none) and answers each job. A connection is let go of after a failed
/// statement, so that the pool checks it before handing it out again.
fn run_batch(queue: &RotationQueue, conn: &mut Option<Connection>, mut batch: Vec<Job>) {
    batch.sort_by_key(|job| job.rotation.session_id);
    let (unique, repeated) = split_repeated(batch);
    let rotations: Vec<Rotation> = unique.iter().map(|j| j.rotation.clone()).collect();
    let counts = &queue.counts;
    counts.statements.fetch_add(1, Ordering::Relaxed);
    counts
        .rotations
        .fetch_add(rotations.len() as u64, Ordering::Relaxed);
    let result = checkout(&queue.pool, conn)
        .and_then(|c| rotation::rotate(c, &rotations, queue.lifetimes).map_err(StoreError::from));
    match result {
        Ok(rotated) => answer(unique, rotated),
        Err(e) => {
            *conn = None;
            counts.failed.fetch_add(1, Ordering::Relaxed);
            let outcome = |e: &StoreError| match e {
                StoreError::Unavailable(why) => Outcome::Unavailable(why.clone()),
                StoreError::Query(_) => Outcome::RunAlone,
            };
            log::warn!("a batch of {} rotations failed: {e}", unique.len());
            for job in unique {
                let _ = job.reply.send(outcome(&e));
            }
        }
    }
    // Answered after the first rotation of their session has committed (or
    // failed), so that the read which explains them sees it.
    for job in repeated {
        let _ = job.reply.send(Outcome::NotApplied);
    }
}

fn checkout<'c>(
    pool: &DbPool,
    conn: &'c mut Option<Connection>,
) -> Result<&'c mut diesel::PgConnection, StoreError> {
    let c = match conn.take() {
        Some(c) => c,
        None => pool.get()?,
    };
    Ok(&mut **conn.insert(c))
}

/// Splits jobs sorted by session into the first of each session and the
/// rest.
fn split_repeated(batch: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut unique: Vec<Job> = Vec::with_capacity(batch.len());
    let mut repeated = Vec::new();
    for job in batch {
        match unique.last() {
            Some(last) if last.rotation.session_id == job.rotation.session_id => repeated.push(job),
            _ => unique.push(job),
        }
    }
    (unique, repeated)
}

/// Answers each job, sorted by session, with its row of `rotated` if the
/// statement returned one.
fn answer(unique: Vec<Job>, mut rotated: Vec<Rotated>) {
    rotated.sort_by_key(|r| std::cmp::Reverse(r.session_id));
    for job in unique {
        let outcome = match rotated.last() {
            Some(r) if r.session_id == job.rotation.session_id => {
                rotated.pop().map_or(Outcome::NotApplied, Outcome::Rotated)
            }
            _ => Outcome::NotApplied,
        };
        let _ = job.reply.send(outcome);
    }
}
