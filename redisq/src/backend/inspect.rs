//! Reading what Redis holds about tasks, queues and workers: status records, positions,
//! statistics, the worker registry and the server's health.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::RedisQueueBackend;
use crate::error::Result;
use crate::keys::QueueKeys;
use crate::status::{
    Health, Percentiles, ProcessorStats, QueueStats, Stats, TaskInfo, TaskStatus, WorkerInfo,
};
use crate::task::{now_millis, Priority, TaskId};

static WAIT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("wait.lua")));

impl RedisQueueBackend {
    /// The status record of task `id`: `None` when there is none (unknown, expired, or a
    /// task of a `store_result = false` function). While it is queued, the record says how
    /// many tasks will be taken before it and how long that should take at the queue's
    /// rate over the last minute.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn task(&self, id: &TaskId) -> Result<Option<TaskInfo>> {
        let key = self.namespace_keys().record(id.as_str());
        let mut con = self.connection()?;
        let fields: HashMap<String, String> =
            con.run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        drop(con);
        let Some(status) = fields.get("status").and_then(|s| TaskStatus::parse(s)) else {
            return Ok(None);
        };
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
        let priority = fields
            .get("lane")
            .and_then(|l| Priority::from_lane_name(l))
            .unwrap_or_default();
        let queue = fields.get("queue").cloned().unwrap_or_default();
        let mut info = TaskInfo {
            id: id.clone(),
            status,
            queue: queue.clone(),
            name: fields.get("name").cloned().unwrap_or_default(),
            priority,
            created_at: number("created_at").unwrap_or(0),
            started_at: number("started_at"),
            finished_at: number("finished_at"),
            attempts: number("attempts")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
            worker: fields.get("worker").cloned(),
            result: fields
                .get("result")
                .and_then(|r| serde_json::from_str(r).ok()),
            error: fields.get("error").cloned(),
            queue_position: None,
            estimated_wait_seconds: None,
        };
        if status == TaskStatus::Queued {
            if let Some(seq) = number("seq") {
                let (position, rate) = self.position(&queue, priority, seq)?;
                info.queue_position = Some(position);
                info.estimated_wait_seconds = (rate > 0.0).then(|| (position + 1) as f64 / rate);
            }
        }
        Ok(Some(info))
    }

    /// How many tasks will be taken before the task with place `seq` in `priority`'s lane,
    /// and the queue's rate (tasks/s over the last minute). Reads two counters and the
    /// lengths of the higher lanes: constant time, however long the queue.
    fn position(&self, queue: &str, priority: Priority, seq: u64) -> Result<(u64, f64)> {
        let keys = self.keys(queue);
        let higher: Vec<String> = match priority {
            Priority::High => vec![],
            Priority::Normal => vec![keys.lane(Priority::High)],
            Priority::Low => vec![keys.lane(Priority::High), keys.lane(Priority::Normal)],
        };
        let mut pipe = redis::pipe();
        pipe.cmd("HGET")
            .arg(keys.counters())
            .arg(format!("taken:{}", priority.lane_name()));
        pipe.cmd("LLEN").arg(keys.lane(priority));
        for lane in &higher {
            pipe.cmd("LLEN").arg(lane);
        }
        let mut con = self.connection()?;
        let replies: Vec<Option<i64>> = con.run(|c| pipe.query(c))?;
        drop(con);
        let taken = replies.first().copied().flatten().unwrap_or(0);
        let lane_len = replies.get(1).copied().flatten().unwrap_or(0).max(0);
        let ahead_in_lane = (i64::try_from(seq).unwrap_or(i64::MAX) - taken - 1).clamp(0, lane_len);
        let ahead_higher: i64 = replies.iter().skip(2).map(|r| r.unwrap_or(0)).sum();
        let position = u64::try_from(ahead_in_lane + ahead_higher).unwrap_or(0);
        let rate = self.rate(&keys)?;
        Ok((position, rate))
    }

    /// Tasks processed per second over the last minute: this minute's count and the part of
    /// the last minute's that the window still covers.
    fn rate(&self, keys: &QueueKeys) -> Result<f64> {
        let now = now_millis();
        let minute = now / 60_000;
        let into = (now % 60_000) as f64 / 60_000.0;
        let mut con = self.connection()?;
        let (current, previous): (Option<u64>, Option<u64>) = con.run(|c| {
            redis::cmd("MGET")
                .arg(format!("{}:{minute}", keys.throughput()))
                .arg(format!(
                    "{}:{}",
                    keys.throughput(),
                    minute.saturating_sub(1)
                ))
                .query(c)
        })?;
        let count = current.unwrap_or(0) as f64 + previous.unwrap_or(0) as f64 * (1.0 - into);
        Ok(count / 60.0)
    }

    /// Waits until task `id` is finished (done or dead) or `timeout` passes, blocking on
    /// Redis (no polling), and returns its record as it is then; `None` when it has none.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn wait(&self, id: &TaskId, timeout: Duration) -> Result<Option<TaskInfo>> {
        let ns = self.namespace_keys();
        let key = ns.record(id.as_str());
        let done = ns.record_done(id.as_str());
        let deadline = Instant::now() + timeout;
        // Mark the record as waited on first: a worker finishing it from now on rings.
        let mut con = self.connection()?;
        let marked: bool = con.run(|c| WAIT.key(&key).invoke(c))?;
        drop(con);
        if !marked {
            return Ok(None);
        }
        loop {
            let info = self.task(id)?;
            match &info {
                Some(info) if !info.status.is_finished() => {}
                _ => return Ok(info),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(info);
            }
            // A blocking wait needs its own connection: its read may last `left`.
            let mut con = self.pool_connect(left)?;
            let woke: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(&done)
                .arg(left.as_secs_f64().max(0.01))
                .query(&mut con)?;
            if woke.is_none() {
                return self.task(id);
            }
        }
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
            total_pending: normal + high + low,
            processing,
            scheduled,
            dead,
            processed: count("processed"),
            failed: count("failed"),
            retried: count("retried"),
            dead_lettered: count("dead"),
            last_processed: counts.get("last_processed").copied(),
            throughput_per_second: self.rate(&keys)?,
            wait_ms: Percentiles::of(waits),
            run_ms: Percentiles::of(runs),
        })
    }

    /// Every known queue's figures, totals, and the worker registry: what a
    /// `/queue/status` endpoint shows. Serializes to JSON in that shape.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn stats(&self) -> Result<Stats> {
        let mut queue_stats = std::collections::BTreeMap::new();
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

    /// The worker registry: every worker that beat within ten of its leases (older entries
    /// are pruned here), with `alive` false for those silent for longer than a lease.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let key = self.namespace_keys().workers();
        let mut con = self.connection()?;
        let entries: HashMap<String, String> =
            con.run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        let now = now_millis();
        let default_lease = super::ops::millis(self.config.lease);
        let mut workers = Vec::new();
        let mut pruned = Vec::new();
        for (id, json) in entries {
            match serde_json::from_str::<WorkerInfo>(&json) {
                Ok(mut info) => {
                    let lease = if info.lease_ms > 0 {
                        info.lease_ms
                    } else {
                        default_lease
                    };
                    let silent = now.saturating_sub(info.last_beat);
                    if silent > lease.saturating_mul(10) {
                        pruned.push(id);
                    } else {
                        info.alive = silent <= lease;
                        workers.push(info);
                    }
                }
                Err(_) => pruned.push(id),
            }
        }
        if !pruned.is_empty() {
            con.run(|c| redis::cmd("HDEL").arg(&key).arg(&pruned).query::<()>(c))?;
        }
        workers.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(workers)
    }

    /// Whether Redis answers, its round-trip latency, version and memory. Never fails for
    /// an unreachable server: that is `reachable: false` with the error.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for configuration errors.
    pub fn health(&self) -> Result<Health> {
        let started = Instant::now();
        let probe = self.connection().and_then(|mut con| {
            con.run(|c| redis::cmd("PING").query::<String>(c))?;
            let latency = started.elapsed();
            let info: String = con.run(|c| redis::cmd("INFO").query(c))?;
            Ok((latency, info))
        });
        Ok(match probe {
            Ok((latency, info)) => {
                let field = |name: &str| {
                    info.lines()
                        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                        .map(|v| v.trim().to_owned())
                };
                Health {
                    reachable: true,
                    latency_ms: latency.as_secs_f64() * 1000.0,
                    version: field("redis_version"),
                    used_memory: field("used_memory").and_then(|m| m.parse().ok()),
                    error: None,
                }
            }
            Err(err) => Health {
                reachable: false,
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                version: None,
                used_memory: None,
                error: Some(err.to_string()),
            },
        })
    }

    /// Recovers the tasks of expired leases on every known queue; says how many moved.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn recover_all(&self) -> Result<usize> {
        let mut total = 0;
        for queue in self.queues()? {
            total += self.recover_stale(&queue)?;
        }
        Ok(total)
    }

    /// Writes this worker's heartbeat into the registry.
    pub(crate) fn beat(&self, info: &WorkerInfo) -> Result<()> {
        let key = self.namespace_keys().workers();
        let json = serde_json::to_string(info).map_err(crate::Error::Serialize)?;
        let mut con = self.connection()?;
        con.run(|c| {
            redis::cmd("HSET")
                .arg(&key)
                .arg(&info.id)
                .arg(json)
                .query::<()>(c)
        })?;
        Ok(())
    }

    /// Removes a worker from the registry and registers the queues it served.
    pub(crate) fn unregister(&self, id: &str) -> Result<()> {
        let key = self.namespace_keys().workers();
        let mut con = self.connection()?;
        con.run(|c| redis::cmd("HDEL").arg(&key).arg(id).query::<()>(c))?;
        Ok(())
    }

    /// Adds queues to the set of known queues.
    pub(crate) fn register_queues(&self, queues: &[String]) -> Result<()> {
        if queues.is_empty() {
            return Ok(());
        }
        let key = self.namespace_keys().queues();
        let mut con = self.connection()?;
        con.run(|c| redis::cmd("SADD").arg(&key).arg(queues).query::<()>(c))?;
        Ok(())
    }
}
