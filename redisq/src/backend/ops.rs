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

/// A raw task payload as stored in a list.
pub(crate) type Payload = Vec<u8>;

/// What becomes of a task that did not succeed, applied with the next settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Run again at `due` (Unix ms): the payload carries the attempt count and errors.
    Retry { due: u64, payload: Vec<u8> },
    /// Set aside: a dead-letter record written at `at` (Unix microseconds).
    Dead { at: u64, record: Vec<u8> },
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
        .key(keys.signal());
}

/// Payloads per `RPUSH` when pushing many.
const PUSH_CHUNK: usize = 1_000;

/// Wake-up tokens kept at most in a queue's signal list.
const SIGNAL_MAX: i64 = 64;

/// Pushes payloads onto a lane of a queue, in order, and rings its signal list (which
/// at-least-once consumers block on), in one pipelined round trip: one `RPUSH` per
/// [`PUSH_CHUNK`] payloads, then one token, trimmed to [`SIGNAL_MAX`].
pub(crate) fn push(
    con: &mut Connection,
    keys: &QueueKeys,
    priority: Priority,
    payloads: &[&[u8]],
) -> RedisResult<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    let lane = keys.lane(priority);
    let signal = keys.signal();
    let mut pipe = redis::pipe();
    for chunk in payloads.chunks(PUSH_CHUNK) {
        pipe.cmd("RPUSH").arg(&lane).arg(chunk).ignore();
    }
    pipe.cmd("RPUSH").arg(&signal).arg(1).ignore();
    pipe.cmd("LTRIM")
        .arg(&signal)
        .arg(-SIGNAL_MAX)
        .arg(-1)
        .ignore();
    pipe.query(con)
}

/// One settle round trip: see `settle.lua`. Returns the tasks taken (none for release).
#[allow(clippy::too_many_arguments)]
pub(crate) fn settle(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
    lease: Duration,
    done: usize,
    max: usize,
    mode: Mode,
    effects: &[Effect],
    retention: DeadRetention,
) -> RedisResult<Vec<Payload>> {
    let mut invocation = SETTLE.prepare_invoke();
    settle_keys(&mut invocation, keys, consumer);
    invocation
        .arg(consumer)
        .arg(millis(lease))
        .arg(done)
        .arg(max)
        .arg(match mode {
            Mode::Claim => "claim",
            Mode::Pop => "pop",
            Mode::Release => "release",
        })
        .arg(retention.max)
        .arg(retention.max_age_ms)
        .arg(effects.len());
    for effect in effects {
        match effect {
            Effect::Retry { due, payload } => invocation.arg("retry").arg(*due).arg(payload),
            Effect::Dead { at, record } => invocation.arg("dead").arg(*at).arg(record),
        };
    }
    if mode == Mode::Release {
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
        .arg(0)
        .invoke(con)
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
) -> RedisResult<Option<usize>> {
    let moved: i64 = RECOVER
        .key(keys.pending())
        .key(keys.claimed(consumer))
        .key(keys.leases())
        .key(keys.signal())
        .arg(consumer)
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
