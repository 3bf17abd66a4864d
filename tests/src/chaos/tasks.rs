//! The tasks a chaos run enqueues, one per [`Kind`], and what should become of each.
//!
//! Every body appends a `start` line to the worker process's history before it works and a
//! finish line (`ok` or `err`) after, through [`crate::chaos::worker::record`]. A task is
//! named by the sequence number it carries in its arguments (unique in a run), so that the
//! checker can match its executions to its enqueue even when the producer never learnt its
//! id (a lost reply) and for the items of a batch, whose context names the first item only.

use std::time::Duration;

use redisq::fifo;
use serde::{Deserialize, Serialize};

use super::history::Event;
use super::worker::record;

/// The queue served by one consumer thread in the whole run, for the FIFO check.
pub const FIFO_QUEUE: &str = "chaos-fifo";
/// The queue served by several threads in every worker process.
pub const MULTI_QUEUE: &str = "chaos-multi";
/// The queue of the tasks that fail: [`Kind::Flaky`] and [`Kind::Doomed`].
pub const RETRY_QUEUE: &str = "chaos-retry";
/// The queue of the batch task.
pub const BATCH_QUEUE: &str = "chaos-batch";
/// Every queue of a run.
pub const QUEUES: [&str; 4] = [FIFO_QUEUE, MULTI_QUEUE, RETRY_QUEUE, BATCH_QUEUE];

/// The retries of [`Kind::Doomed`]: it dies after this many plus one attempts.
pub const DOOMED_RETRIES: u32 = 1;
/// Items per call of the batch task at most.
pub const BATCH_SIZE: usize = 5;
/// A batch whose items include a multiple of this fails its first attempt.
pub const BATCH_FAILS_EVERY: u64 = 16;

/// What a task is, which decides its queue and its fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Succeeds at once, on the one-thread queue.
    Fifo,
    /// Succeeds at once, on the multi-thread queue.
    Multi,
    /// Fails its first attempt, then succeeds.
    Flaky,
    /// Always fails: dead after [`DOOMED_RETRIES`] retries.
    Doomed,
    /// An item of the batch task; a batch holding a multiple of [`BATCH_FAILS_EVERY`]
    /// fails its first attempt (and is retried as a unit).
    Batch,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Fifo,
        Kind::Multi,
        Kind::Flaky,
        Kind::Doomed,
        Kind::Batch,
    ];

    /// The queue its tasks go to.
    #[must_use]
    pub fn queue(self) -> &'static str {
        match self {
            Kind::Fifo => FIFO_QUEUE,
            Kind::Multi => MULTI_QUEUE,
            Kind::Flaky | Kind::Doomed => RETRY_QUEUE,
            Kind::Batch => BATCH_QUEUE,
        }
    }

    /// Whether its tasks are meant to end dead rather than done.
    #[must_use]
    pub fn dies(self) -> bool {
        self == Kind::Doomed
    }

    /// The attempts a task of this kind makes before it dies, if it is meant to.
    #[must_use]
    pub fn attempts_to_die(self) -> Option<u32> {
        self.dies().then_some(DOOMED_RETRIES + 1)
    }

    /// Whether the context id of an execution is the task's own id (not so for the items
    /// of a batch, which run under the id of the batch's first item).
    #[must_use]
    pub fn runs_under_own_id(self) -> bool {
        self != Kind::Batch
    }

    /// Enqueues one task of this kind carrying `seq` on `backend`.
    ///
    /// # Errors
    /// As the generated `enqueue` functions.
    pub fn enqueue(
        self,
        backend: &redisq::RedisQueueBackend,
        seq: u64,
    ) -> redisq::Result<redisq::TaskId> {
        match self {
            Kind::Fifo => chaos_fifo::enqueue(backend, seq),
            Kind::Multi => chaos_multi::enqueue(backend, seq),
            Kind::Flaky => chaos_flaky::enqueue(backend, seq),
            Kind::Doomed => chaos_doomed::enqueue(backend, seq),
            Kind::Batch => chaos_batch::enqueue(backend, seq),
        }
    }

    /// The wire names of every task, which a worker binary references so that the
    /// registrations are linked in.
    #[must_use]
    pub fn wire_names() -> [&'static str; 5] {
        [
            chaos_fifo::NAME,
            chaos_multi::NAME,
            chaos_flaky::NAME,
            chaos_doomed::NAME,
            chaos_batch::NAME,
        ]
    }
}

/// Records the start of `seq`, works for `work`, records the outcome `ok` and returns it.
fn run(kind: Kind, seq: u64, work: Duration, ok: impl FnOnce(u32) -> bool) -> Result<(), String> {
    let attempt = record(kind, seq, Event::Start);
    std::thread::sleep(work);
    if ok(attempt) {
        record(kind, seq, Event::Ok);
        Ok(())
    } else {
        record(kind, seq, Event::Err);
        Err(format!("task {seq} fails attempt {attempt} on purpose"))
    }
}

/// A task on the one-thread queue: ten milliseconds of pretend work, so that faults often
/// strike while one runs.
#[fifo(queue = "chaos-fifo", name = "chaos.fifo")]
pub fn chaos_fifo(seq: u64) -> Result<(), String> {
    run(Kind::Fifo, seq, Duration::from_millis(10), |_| true)
}

/// A task on the multi-thread queue: a millisecond of pretend work, so that its consumers
/// claim several at a time and hold some they have not started.
#[fifo(queue = "chaos-multi", name = "chaos.multi")]
pub fn chaos_multi(seq: u64) -> Result<(), String> {
    run(Kind::Multi, seq, Duration::from_millis(1), |_| true)
}

/// Fails its first attempt, succeeds after.
#[fifo(queue = "chaos-retry", name = "chaos.flaky")]
pub fn chaos_flaky(seq: u64) -> Result<(), String> {
    run(Kind::Flaky, seq, Duration::from_millis(5), |attempt| {
        attempt > 1
    })
}

/// Always fails; dead after one retry.
#[fifo(queue = "chaos-retry", name = "chaos.doomed", retries = 1)]
pub fn chaos_doomed(seq: u64) -> Result<(), String> {
    run(Kind::Doomed, seq, Duration::from_millis(5), |_| false)
}

/// A batch task: up to five items a call, twenty milliseconds a call. A batch holding a
/// multiple of sixteen fails its first attempt.
#[fifo(queue = "chaos-batch", name = "chaos.batch", batch = 5)]
pub fn chaos_batch(items: Vec<u64>) -> Result<(), String> {
    let attempt = items
        .iter()
        .map(|seq| record(Kind::Batch, *seq, Event::Start))
        .max()
        .unwrap_or(1);
    std::thread::sleep(Duration::from_millis(20));
    let ok = attempt > 1 || items.iter().all(|seq| seq % BATCH_FAILS_EVERY != 0);
    let event = if ok { Event::Ok } else { Event::Err };
    for seq in &items {
        record(Kind::Batch, *seq, event);
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "batch {items:?} fails attempt {attempt} on purpose"
        ))
    }
}
