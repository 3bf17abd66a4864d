//! The queue operations a consumer performs, each one round trip, on its own connection.
//!
//! Take, lease and acknowledge are atomic on the Redis side: `claim.lua` acknowledges the
//! tasks done, renews the lease and claims more in one script; `BLMOVE` claims one task
//! when the queue was empty; `release.lua` hands claimed tasks back.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Connection, RedisResult, Script};

use crate::keys::QueueKeys;

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("claim.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("renew.lua")));
static EXPIRED: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("expired.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));

/// A raw task payload as stored in a list.
pub(crate) type Payload = Vec<u8>;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Acknowledges `done` tasks at the head of the consumer's claimed list, renews its
/// lease, and claims up to `max` more (fewer if fewer wait).
pub(crate) fn claim(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
    lease: Duration,
    done: usize,
    max: usize,
) -> RedisResult<Vec<Payload>> {
    CLAIM
        .key(keys.pending())
        .key(keys.claimed(consumer))
        .key(keys.leases())
        .arg(consumer)
        .arg(millis(lease))
        .arg(done)
        .arg(max)
        .invoke(con)
}

/// Waits up to `timeout` for a task and claims it (`BLMOVE`). The consumer's lease
/// must already be current: [`claim`] renews it just before.
pub(crate) fn claim_blocking(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
    timeout: Duration,
) -> RedisResult<Option<Payload>> {
    redis::cmd("BLMOVE")
        .arg(keys.pending())
        .arg(keys.claimed(consumer))
        .arg("LEFT")
        .arg("RIGHT")
        .arg(timeout.as_secs_f64())
        .query(con)
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
    let moved: i64 = RELEASE
        .key(keys.pending())
        .key(keys.claimed(consumer))
        .key(keys.leases())
        .arg(consumer)
        .arg(0)
        .arg("expired")
        .invoke(con)?;
    Ok(usize::try_from(moved).ok())
}

/// Acknowledges `done` tasks, then returns the consumer's other claimed tasks to the
/// head of the queue at once and drops its lease (graceful shutdown).
pub(crate) fn release(
    con: &mut Connection,
    keys: &QueueKeys,
    consumer: &str,
    done: usize,
) -> RedisResult<usize> {
    RELEASE
        .key(keys.pending())
        .key(keys.claimed(consumer))
        .key(keys.leases())
        .arg(consumer)
        .arg(done)
        .arg("now")
        .invoke(con)
}

/// Pops up to `max` tasks without a lease (at-most-once).
pub(crate) fn pop(con: &mut Connection, keys: &QueueKeys, max: usize) -> RedisResult<Vec<Payload>> {
    let items: Option<Vec<Payload>> = redis::cmd("LPOP").arg(keys.pending()).arg(max).query(con)?;
    Ok(items.unwrap_or_default())
}

/// Waits up to `timeout` for one task and pops it without a lease (at-most-once).
pub(crate) fn pop_blocking(
    con: &mut Connection,
    keys: &QueueKeys,
    timeout: Duration,
) -> RedisResult<Option<Payload>> {
    let popped: Option<(String, Payload)> = redis::cmd("BLPOP")
        .arg(keys.pending())
        .arg(timeout.as_secs_f64())
        .query(con)?;
    Ok(popped.map(|(_, payload)| payload))
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

/// Appends a dead-letter record and trims the list to its newest `max` records.
pub(crate) fn dead_letter(
    con: &mut Connection,
    keys: &QueueKeys,
    record: &[u8],
    max: usize,
) -> RedisResult<()> {
    let dead = keys.dead();
    let mut pipe = redis::pipe();
    pipe.atomic();
    if max == 0 {
        pipe.cmd("DEL").arg(&dead).ignore();
    } else {
        pipe.cmd("RPUSH").arg(&dead).arg(record).ignore();
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        pipe.cmd("LTRIM").arg(&dead).arg(-keep).arg(-1).ignore();
    }
    pipe.query(con)
}
