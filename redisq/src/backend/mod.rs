//! [`RedisQueueBackend`]: the connection to Redis and every command redisq sends.
//!
//! Only this module speaks to Redis. Producers borrow a connection from a shared
//! [`pool`]; each consumer thread owns a dedicated connection for its blocking pop, so
//! blocked workers never starve producers. The queue operations live in [`ops`], the
//! Lua scripts beside it.

mod inspect;
pub(crate) mod ops;
mod pool;

use std::collections::HashSet;
use std::env;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::IntoConnectionInfo;

use crate::dead::DeadLetter;
use crate::error::{Error, Result};
use crate::keys::{NamespaceKeys, QueueKeys};
use crate::retry::{self, Backoff};
use crate::task::Priority;
use ops::DeadRetention;
use pool::{Pool, Pooled};

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
    pub(crate) result_ttl: Duration,
    pub(crate) dead_ttl: Duration,
}

impl Config {
    pub(crate) fn dead_retention(&self) -> DeadRetention {
        DeadRetention {
            max: self.dead_max,
            max_age_ms: ops::millis(self.dead_max_age),
        }
    }
}

/// The Redis queue backend: where tasks are pushed and from where workers take them.
///
/// Cheap to clone: clones share one connection pool.
///
/// ```no_run
/// # fn main() -> redisq::Result<()> {
/// use std::time::Duration;
/// let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:6379")?
///     .with_namespace("myapp")
///     .with_lease(Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisQueueBackend {
    config: Arc<Config>,
    pool: Arc<Pool>,
    /// Queues this backend has pushed to, and so registered in `<ns>:queues`.
    registered: Arc<Mutex<HashSet<String>>>,
}

impl RedisQueueBackend {
    /// A backend for the Redis server at `url` (`redis://[:password@]host[:port][/db]`).
    ///
    /// Does not connect: the first command does.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL cannot be parsed.
    pub fn new(url: &str) -> Result<Self> {
        let info = url
            .into_connection_info()
            .map_err(|e| Error::Config(format!("invalid redis url `{url}`: {e}")))?;
        Self::from_info(info)
    }

    /// A backend configured from the environment: `REDIS_URL` if set, otherwise
    /// `REDIS_HOST` (default `127.0.0.1`), `REDIS_PORT` (6379), `REDIS_DB` (0) and
    /// `REDIS_PASSWORD` (none).
    ///
    /// # Errors
    /// [`Error::Config`] when a variable cannot be parsed.
    pub fn from_env() -> Result<Self> {
        if let Ok(url) = env::var("REDIS_URL") {
            if !url.is_empty() {
                return Self::new(&url);
            }
        }
        let var = |name: &str| env::var(name).ok().filter(|v| !v.is_empty());
        let host = var("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = match var("REDIS_PORT") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| Error::Config(format!("REDIS_PORT `{p}` is not a port number")))?,
            None => 6379,
        };
        let db = match var("REDIS_DB") {
            Some(d) => d
                .parse::<i64>()
                .map_err(|_| Error::Config(format!("REDIS_DB `{d}` is not a number")))?,
            None => 0,
        };
        let mut redis = redis::RedisConnectionInfo::default().set_db(db);
        if let Some(password) = var("REDIS_PASSWORD") {
            redis = redis.set_password(password);
        }
        let info = redis::ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| Error::Config(e.to_string()))?
            .set_redis_settings(redis);
        Self::from_info(info)
    }

    fn from_info(info: redis::ConnectionInfo) -> Result<Self> {
        let client = redis::Client::open(info).map_err(|e| Error::Config(e.to_string()))?;
        let config = Config {
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
            result_ttl: Duration::from_secs(3600),
            dead_ttl: Duration::from_secs(7 * 24 * 3600),
        };
        let pool = Pool::new(client, config.timeout, config.timeout, 64);
        Ok(RedisQueueBackend {
            config: Arc::new(config),
            pool: Arc::new(pool),
            registered: Arc::default(),
        })
    }

    /// Sets the prefix of every key. Default `redisq`; empty means no prefix.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).namespace = namespace.into();
        self.registered = Arc::default();
        self
    }

    /// Sets the lease (visibility timeout) of a claimed task: how long after a worker
    /// process stops renewing it a task goes back to its queue. Default 30 s.
    /// Running workers renew their leases every third of it.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        Arc::make_mut(&mut self.config).lease = lease.max(Duration::from_millis(100));
        self
    }

    /// Sets how long a worker's blocking pop waits before checking for shutdown.
    /// Default 1 s; it bounds how long an idle worker takes to stop.
    #[must_use]
    pub fn with_block_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.config).block_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// Sets the bound on connecting and on each command: past it a call fails with
    /// [`Error::Unavailable`]. Default 5 s.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        let timeout = timeout.max(Duration::from_millis(1));
        Arc::make_mut(&mut self.config).timeout = timeout;
        let client = self.pool.client.clone();
        self.pool = Arc::new(Pool::new(client, timeout, timeout, 64));
        self
    }

    /// Sets how workers take tasks. Default [`Delivery::AtLeastOnce`].
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        Arc::make_mut(&mut self.config).delivery = delivery;
        self
    }

    /// Sets the backoff between attempts of a failed task: the n-th retry waits
    /// `base · 2^(n-1)`, at most `cap`, less a random part of up to half (jitter).
    /// Default 1 s and 10 min. Zero `base` retries at once.
    #[must_use]
    pub fn with_retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        Arc::make_mut(&mut self.config).backoff = Backoff {
            base,
            cap: cap.max(base),
        };
        self
    }

    /// Sets how many records each queue's dead letters keep: the oldest are dropped when
    /// a new one comes. Default 10,000; zero keeps none.
    #[must_use]
    pub fn with_dead_letter_limit(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.config).dead_max = max;
        self
    }

    /// Sets how long the status record (and result) of a task that succeeded is kept.
    /// Default 1 hour; at least 1 s.
    #[must_use]
    pub fn with_result_ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.config).result_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Sets how long the status record of a dead task is kept (its dead letter is kept
    /// by the dead-letter bounds). Default 7 days; at least 1 s.
    #[must_use]
    pub fn with_dead_record_ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.config).dead_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Sets the age past which dead letters are dropped (when a new one comes). Default
    /// 180 days; zero means no age bound.
    #[must_use]
    pub fn with_dead_letter_max_age(mut self, max_age: Duration) -> Self {
        Arc::make_mut(&mut self.config).dead_max_age = max_age;
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

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.config.namespace, queue)
    }

    /// A pooled connection.
    pub(crate) fn connection(&self) -> Result<Pooled<'_>> {
        Ok(self.pool.get()?)
    }

    /// A new connection, not pooled, whose reads may block for `read` plus the timeout.
    pub(crate) fn pool_connect(&self, read: Duration) -> Result<redis::Connection> {
        Ok(self.pool.connect(read + self.config.timeout)?)
    }

    /// A dedicated connection for a consumer thread, whose reads may block for a pop.
    pub(crate) fn dedicated_connection(&self) -> Result<redis::Connection> {
        Ok(self
            .pool
            .connect(self.config.block_timeout + self.config.timeout)?)
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it does not answer in time.
    pub fn ping(&self) -> Result<()> {
        let mut con = self.connection()?;
        con.run(|c| redis::cmd("PING").query::<()>(c))?;
        Ok(())
    }

    /// How many tasks wait in `queue`.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn pending(&self, queue: &str) -> Result<usize> {
        let key = self.keys(queue).pending();
        let mut con = self.connection()?;
        Ok(con.run(|c| redis::cmd("LLEN").arg(&key).query(c))?)
    }

    /// Returns to the head of `queue` the tasks held by consumers (of any process) whose
    /// lease ran out, in their order, and says how many moved. Running workers do this by
    /// themselves at every heartbeat; this is the on-demand form.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn recover_stale(&self, queue: &str) -> Result<usize> {
        const PAGE: usize = 100;
        let keys = self.keys(queue);
        let mut con = self.connection()?;
        let mut total = 0;
        loop {
            let expired = con.run(|c| ops::expired(c, &keys, PAGE))?;
            for consumer in &expired {
                let prefix = self.record_prefix();
                if let Some(moved) = con.run(|c| ops::recover(c, &keys, consumer, &prefix))? {
                    total += moved;
                }
            }
            if expired.len() < PAGE {
                return Ok(total);
            }
        }
    }

    /// How many delayed tasks and retries wait in `queue`'s scheduled set.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn scheduled(&self, queue: &str) -> Result<usize> {
        let key = self.keys(queue).scheduled();
        let mut con = self.connection()?;
        Ok(con.run(|c| redis::cmd("ZCARD").arg(&key).query(c))?)
    }

    /// How many dead letters `queue` holds.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn dead_count(&self, queue: &str) -> Result<usize> {
        let key = self.keys(queue).dead();
        let mut con = self.connection()?;
        Ok(con.run(|c| redis::cmd("ZCARD").arg(&key).query(c))?)
    }

    /// A page of `queue`'s dead letters, newest first: `limit` records from `offset`.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn dead_letters(
        &self,
        queue: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .dead_records(queue, offset, limit)?
            .into_iter()
            .map(|(_, letter)| letter)
            .collect())
    }

    /// Raw records with their decoded form, newest first.
    fn dead_records(
        &self,
        queue: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, DeadLetter)>> {
        let key = self.keys(queue).dead();
        let last = offset.saturating_add(limit).saturating_sub(1);
        let mut con = self.connection()?;
        let raw: Vec<Vec<u8>> = con.run(|c| {
            redis::cmd("ZREVRANGE")
                .arg(&key)
                .arg(offset)
                .arg(last)
                .query(c)
        })?;
        Ok(raw
            .into_iter()
            .filter_map(
                |record| match serde_json::from_slice::<DeadLetter>(&record) {
                    Ok(letter) => Some((record, letter)),
                    Err(err) => {
                        log::warn!("skipping an unreadable dead-letter record in `{queue}`: {err}");
                        None
                    }
                },
            )
            .collect())
    }

    /// Moves the dead letter of task `id` back to the tail of `queue` with its attempt
    /// count reset (its past errors stay in the payload). False when no such record exists.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn requeue_dead(&self, queue: &str, id: &str) -> Result<bool> {
        const PAGE: usize = 1000;
        let keys = self.keys(queue);
        let mut offset = 0;
        loop {
            let page = self.dead_records(queue, offset, PAGE)?;
            if let Some((record, letter)) = page.iter().find(|(_, letter)| letter.id == id) {
                let payload = retry::reset_attempts(&letter.payload);
                let mut con = self.connection()?;
                return Ok(con.run(|c| ops::requeue(c, &keys, record, &payload))?);
            }
            if page.len() < PAGE {
                return Ok(false);
            }
            offset += PAGE;
        }
    }

    /// Moves every dead letter of `queue` back to its tail, oldest first, with attempt
    /// counts reset; says how many moved. Letters that die while it runs stay dead.
    ///
    /// # Errors
    /// When Redis cannot be reached; the letters moved until then stay moved.
    pub fn requeue_all_dead(&self, queue: &str) -> Result<usize> {
        let keys = self.keys(queue);
        let mut con = self.connection()?;
        let newest: Vec<(Vec<u8>, f64)> = con.run(|c| {
            redis::cmd("ZREVRANGE")
                .arg(keys.dead())
                .arg(0)
                .arg(0)
                .arg("WITHSCORES")
                .query(c)
        })?;
        let Some((_, cutoff)) = newest.into_iter().next() else {
            return Ok(0);
        };
        let mut seen = std::collections::HashSet::new();
        let mut moved = 0;
        loop {
            let oldest: Vec<Vec<u8>> = con.run(|c| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(keys.dead())
                    .arg("-inf")
                    .arg(cutoff)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(100)
                    .query(c)
            })?;
            let fresh: Vec<Vec<u8>> = oldest
                .into_iter()
                .filter(|r| seen.insert(r.clone()))
                .collect();
            if fresh.is_empty() {
                return Ok(moved);
            }
            for record in &fresh {
                let payload = match serde_json::from_slice::<DeadLetter>(record) {
                    Ok(letter) => retry::reset_attempts(&letter.payload),
                    // Not a record of ours: hand it on as it is rather than lose it.
                    Err(_) => record.clone(),
                };
                if con.run(|c| ops::requeue(c, &keys, record, &payload))? {
                    moved += 1;
                }
            }
        }
    }

    /// Deletes every dead letter of `queue`; says how many there were.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn purge_dead(&self, queue: &str) -> Result<usize> {
        let key = self.keys(queue).dead();
        let mut con = self.connection()?;
        let (count, _): (usize, i64) = con.run(|c| {
            redis::pipe()
                .atomic()
                .cmd("ZCARD")
                .arg(&key)
                .cmd("DEL")
                .arg(&key)
                .query(c)
        })?;
        Ok(count)
    }

    /// Returns a busy consumer's claimed tasks to the head of `queue` at once.
    pub(crate) fn release_consumer(&self, queue: &str, consumer: &str) -> Result<usize> {
        let keys = self.keys(queue);
        let mut con = self.connection()?;
        let prefix = self.record_prefix();
        Ok(con.run(|c| ops::release_all(c, &keys, consumer, &prefix))?)
    }

    /// Pushes encoded tasks (`(id, payload)`) of task `name` onto the tail of a lane of
    /// `queue`, in order, with their status records when `records`, and rings its signal
    /// list, in one round trip on one pooled connection.
    pub(crate) fn push_many(
        &self,
        queue: &str,
        name: &str,
        priority: Priority,
        records: bool,
        tasks: &[(&str, &[u8])],
    ) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let keys = self.keys(queue);
        let ns = self.namespace_keys();
        let prefix = if records {
            ns.record_prefix()
        } else {
            String::new()
        };
        let push = ops::Push {
            queue,
            name,
            priority,
            record_prefix: &prefix,
            queues_key: &ns.queues(),
            created_at: crate::task::now_millis(),
            tasks,
        };
        let register = self.first_push(queue);
        let mut con = self.connection()?;
        con.run(|c| ops::push(c, &keys, &push, register))?;
        Ok(())
    }

    /// Adds encoded tasks (`(id, payload)`) of task `name` to the scheduled set of `queue`,
    /// due at `due` (Unix ms), with `scheduled` status records when `records`, in one
    /// round trip.
    pub(crate) fn schedule_many(
        &self,
        queue: &str,
        name: &str,
        due: u64,
        records: bool,
        tasks: &[(&str, &[u8])],
    ) -> Result<()> {
        let ns = self.namespace_keys();
        let mut pipe = redis::pipe();
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(self.keys(queue).scheduled());
        for (_, payload) in tasks {
            zadd.arg(due).arg(*payload);
        }
        pipe.add_command(zadd).ignore();
        if records {
            let now = crate::task::now_millis();
            for (id, _) in tasks {
                pipe.cmd("HSET")
                    .arg(ns.record(id))
                    .arg("status")
                    .arg("scheduled")
                    .arg("queue")
                    .arg(queue)
                    .arg("name")
                    .arg(name)
                    .arg("created_at")
                    .arg(now)
                    .arg("lane")
                    .arg("normal")
                    .ignore();
            }
        }
        pipe.cmd("SADD").arg(ns.queues()).arg(queue).ignore();
        let mut con = self.connection()?;
        con.run(|c| pipe.query::<()>(c))?;
        Ok(())
    }

    /// Whether this backend has not pushed to `queue` yet (then the push registers it in
    /// the set of known queues).
    fn first_push(&self, queue: &str) -> bool {
        match self.registered.lock() {
            Ok(mut registered) => {
                if registered.contains(queue) {
                    false
                } else {
                    registered.insert(queue.to_owned());
                    true
                }
            }
            Err(_) => true,
        }
    }

    pub(crate) fn namespace_keys(&self) -> NamespaceKeys {
        NamespaceKeys::new(&self.config.namespace)
    }

    pub(crate) fn record_prefix(&self) -> String {
        self.namespace_keys().record_prefix()
    }

    pub(crate) fn record_ttl(&self) -> ops::RecordTtl {
        ops::RecordTtl {
            done_secs: self.config.result_ttl.as_secs().max(1),
            dead_secs: self.config.dead_ttl.as_secs().max(1),
        }
    }
}
