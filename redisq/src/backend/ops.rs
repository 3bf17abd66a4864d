//! The queue operations of consumers and administrators, each one round trip.
//!
//! Take, lease, acknowledge and the outcome of failed tasks are atomic on the Redis side:
//! `settle.lua` acknowledges the tasks done, schedules retries and writes dead letters,
//! promotes due scheduled tasks, renews the lease and claims more, in one script. When the
//! queues are empty a consumer blocks on their signal lists (`BLPOP`), which every
//! enqueue rings ([`push`]), and claims again. `recover.lua` returns the tasks of a
//! consumer whose lease ran out. The scripts are `common.lua` followed by their own file.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Connection, RedisResult, Script};

use crate::keys::QueueKeys;
use crate::task::Priority;

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!($file))))
    };
}

static SETTLE: LazyLock<Script> = script!("settle.lua");
static RENEW: LazyLock<Script> = script!("renew.lua");
static EXPIRED: LazyLock<Script> = script!("expired.lua");
static RECOVER: LazyLock<Script> = script!("recover.lua");
static REQUEUE: LazyLock<Script> = script!("requeue.lua");
static ENQUEUE: LazyLock<Script> = script!("enqueue.lua");

/// A raw task payload as stored in a list.
pub(crate) type Payload = Vec<u8>;

/// What to record of a finished task, applied with the next settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Run again at `due` (Unix ms): the payload carries the attempt count and errors.
    Retry {
        due: u64,
        payload: Vec<u8>,
        record: RecordUpdate,
    },
    /// Set aside: a dead-letter record scored `score` (Unix microseconds).
    Dead {
        score: u64,
        letter: Vec<u8>,
        record: RecordUpdate,
    },
    /// Succeeded (only sent for tasks whose status record is kept).
    Done {
        id: String,
        attempts: u32,
        result: String,
    },
}

/// The fields of a status record that a failure updates; an empty id updates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RecordUpdate {
    pub(crate) id: String,
    pub(crate) attempts: u32,
    pub(crate) error: String,
}

/// What a settle adds to the queue's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) processed: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) dead: u64,
    /// `wait_ms:run_ms` samples, comma-separated.
    pub(crate) samples: String,
}

impl Tally {
    pub(crate) fn is_empty(&self) -> bool {
        self.processed == 0
            && self.failed == 0
            && self.retried == 0
            && self.dead == 0
            && self.samples.is_empty()
    }
}

/// How long finished status records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordTtl {
    pub(crate) done_secs: u64,
    pub(crate) dead_secs: u64,
}

/// How a settle ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Renew the lease and claim up to `max` tasks (at least once).
    Claim,
    /// Pop up to `max` tasks (at most once).
    Pop,
    /// Return every claimed task not done to the head of the queue and drop the lease.
    Release,
}

/// Retention of dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeadRetention {
    /// Records kept at most.
    pub(crate) max: usize,
    /// Age (ms) past which records are dropped; 0: no bound.
    pub(crate) max_age_ms: u64,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn settle_keys(invocation: &mut redis::ScriptInvocation<'_>, keys: &QueueKeys, consumer: &str) {
    invocation
        .key(keys.pending())
        .key(keys.claimed(consumer))
        .key(keys.leases())
        .key(keys.scheduled())
        .key(keys.dead())
        .key(keys.lane(Priority::High))
        .key(keys.lane(Priority::Low))
        .key(keys.signal())
        .key(keys.stats())
        .key(keys.throughput())
        .key(keys.latency())
        .key(keys.counters());
}

/// Tasks of one call of `enqueue.lua`.
pub(crate) struct Push<'a> {
    pub(crate) queue: &'a str,
    pub(crate) name: &'a str,
    pub(crate) priority: Priority,
    /// `<ns>:task:`, or empty when no status records are kept.
    pub(crate) record_prefix: &'a str,
    pub(crate) queues_key: &'a str,
    pub(crate) created_at: u64,
    /// (id, payload) pairs.
    pub(crate) tasks: &'a [(&'a str, &'a [u8])],
}

/// Pushes tasks onto a lane of a queue, in order, writes their status records, and rings
/// the queue's signal list (which at-least-once consumers block on): one round trip.
///
/// With status records it runs `enqueue.lua`, which numbers the tasks in their lane and
/// writes each record with its number. Without (`store_result = false`) it sends a plain
/// pipeline instead — `RPUSH`, `HINCRBY` of the lane's count, `RPUSH` of a wake-up token,
/// and `SADD` of the queue when `register` — because entering a Lua script costs about as
/// much again as the `RPUSH` itself, and the fastest path should not pay it. Tokens are
/// trimmed by the claims that take tasks, and cleared by a claim that finds none.
pub(crate) fn push(
    con: &mut Connection,
    keys: &QueueKeys,
    push: &Push<'_>,
    register: bool,
) -> RedisResult<()> {
    if push.tasks.is_empty() {
        return Ok(());
    }
    if push.record_prefix.is_empty() {
        let lane = keys.lane(push.priority);
        let signal = keys.signal();
        let mut pipe = redis::pipe();
        for chunk in push.tasks.chunks(PUSH_CHUNK) {
            let mut rpush = redis::cmd("RPUSH");
            rpush.arg(&lane);
            for (_, payload) in chunk {
                rpush.arg(*payload);
            }
            pipe.add_command(rpush).ignore();
        }
        pipe.cmd("HINCRBY")
            .arg(keys.counters())
            .arg(format!("pushed:{}", push.priority.lane_name()))
            .arg(push.tasks.len())
            .ignore();
        // One token; claims trim the list back to a few (see settle.lua).
        pipe.cmd("RPUSH").arg(&signal).arg(1).ignore();
        if register {
            pipe.cmd("SADD")
                .arg(push.queues_key)
                .arg(push.queue)
                .ignore();
        }
        return pipe.query(con);
    }
    let mut invocation = ENQUEUE.key(keys.lane(push.priority));
    invocation
        .key(keys.signal())
        .key(keys.counters())
        .key(push.queues_key)
        .arg(push.priority.lane_name())
        .arg(push.record_prefix)
        .arg(push.queue)
        .arg(push.name)
        .arg(push.created_at)
        .arg(push.tasks.len());
    for (id, payload) in push.tasks {
        invocation.arg(*id).arg(*payload);
    }
    let _last: i64 = invocation.invoke(con)?;
    Ok(())
}

/// Payloads per `RPUSH` when pushing many without a script.
const PUSH_CHUNK: usize = 1_000;

/// Everything one settle sends besides the queue and the consumer.
pub(crate) struct SettleArgs<'a> {
    pub(crate) lease: Duration,
    pub(crate) done: usize,
    pub(crate) max: usize,
    pub(crate) mode: Mode,
    pub(crate) effects: &'a [Effect],
    pub(crate) tally: &'a Tally,
    pub(crate) retention: DeadRetention,
    pub(crate) record_prefix: &'a str,
    pub(crate) ttl: RecordTtl,
    /// Whether to mark the records of claimed tasks `processing`.
    pub(crate) mark_claimed: bool,
}

/// One settle round trip: see `settle.lua`. Returns the tasks taken, or for a release the
/// number handed back as a one-element list of nothing (use [`release_all`] for a count).
pub(crate) fn settle(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
    args: &SettleArgs<'_>,
) -> RedisResult<Vec<Payload>> {
    let mut invocation = SETTLE.prepare_invoke();
    settle_keys(&mut invocation, keys, consumer);
    invocation
        .arg(consumer)
        .arg(millis(args.lease))
        .arg(args.done)
        .arg(args.max)
        .arg(match args.mode {
            Mode::Claim => "claim",
            Mode::Pop => "pop",
            Mode::Release => "release",
        })
        .arg(args.retention.max)
        .arg(args.retention.max_age_ms)
        .arg(args.record_prefix)
        .arg(args.ttl.done_secs)
        .arg(args.ttl.dead_secs)
        .arg(args.tally.processed)
        .arg(args.tally.failed)
        .arg(args.tally.retried)
        .arg(args.tally.dead)
        .arg(&args.tally.samples)
        .arg(args.effects.len())
        .arg(if args.mark_claimed { "1" } else { "0" });
    for effect in args.effects {
        match effect {
            Effect::Retry {
                due,
                payload,
                record,
            } => invocation
                .arg("retry")
                .arg(*due)
                .arg(payload)
                .arg(&record.id)
                .arg(record.attempts)
                .arg(&record.error),
            Effect::Dead {
                score,
                letter,
                record,
            } => invocation
                .arg("dead")
                .arg(*score)
                .arg(letter)
                .arg(&record.id)
                .arg(record.attempts)
                .arg(&record.error),
            Effect::Done {
                id,
                attempts,
                result,
            } => invocation.arg("done").arg(id).arg(*attempts).arg(result),
        };
    }
    if args.mode == Mode::Release {
        let _moved: i64 = invocation.invoke(con)?;
        return Ok(Vec::new());
    }
    invocation.invoke(con)
}

/// Returns every task a consumer claimed to the head of the queue and drops its lease,
/// acknowledging nothing: for a consumer still busy past a shutdown deadline.
pub(crate) fn release_all(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
    record_prefix: &str,
) -> RedisResult<usize> {
    let mut invocation = SETTLE.prepare_invoke();
    settle_keys(&mut invocation, keys, consumer);
    invocation
        .arg(consumer)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg("release")
        .arg(0)
        .arg(0)
        .arg(record_prefix)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg("")
        .arg(0)
        .arg("0");
    invocation.invoke(con)
}

/// Waits up to `timeout` for a wake-up token on any of the queues' signal lists; true
/// when one came (tasks may be waiting: claim them with [`settle`]).
pub(crate) fn wait_signal(
    con: &mut Connection,
    queues: &[&QueueKeys],
    timeout: Duration,
) -> RedisResult<bool> {
    let mut cmd = redis::cmd("BLPOP");
    for keys in queues {
        cmd.arg(keys.signal());
    }
    let woke: Option<(String, String)> = cmd.arg(timeout.as_secs_f64()).query(con)?;
    Ok(woke.is_some())
}

/// Waits up to `timeout` for one task in any lane of any of the queues, in their order,
/// and pops it without a lease (at most once). Returns the queue's index and the payload.
pub(crate) fn pop_blocking(
    con: &mut Connection,
    queues: &[&QueueKeys],
    timeout: Duration,
) -> RedisResult<Option<(usize, Payload)>> {
    let mut cmd = redis::cmd("BLPOP");
    let mut lanes = Vec::new();
    for (index, keys) in queues.iter().enumerate() {
        for priority in [Priority::High, Priority::Normal, Priority::Low] {
            let lane = keys.lane(priority);
            cmd.arg(&lane);
            lanes.push((lane, index));
        }
    }
    let popped: Option<(String, Payload)> = cmd.arg(timeout.as_secs_f64()).query(con)?;
    Ok(popped.and_then(|(key, payload)| {
        lanes
            .iter()
            .find(|(lane, _)| *lane == key)
            .map(|(_, index)| (*index, payload))
    }))
}

/// The consumer's claimed list, oldest first (used to resynchronise after an error).
pub(crate) fn claimed(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
) -> RedisResult<Vec<Payload>> {
    redis::cmd("LRANGE")
        .arg(keys.claimed(consumer))
        .arg(0)
        .arg(-1)
        .query(con)
}

/// Puts popped but unstarted tasks back at the head of the queue, in their order.
pub(crate) fn push_front(
    con: &mut Connection,
    keys: &QueueKeys,
    payloads: &[Payload],
) -> RedisResult<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    let mut cmd = redis::cmd("LPUSH");
    cmd.arg(keys.pending());
    for payload in payloads.iter().rev() {
        cmd.arg(payload);
    }
    cmd.query(con)
}

/// Renews the leases of several consumers of one queue.
pub(crate) fn renew(
    con: &mut Connection,
    keys: &QueueKeys,
    consumers: &[String],
    lease: Duration,
) -> RedisResult<()> {
    let mut invocation = RENEW.key(keys.leases());
    invocation.arg(millis(lease));
    for consumer in consumers {
        invocation.arg(consumer);
    }
    invocation.invoke(con)
}

/// Consumers of the queue whose lease has run out, by the server's clock.
pub(crate) fn expired(
    con: &mut Connection,
    keys: &QueueKeys,
    max: usize,
) -> RedisResult<Vec<String>> {
    EXPIRED.key(keys.leases()).arg(max).invoke(con)
}

/// When the consumer's lease has run out, returns its claimed tasks to the head of the
/// queue; `None` when the lease is still current.
pub(crate) fn recover(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
    record_prefix: &str,
) -> RedisResult<Option<usize>> {
    let moved: i64 = RECOVER
        .key(keys.pending())
        .key(keys.claimed(consumer))
        .key(keys.leases())
        .key(keys.signal())
        .key(keys.counters())
        .arg(consumer)
        .arg(record_prefix)
        .invoke(con)?;
    Ok(usize::try_from(moved).ok())
}

/// Moves a dead-letter record's payload back to the queue; false when it was gone.
pub(crate) fn requeue(
    con: &mut Connection,
    keys: &QueueKeys,
    record: &[u8],
    payload: &[u8],
) -> RedisResult<bool> {
    let moved: i64 = REQUEUE
        .key(keys.dead())
        .key(keys.pending())
        .arg(record)
        .arg(payload)
        .invoke(con)?;
    Ok(moved == 1)
}
