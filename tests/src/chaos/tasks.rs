//! The tasks a chaos run enqueues, one per [`Kind`], and what should become of each.
//!
//! Every body appends a `start` line to the worker process's history before it works and a
//! finish line (`ok` or `err`) after, through [`crate::chaos::worker::record`]. A task is
//! named by the sequence number it carries in its arguments (unique in a run), so that the
//! checker can match its executions to its enqueue even when the producer never learnt its
//! id (a lost reply) and for the items of a batch, whose context names the first item only.
//!
//! The order streams ([`Stream`]) carry an ordering key too, `(key, seq)`: the ordered
//! queue ([`Kind::Ordered`], one constant key) and the keyed queue ([`Kind::Keyed`]), each
//! with a control twin on a plain queue with the same body ([`Kind::Unordered`],
//! [`Kind::Unkeyed`]) that the negative control of the order check sends the same
//! workload to. A task of a stream whose `seq` is [`fails_first`] fails its first attempt.

use std::time::Duration;

use redisq::fifo;
use serde::{Deserialize, Serialize};

use super::history::Event;
use super::worker::{record, record_keyed};

/// The queue served by one consumer thread in the whole run, for the FIFO check.
pub const FIFO_QUEUE: &str = "chaos-fifo";
/// The queue served by several threads in every worker process.
pub const MULTI_QUEUE: &str = "chaos-multi";
/// The queue of the tasks that fail: [`Kind::Flaky`] and [`Kind::Doomed`].
pub const RETRY_QUEUE: &str = "chaos-retry";
/// The queue of the batch task.
pub const BATCH_QUEUE: &str = "chaos-batch";
/// The queues of the delivery checks, which the probes read.
pub const QUEUES: [&str; 4] = [FIFO_QUEUE, MULTI_QUEUE, RETRY_QUEUE, BATCH_QUEUE];
/// The ordered queue (`ordered = true`): one consumer at a time in the whole run.
pub const ORDERED_QUEUE: &str = "chaos-ordered";
/// The keyed queue (`key = "key"`): one task of a key at a time.
pub const KEYED_QUEUE: &str = "chaos-keyed";
/// The control twin of the ordered queue: a plain queue.
pub const UNORDERED_QUEUE: &str = "chaos-unordered";
/// The control twin of the keyed queue: a plain queue.
pub const UNKEYED_QUEUE: &str = "chaos-unkeyed";
/// Every queue of a run.
pub const ALL_QUEUES: [&str; 8] = [
    FIFO_QUEUE,
    MULTI_QUEUE,
    RETRY_QUEUE,
    BATCH_QUEUE,
    ORDERED_QUEUE,
    KEYED_QUEUE,
    UNORDERED_QUEUE,
    UNKEYED_QUEUE,
];
/// The one key of the ordered queue's stream (and its twin's).
pub const ORDERED_KEY: &str = "ordered";

/// Whether a task of an order stream fails its first attempt: one in eleven, so that
/// retries hold their stream now and then.
#[must_use]
pub fn fails_first(seq: u64) -> bool {
    seq % 11 == 5
}

/// What an order stream's tasks are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    /// The whole queue: every task of the kind, one key.
    Queue,
    /// Each ordering key on its own.
    Key,
}

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
    /// A task of the ordered queue.
    Ordered,
    /// A task of the keyed queue.
    Keyed,
    /// The ordered queue's workload on a plain queue (the negative control).
    Unordered,
    /// The keyed queue's workload on a plain queue (the negative control).
    Unkeyed,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 9] = [
        Kind::Fifo,
        Kind::Multi,
        Kind::Flaky,
        Kind::Doomed,
        Kind::Batch,
        Kind::Ordered,
        Kind::Keyed,
        Kind::Unordered,
        Kind::Unkeyed,
    ];

    /// The queue its tasks go to.
    #[must_use]
    pub fn queue(self) -> &'static str {
        match self {
            Kind::Fifo => FIFO_QUEUE,
            Kind::Multi => MULTI_QUEUE,
            Kind::Flaky | Kind::Doomed => RETRY_QUEUE,
            Kind::Batch => BATCH_QUEUE,
            Kind::Ordered => ORDERED_QUEUE,
            Kind::Keyed => KEYED_QUEUE,
            Kind::Unordered => UNORDERED_QUEUE,
            Kind::Unkeyed => UNKEYED_QUEUE,
        }
    }

    /// The order stream its tasks belong to, for the kinds of one: what they are ordered
    /// by (or, for a control kind, would be).
    #[must_use]
    pub fn stream(self) -> Option<Stream> {
        match self {
            Kind::Ordered | Kind::Unordered => Some(Stream::Queue),
            Kind::Keyed | Kind::Unkeyed => Some(Stream::Key),
            _ => None,
        }
    }

    /// Whether it is a control kind: an order stream's workload on a plain queue.
    #[must_use]
    pub fn control(self) -> bool {
        matches!(self, Kind::Unordered | Kind::Unkeyed)
    }

    /// The kind of a stream's tasks, on its ordered queue or (`control`) on its plain twin.
    #[must_use]
    pub fn of_stream(stream: Stream, control: bool) -> Kind {
        match (stream, control) {
            (Stream::Queue, false) => Kind::Ordered,
            (Stream::Key, false) => Kind::Keyed,
            (Stream::Queue, true) => Kind::Unordered,
            (Stream::Key, true) => Kind::Unkeyed,
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

    /// Enqueues one task of this kind carrying `seq` (and, for the kinds of an order
    /// stream, `key`; the ordered queue's is [`ORDERED_KEY`] whatever `key` says) on
    /// `backend`. Every other keyed task gives its key at the call site too
    /// (`with(..).key(..)`, the same key), so that both forms are exercised.
    ///
    /// # Errors
    /// As the generated `enqueue` functions.
    pub fn enqueue(
        self,
        backend: &redisq::RedisQueueBackend,
        key: Option<&str>,
        seq: u64,
    ) -> redisq::Result<redisq::TaskId> {
        let key_str = key.unwrap_or_default();
        let key = || key_str.to_owned();
        match self {
            Kind::Fifo => chaos_fifo::enqueue(backend, seq),
            Kind::Multi => chaos_multi::enqueue(backend, seq),
            Kind::Flaky => chaos_flaky::enqueue(backend, seq),
            Kind::Doomed => chaos_doomed::enqueue(backend, seq),
            Kind::Batch => chaos_batch::enqueue(backend, seq),
            Kind::Ordered => chaos_ordered::enqueue(backend, ORDERED_KEY.to_owned(), seq),
            Kind::Keyed if seq.is_multiple_of(2) => {
                chaos_keyed::with(backend).key(key_str).enqueue(key(), seq)
            }
            Kind::Keyed => chaos_keyed::enqueue(backend, key(), seq),
            Kind::Unordered => chaos_unordered::enqueue(backend, ORDERED_KEY.to_owned(), seq),
            Kind::Unkeyed => chaos_unkeyed::enqueue(backend, key(), seq),
        }
    }

    /// The wire names of every task, which a worker binary references so that the
    /// registrations are linked in.
    #[must_use]
    pub fn wire_names() -> [&'static str; 9] {
        [
            chaos_fifo::NAME,
            chaos_multi::NAME,
            chaos_flaky::NAME,
            chaos_doomed::NAME,
            chaos_batch::NAME,
            chaos_ordered::NAME,
            chaos_keyed::NAME,
            chaos_unordered::NAME,
            chaos_unkeyed::NAME,
        ]
    }
}

/// Records the start of `seq`, works for `work`, records the outcome `ok` and returns it.
fn run(kind: Kind, seq: u64, work: Duration, ok: impl FnOnce(u32) -> bool) -> Result<(), String> {
    run_keyed(kind, None, seq, work, ok)
}

/// [`run`] for a task that carries an ordering key.
fn run_keyed(
    kind: Kind,
    key: Option<&str>,
    seq: u64,
    work: Duration,
    ok: impl FnOnce(u32) -> bool,
) -> Result<(), String> {
    let attempt = record_keyed(kind, key, seq, Event::Start);
    std::thread::sleep(work);
    if ok(attempt) {
        record_keyed(kind, key, seq, Event::Ok);
        Ok(())
    } else {
        record_keyed(kind, key, seq, Event::Err);
        Err(format!("task {seq} fails attempt {attempt} on purpose"))
    }
}

/// The body of every order stream's task: records its start with its key, works for
/// `work`, and fails its first attempt when `seq` is [`fails_first`].
fn run_in_order(kind: Kind, key: &str, seq: u64, work: Duration) -> Result<(), String> {
    run_keyed(kind, Some(key), seq, work, |attempt| {
        attempt > 1 || !fails_first(seq)
    })
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

/// A task of the ordered queue: consumed by one consumer at a time in the whole run,
/// started in enqueue order; a retry holds the queue. Two milliseconds of work.
#[fifo(queue = "chaos-ordered", name = "chaos.ordered", ordered = true)]
pub fn chaos_ordered(key: String, seq: u64) -> Result<(), String> {
    run_in_order(Kind::Ordered, &key, seq, Duration::from_millis(2))
}

/// A task of the keyed queue: one task of a key at a time, in enqueue order; a retry
/// holds its key. Three milliseconds of work.
#[fifo(queue = "chaos-keyed", name = "chaos.keyed", key = "key")]
pub fn chaos_keyed(key: String, seq: u64) -> Result<(), String> {
    run_in_order(Kind::Keyed, &key, seq, Duration::from_millis(3))
}

/// The ordered queue's body on a plain queue: the negative control.
#[fifo(queue = "chaos-unordered", name = "chaos.unordered")]
pub fn chaos_unordered(key: String, seq: u64) -> Result<(), String> {
    run_in_order(Kind::Unordered, &key, seq, Duration::from_millis(2))
}

/// The keyed queue's body on a plain queue: the negative control.
#[fifo(queue = "chaos-unkeyed", name = "chaos.unkeyed")]
pub fn chaos_unkeyed(key: String, seq: u64) -> Result<(), String> {
    run_in_order(Kind::Unkeyed, &key, seq, Duration::from_millis(3))
}
