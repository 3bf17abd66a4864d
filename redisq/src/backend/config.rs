//! A backend's settings: [`Delivery`], the shared `Config` and the `with_*` setters of
//! [`RedisQueueBackend`].

use std::sync::Arc;
use std::time::Duration;

use super::RedisQueueBackend;
use crate::clock::millis;
use crate::retry::Backoff;

/// How a worker takes tasks from a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// A task is moved atomically from its queue to the worker's claimed list and stays
    /// there under a lease until the worker acknowledges it. If the worker process dies,
    /// the task goes back to the head of its queue once the lease runs out, and runs
    /// again: every task runs at least once, a few may run twice after a crash.
    #[default]
    AtLeastOnce,
    /// A task is popped (`LPOP`/`BLPOP`) and run: no lease, no acknowledgement, one
    /// round trip less per batch, but tasks held by a worker that dies are lost.
    AtMostOnce,
}

/// Settings shared by every clone of a backend.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) namespace: String,
    pub(crate) lease: Duration,
    pub(crate) block_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) delivery: Delivery,
    pub(crate) backoff: Backoff,
    pub(crate) dead_max: usize,
    pub(crate) dead_max_age: Duration,
    pub(crate) dead_max_bytes: u64,
    pub(crate) result_ttl: Duration,
    pub(crate) dead_ttl: Duration,
    pub(crate) quarantine_after: u64,
    pub(crate) max_payload: usize,
    /// Replicas that must confirm each enqueue (`WAIT`), and how long they may take.
    pub(crate) replica_acks: Option<(u64, Duration)>,
}

/// Connections the producer pool keeps idle at most.
pub(super) const POOL_IDLE: usize = 64;

impl Default for Config {
    fn default() -> Config {
        Config {
            namespace: "redisq".to_owned(),
            lease: Duration::from_secs(30),
            block_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            delivery: Delivery::AtLeastOnce,
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(600),
            },
            dead_max: 10_000,
            dead_max_age: Duration::from_secs(180 * 24 * 3600),
            dead_max_bytes: 64 << 20,
            result_ttl: Duration::from_secs(3600),
            dead_ttl: Duration::from_secs(7 * 24 * 3600),
            quarantine_after: 3,
            max_payload: 1 << 20,
            replica_acks: None,
        }
    }
}

impl Config {
    /// The dead-letter age bound in milliseconds (0: none).
    pub(crate) fn dead_max_age_ms(&self) -> u64 {
        millis(self.dead_max_age)
    }

    /// How long a done record is kept, in whole seconds (at least 1).
    pub(crate) fn result_ttl_secs(&self) -> u64 {
        self.result_ttl.as_secs().max(1)
    }

    /// How long a dead record is kept, in whole seconds (at least 1).
    pub(crate) fn dead_ttl_secs(&self) -> u64 {
        self.dead_ttl.as_secs().max(1)
    }
}

/// `value`, or `min` with a warning when `value` is below it.
fn at_least(setting: &str, value: Duration, min: Duration) -> Duration {
    if value < min {
        log::warn!("{setting} {value:?} is below its minimum; using {min:?}");
        return min;
    }
    value
}

impl RedisQueueBackend {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Sets the prefix of every key. Default `redisq`; empty means no prefix.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config_mut().namespace = namespace.into();
        self.registered = Arc::default();
        self.known = Arc::default();
        self
    }

    /// Sets the lease (visibility timeout) of a claimed task: how long after a worker
    /// process stops renewing it a task goes back to its queue. Default 30 s; at least
    /// 100 ms (a shorter one is raised to it, with a warning). Running workers renew
    /// their leases every third of it.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.config_mut().lease = at_least("lease", lease, Duration::from_millis(100));
        self
    }

    /// Sets how long a worker's blocking pop waits before checking for shutdown.
    /// Default 1 s; at least 10 ms (a shorter one is raised to it, with a warning). It
    /// bounds how long an idle worker takes to stop.
    #[must_use]
    pub fn with_block_timeout(mut self, timeout: Duration) -> Self {
        let timeout = at_least("block timeout", timeout, Duration::from_millis(10));
        self.config_mut().block_timeout = timeout;
        self
    }

    /// Sets the bound on each call to Redis: connecting (when the call needs a new
    /// connection) and its command together must be done within it, and each further
    /// command of the same call gets it again. Past it a call fails with
    /// [`Error::Unavailable`](crate::Error::Unavailable): `redis at <address> did not
    /// answer within <timeout>`. Default 5 s; at least 1 ms (a shorter one is raised to
    /// it, with a warning). A worker's blocking wait is given the block timeout on top.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        let timeout = at_least("timeout", timeout, Duration::from_millis(1));
        self.config_mut().timeout = timeout;
        self.link = self.link.with_timeout(timeout);
        self
    }

    /// Makes every enqueue wait until `replicas` replicas of the master that took it have
    /// confirmed it (`WAIT replicas timeout` after the push, on the same connection), so
    /// that a failover (a replica promoted after the master died) cannot lose an
    /// acknowledged task: with replication asynchronous, without it, the last writes a
    /// master acknowledged before it died may never have reached the replica that takes
    /// over. An enqueue that fewer replicas confirm within `timeout` fails with
    /// [`Error::NotReplicated`](crate::Error::NotReplicated) (the tasks are queued on the
    /// master all the same). One round trip more per enqueue call, and the replication
    /// delay. `timeout` is at most half the backend's timeout (`with_timeout`), so that the
    /// wait ends before the call's own bound. Default: off (`replicas` zero).
    #[must_use]
    pub fn with_replica_acks(mut self, replicas: u64, timeout: Duration) -> Self {
        self.config_mut().replica_acks = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// Sets how workers take tasks. Default [`Delivery::AtLeastOnce`].
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.config_mut().delivery = delivery;
        self
    }

    /// Sets the backoff between attempts of a failed task: the n-th retry waits
    /// `base · 2^(n-1)`, at most `cap`, less a random part of up to half (jitter).
    /// Default 1 s and 10 min. Zero `base` retries at once; a `cap` below `base` is
    /// `base`.
    #[must_use]
    pub fn with_retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.config_mut().backoff = Backoff {
            base,
            cap: cap.max(base),
        };
        self
    }

    /// Sets how many records each queue's dead letters keep: the oldest are dropped when
    /// a new one comes. Default 10,000; zero keeps none.
    #[must_use]
    pub fn with_dead_letter_limit(mut self, max: usize) -> Self {
        self.config_mut().dead_max = max;
        self
    }

    /// Sets how long the status record (and result) of a task that succeeded is kept.
    /// Default 1 hour; at least 1 s (a shorter one is raised to it, with a warning).
    #[must_use]
    pub fn with_result_ttl(mut self, ttl: Duration) -> Self {
        self.config_mut().result_ttl = at_least("result TTL", ttl, Duration::from_secs(1));
        self
    }

    /// Sets how long the status record of a dead task is kept (its dead letter is kept
    /// by the dead-letter bounds). Default 7 days; at least 1 s (a shorter one is raised
    /// to it, with a warning).
    #[must_use]
    pub fn with_dead_record_ttl(mut self, ttl: Duration) -> Self {
        self.config_mut().dead_ttl = at_least("dead record TTL", ttl, Duration::from_secs(1));
        self
    }

    /// Sets the age past which dead letters are dropped (when a new one comes, and by
    /// at every heartbeat of a worker serving the queue). Default 180 days; zero means no age bound.
    #[must_use]
    pub fn with_dead_letter_max_age(mut self, max_age: Duration) -> Self {
        self.config_mut().dead_max_age = max_age;
        self
    }

    /// Sets how many bytes each queue's dead letters may hold together: the oldest are
    /// dropped past it. Default 64 MiB; zero keeps none.
    #[must_use]
    pub fn with_dead_letter_max_bytes(mut self, bytes: u64) -> Self {
        self.config_mut().dead_max_bytes = bytes;
        self
    }

    /// Sets after how many deliveries that ended with the worker gone (its lease ran out
    /// while it held the task: a crash, OOM kill, abort) a task is set aside as a dead
    /// letter ("worker died N times running it") instead of being run again. A task held
    /// when a lease ran out twice (once, with a limit of 1) is claimed alone from then on,
    /// so that only the task that kills its worker reaches the limit, while one crash of a
    /// worker that held a batch costs no more than running the batch again. Default 3;
    /// zero never quarantines.
    #[must_use]
    pub fn with_quarantine_after(mut self, deliveries: u64) -> Self {
        self.config_mut().quarantine_after = deliveries;
        self
    }

    /// Sets the largest payload a task may have, in bytes: an enqueue of a larger one
    /// fails with [`Error::TooLarge`](crate::Error::TooLarge), and a worker sets a larger
    /// one (from a foreign producer) aside without parsing it. Default 1 MiB; at least
    /// 1 KiB (a smaller one is raised to it, with a warning).
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        let bytes = if bytes < 1024 {
            log::warn!("max payload {bytes} B is below its minimum; using 1024 B");
            1024
        } else {
            bytes
        };
        self.config_mut().max_payload = bytes;
        self
    }

    /// The key prefix.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// The lease of a claimed task.
    #[must_use]
    pub fn lease(&self) -> Duration {
        self.config.lease
    }

    /// How workers take tasks.
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        self.config.delivery
    }

    /// The replicas each enqueue waits for (`with_replica_acks`; 0: none).
    #[must_use]
    pub fn replica_acks(&self) -> u64 {
        self.config.replica_acks.map_or(0, |(replicas, _)| replicas)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }
}
