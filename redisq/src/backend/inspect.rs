//! Reading what Redis holds about queues and workers: counts, statistics, the worker
//! registry and the server's health. Nothing here writes.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use redis::RedisResult;

use super::RedisQueueBackend;
use crate::clock::now_millis;
use crate::error::{Error, Result};
use crate::schema::{owner, stat, QueueKeys, KEYED_COUNTER, KEYS_COUNTER};
use crate::status::{
    Durability, Health, KeyLoad, Percentiles, ProcessorStats, QueueOwner, QueueStats,
    RedisSettings, Stats, WorkerInfo,
};

/// The busiest keys `queue_stats` reports.
const BUSIEST_KEYS: usize = 10;

/// The keys first in line whose backlog `queue_stats` reads, for the busiest.
const KEYS_SAMPLED: usize = 1_000;
use crate::task::Priority;

impl RedisQueueBackend {
    /// How many tasks wait in `queue`'s normal lane.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn pending(&self, queue: &str) -> Result<usize> {
        let key = self.keys(queue).lane(Priority::Normal);
        let mut con = self.connection()?;
        Ok(con.run(|c| redis::cmd("LLEN").arg(&key).query(c))?)
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

    /// The names of the known queues (enqueued to or served), sorted.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn queues(&self) -> Result<Vec<String>> {
        let key = self.namespace_keys().queues();
        let mut con = self.connection()?;
        let mut queues: Vec<String> = con.run(|c| redis::cmd("SMEMBERS").arg(&key).query(c))?;
        queues.sort();
        Ok(queues)
    }

    /// The figures of one queue, summed over every process that uses it.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        let keys = self.keys(queue);
        let mut pipe = redis::pipe();
        pipe.cmd("LLEN").arg(keys.lane(Priority::Normal));
        pipe.cmd("LLEN").arg(keys.lane(Priority::High));
        pipe.cmd("LLEN").arg(keys.lane(Priority::Low));
        pipe.cmd("ZCARD").arg(keys.scheduled());
        pipe.cmd("ZCARD").arg(keys.dead());
        pipe.cmd("ZRANGE").arg(keys.leases()).arg(0).arg(-1);
        pipe.cmd("HGETALL").arg(keys.stats());
        pipe.cmd("LRANGE").arg(keys.latency()).arg(0).arg(-1);
        type Replies = (
            u64,
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
            HashMap<String, u64>,
            Vec<String>,
        );
        let mut con = self.connection()?;
        let (normal, high, low, scheduled, dead, consumers, counts, samples): Replies =
            con.run(|c| pipe.query(c))?;
        let order = con.run(|c| order_stats(c, &keys))?;
        let mut processing = 0;
        if !consumers.is_empty() {
            let mut pipe = redis::pipe();
            for consumer in &consumers {
                pipe.cmd("LLEN").arg(keys.claimed(consumer));
            }
            let lengths: Vec<u64> = con.run(|c| pipe.query(c))?;
            processing = lengths.iter().sum();
        }
        drop(con);
        let (mut waits, mut runs) = (Vec::new(), Vec::new());
        for sample in &samples {
            if let Some((wait, run)) = sample.split_once(':') {
                if let (Ok(wait), Ok(run)) = (wait.parse::<f64>(), run.parse::<f64>()) {
                    waits.push(wait);
                    runs.push(run);
                }
            }
        }
        let count = |name: &str| counts.get(name).copied().unwrap_or(0);
        Ok(QueueStats {
            queue_size: normal,
            priority_queue_size: high,
            low_queue_size: low,
            total_pending: normal + high + low + order.keyed,
            processing,
            scheduled,
            dead,
            processed: count(stat::PROCESSED),
            failed: count(stat::FAILED),
            retried: count(stat::RETRIED),
            dead_lettered: count(stat::DEAD),
            last_processed: counts.get(stat::LAST_PROCESSED).copied(),
            throughput_per_second: self.rate(&keys)?,
            wait_ms: Percentiles::of(waits),
            run_ms: Percentiles::of(runs),
            keyed: order.keyed,
            keys: order.keys,
            held_keys: order.held_keys,
            busiest_keys: order.busiest_keys,
            owner: order.owner,
        })
    }

    /// Every known queue's figures, totals, and the worker registry: what a
    /// `/queue/status` endpoint shows. Serializes to JSON in that shape.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn stats(&self) -> Result<Stats> {
        let mut queue_stats = BTreeMap::new();
        for queue in self.queues()? {
            let stats = self.queue_stats(&queue)?;
            queue_stats.insert(queue, stats);
        }
        let workers = self.workers()?;
        let processor_stats = ProcessorStats {
            processed: queue_stats.values().map(|q| q.processed).sum(),
            failed: queue_stats.values().map(|q| q.failed).sum(),
            last_processed: queue_stats.values().filter_map(|q| q.last_processed).max(),
            workers_alive: workers.iter().filter(|w| w.alive).count(),
            workers,
        };
        Ok(Stats {
            redis_connected: true,
            queue_stats,
            processor_stats,
            timestamp: now_millis(),
        })
    }

    /// The worker registry: every worker that beat within ten of its leases (running
    /// workers prune older entries), with `alive` false for those silent for longer than a
    /// lease.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let now = now_millis();
        let mut workers: Vec<WorkerInfo> = self
            .worker_entries()?
            .into_iter()
            .filter_map(|(_, info)| info)
            .filter_map(|mut info| {
                let silent = now.saturating_sub(info.last_beat);
                if silent > self.prune_after(&info) {
                    return None;
                }
                info.alive = silent <= self.lease_of(&info);
                Some(info)
            })
            .collect();
        workers.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(workers)
    }

    /// The registry's entries: worker id and its heartbeat, `None` when unreadable.
    pub(super) fn worker_entries(&self) -> Result<Vec<(String, Option<WorkerInfo>)>> {
        let key = self.namespace_keys().workers();
        let mut con = self.connection()?;
        let entries: HashMap<String, String> =
            con.run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        Ok(entries
            .into_iter()
            .map(|(id, json)| (id, serde_json::from_str(&json).ok()))
            .collect())
    }

    /// Whether Redis answers, its round-trip latency, version and memory, the settings
    /// that decide what becomes of its tasks (`maxmemory`, `maxmemory-policy`,
    /// `appendonly`, `appendfsync`, `save`, the replication role and replicas), what an
    /// acknowledged enqueue survives by them, and warnings about those that can lose or
    /// refuse tasks. Settings Redis does not disclose (`CONFIG` refused to an ACL user)
    /// are unknown. Never fails for an unreachable server: that is `reachable: false`
    /// with the error.
    ///
    /// # Errors
    /// [`Error::Auth`](crate::Error::Auth) when Redis refuses the credentials or `PING`
    /// to this user: a configuration error, not an outage.
    pub fn health(&self) -> Result<Health> {
        let started = Instant::now();
        Ok(match self.server_report() {
            Ok(report) => Health {
                reachable: true,
                latency_ms: report.latency.as_secs_f64() * 1000.0,
                version: report.version,
                used_memory: report.used_memory,
                error: None,
                durability: report
                    .settings
                    .durability(self.delivery(), self.replica_acks()),
                warnings: report.settings.warnings(report.used_memory),
                settings: report.settings,
            },
            Err(err @ Error::Auth(_)) => return Err(err),
            Err(err) => Health {
                reachable: false,
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                version: None,
                used_memory: None,
                error: Some(err.to_string()),
                settings: RedisSettings::default(),
                durability: Durability::default(),
                warnings: Vec::new(),
            },
        })
    }
}

/// What `queue_stats` reports of a queue's ordering keys and owner.
struct OrderStats {
    keyed: u64,
    keys: u64,
    held_keys: u64,
    busiest_keys: Vec<KeyLoad>,
    owner: Option<QueueOwner>,
}

/// Reads the figures of the queue's ordering keys and its owner: the counters, the held
/// keys, the owner, and the backlog of the first keys in line (a sample of up to
/// [`KEYS_SAMPLED`] keys waiting for a consumer, of which the busiest are reported).
fn order_stats(con: &mut dyn redis::ConnectionLike, keys: &QueueKeys) -> RedisResult<OrderStats> {
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET")
        .arg(keys.counters())
        .arg(KEYED_COUNTER)
        .arg(KEYS_COUNTER);
    pipe.cmd("ZCARD").arg(keys.held());
    pipe.cmd("LRANGE")
        .arg(keys.ready())
        .arg(0)
        .arg(KEYS_SAMPLED - 1);
    pipe.cmd("HMGET")
        .arg(keys.owner())
        .arg(owner::CONSUMER)
        .arg(owner::SINCE);
    type Replies = (
        (Option<i64>, Option<i64>),
        u64,
        Vec<String>,
        (Option<String>, Option<u64>),
    );
    let ((keyed, count), held_keys, sample, (owner, since)): Replies = pipe.query(con)?;
    let mut busiest_keys = Vec::new();
    if !sample.is_empty() {
        let mut pipe = redis::pipe();
        for key in &sample {
            pipe.cmd("LLEN").arg(keys.key_list(key));
        }
        let lengths: Vec<u64> = pipe.query(con)?;
        busiest_keys = sample
            .into_iter()
            .zip(lengths)
            .map(|(key, pending)| KeyLoad { key, pending })
            .collect();
        busiest_keys.sort_by(|a, b| b.pending.cmp(&a.pending).then_with(|| a.key.cmp(&b.key)));
        busiest_keys.truncate(BUSIEST_KEYS);
    }
    let positive = |n: Option<i64>| u64::try_from(n.unwrap_or(0)).unwrap_or(0);
    Ok(OrderStats {
        keyed: positive(keyed),
        keys: positive(count),
        held_keys,
        busiest_keys,
        owner: owner.map(|consumer| QueueOwner {
            consumer,
            since: since.unwrap_or(0),
        }),
    })
}
