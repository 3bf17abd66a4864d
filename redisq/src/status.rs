//! What redisq tells about tasks, queues and workers: [`TaskInfo`] (a task's status record),
//! [`QueueStats`] and [`Stats`] (counters shared by every process through Redis),
//! [`WorkerInfo`] (the worker registry) and [`Health`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::task::{Priority, TaskId};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting in its queue.
    Queued,
    /// Delayed: waiting in the queue's scheduled set until it is due.
    Scheduled,
    /// Taken by a worker, running.
    Processing,
    /// Finished successfully; the result is kept until the record expires.
    Done,
    /// Failed and will be retried.
    Failed,
    /// Out of retries, or never runnable: in the dead letters.
    Dead,
}

impl TaskStatus {
    /// Whether the task will not run again (done or dead).
    #[must_use]
    pub fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Done | TaskStatus::Dead)
    }
}

/// A task's status record, from [`RedisQueueBackend::task`](crate::RedisQueueBackend::task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Its queue.
    pub queue: String,
    /// Its wire name.
    pub name: String,
    /// Its lane.
    pub priority: Priority,
    /// Its ordering key, when it has one (`#[fifo(key = "...")]`): a keyed task waits
    /// behind the earlier tasks of its key, so it has no queue position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When it was enqueued (Unix ms).
    pub created_at: u64,
    /// When its last attempt started (Unix ms).
    pub started_at: Option<u64>,
    /// When it finished, or its last attempt failed (Unix ms).
    pub finished_at: Option<u64>,
    /// Attempts made.
    pub attempts: u32,
    /// The consumer that ran (or runs) it.
    pub worker: Option<String>,
    /// What it returned, as JSON, once done.
    pub result: Option<serde_json::Value>,
    /// Its last error, once failed or dead.
    pub error: Option<String>,
    /// While queued: how many tasks will be taken before it (an estimate where priorities,
    /// retries or recovered tasks reorder the queue).
    pub queue_position: Option<u64>,
    /// While queued: its position divided by the queue's rate over the last minute.
    pub estimated_wait_seconds: Option<f64>,
}

/// p50, p95 and p99 of a recent window, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// How many samples the window holds (up to 1,000 per queue).
    pub samples: usize,
}

impl Percentiles {
    /// Percentiles of `values` (nearest rank).
    #[must_use]
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = (q * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1]
        };
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            samples: values.len(),
        }
    }
}

/// The figures of one queue, summed over every process that uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// Tasks waiting in the normal lane.
    pub queue_size: u64,
    /// Tasks waiting in the high lane.
    pub priority_queue_size: u64,
    /// Tasks waiting in the low lane.
    pub low_queue_size: u64,
    /// Tasks waiting in all lanes, and the tasks with ordering keys waiting or running.
    pub total_pending: u64,
    /// Tasks taken by workers and not yet acknowledged.
    pub processing: u64,
    /// Delayed tasks and retries waiting to be due.
    pub scheduled: u64,
    /// Dead letters.
    pub dead: u64,
    /// Tasks (batch items) that succeeded, ever.
    pub processed: u64,
    /// Attempts that failed, ever.
    pub failed: u64,
    /// Failed attempts scheduled to run again, ever.
    pub retried: u64,
    /// Tasks set aside as dead letters, ever.
    pub dead_lettered: u64,
    /// When a task last succeeded (Unix ms).
    pub last_processed: Option<u64>,
    /// Tasks that succeeded per second over the last minute.
    pub throughput_per_second: f64,
    /// Time from enqueue to start, over the last 1,000 tasks sampled.
    pub wait_ms: Percentiles,
    /// Run time, over the last 1,000 tasks sampled.
    pub run_ms: Percentiles,
    /// Tasks with ordering keys waiting or running (`#[fifo(key = "...")]`).
    #[serde(default)]
    pub keyed: u64,
    /// Ordering keys with tasks waiting or running.
    #[serde(default)]
    pub keys: u64,
    /// Ordering keys whose head task waits to be retried (holding back the rest).
    #[serde(default)]
    pub held_keys: u64,
    /// The busiest keys among the first 1,000 in line (waiting for a consumer), at most
    /// ten, busiest first, with their tasks waiting or running.
    #[serde(default)]
    pub busiest_keys: Vec<KeyLoad>,
    /// An ordered queue's owner: the one consumer that takes from it now.
    #[serde(default)]
    pub owner: Option<QueueOwner>,
}

/// One ordering key's tasks waiting or running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyLoad {
    /// The key.
    pub key: String,
    /// Its tasks waiting or running.
    pub pending: u64,
}

/// The consumer that holds an ordered queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueOwner {
    /// The consumer id, `<worker id>-<n>`.
    pub consumer: String,
    /// Since when (Unix ms).
    pub since: u64,
}

/// A worker process (one [`Worker`](crate::Worker)) as its heartbeats describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// Its consumer threads.
    pub threads: usize,
    /// When it started (Unix ms).
    pub started_at: u64,
    /// Its last heartbeat (Unix ms).
    pub last_beat: u64,
    /// Tasks its threads were running at the last heartbeat.
    pub in_flight: u64,
    /// Its lease (ms): it beats every third of it, and is gone when silent for a lease.
    #[serde(default)]
    pub lease_ms: u64,
    /// False once it has missed its heartbeats for a lease: it stopped or died. Such
    /// workers are pruned from the registry after ten leases.
    pub alive: bool,
}

/// Everything [`RedisQueueBackend::stats`](crate::RedisQueueBackend::stats) reports: per
/// queue figures and the workers, in the shape of a `/queue/status` endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Whether Redis answered (always true in a value returned by `stats`).
    pub redis_connected: bool,
    /// Per queue, by name.
    pub queue_stats: BTreeMap<String, QueueStats>,
    /// Totals over the queues, and the workers.
    pub processor_stats: ProcessorStats,
    /// When the figures were read (Unix ms).
    pub timestamp: u64,
}

/// Totals over every queue, and the worker registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessorStats {
    /// Tasks that succeeded.
    pub processed: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// When a task last succeeded (Unix ms).
    pub last_processed: Option<u64>,
    /// Workers alive (heartbeat within a lease).
    pub workers_alive: usize,
    /// Every worker in the registry.
    pub workers: Vec<WorkerInfo>,
}

/// Whether Redis answers, and how: from
/// [`RedisQueueBackend::health`](crate::RedisQueueBackend::health).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// Whether a `PING` was answered.
    pub reachable: bool,
    /// The `PING` round trip, in milliseconds.
    pub latency_ms: f64,
    /// The server's version (`INFO server`).
    pub version: Option<String>,
    /// Memory used by the server, in bytes (`INFO memory`).
    pub used_memory: Option<u64>,
    /// The error, when unreachable.
    pub error: Option<String>,
    /// The server's settings that decide what happens to the tasks it holds.
    #[serde(default)]
    pub settings: RedisSettings,
    /// What an acknowledged enqueue survives, by those settings.
    #[serde(default)]
    pub durability: Durability,
    /// What in those settings can lose or refuse tasks (an evicting `maxmemory-policy`, no
    /// persistence, memory near its limit, a replica), one sentence each; empty when
    /// nothing does or when unreachable.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The Redis settings that decide what becomes of the tasks it holds, read with
/// `CONFIG GET` and `INFO replication`. `None` is unknown: not read yet, or refused (an
/// ACL user may not run `CONFIG`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RedisSettings {
    /// `maxmemory`, in bytes: past it writes fail or keys are evicted; 0 is no limit.
    pub maxmemory: Option<u64>,
    /// `maxmemory-policy`: `noeviction` (writes fail with `OOM` at the limit) or a policy
    /// that evicts keys.
    pub maxmemory_policy: Option<String>,
    /// `appendonly`: whether every write goes to the append-only file.
    pub appendonly: Option<bool>,
    /// `appendfsync`: when the append-only file is flushed to disk (`always`, `everysec`,
    /// `no`).
    pub appendfsync: Option<String>,
    /// `save`: the RDB snapshot schedule (`<seconds> <changes>` pairs); empty when none.
    pub save: Option<String>,
    /// `role` (`INFO replication`): `master`, or `slave` for a replica.
    pub role: Option<String>,
    /// Replicas connected to this server (`connected_slaves`).
    pub connected_replicas: Option<u64>,
}

/// What an enqueue that returned `Ok` survives, by the server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Durability {
    /// A worker process dying (SIGKILL, OOM, power loss): with at-least-once delivery its
    /// tasks go back to their queue when its lease runs out.
    pub worker_crash: Survival,
    /// Redis restarting or crashing: as its persistence allows (AOF, RDB, none).
    pub redis_restart: Survival,
    /// A failover to a replica: replication is asynchronous, so not guaranteed unless each
    /// enqueue waits for a replica (`with_replica_acks`, `WAIT`).
    pub failover: Survival,
}

impl Default for Durability {
    fn default() -> Durability {
        Durability {
            worker_crash: Survival::Unknown,
            redis_restart: Survival::Unknown,
            failover: Survival::Unknown,
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a worker crash: {}; a redis restart: {}; a failover: {}",
            self.worker_crash, self.redis_restart, self.failover
        )?;
        if self.failover == Survival::NotGuaranteed {
            f.write_str(" (replication is asynchronous; with_replica_acks makes each enqueue WAIT for replicas)")?;
        }
        Ok(())
    }
}

/// Whether an acknowledged enqueue survives one kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Survival {
    /// It survives: nothing acknowledged is lost (`appendfsync always`, for a restart).
    Survives,
    /// Up to about the last second of writes is lost (`appendonly yes`, `appendfsync
    /// everysec`).
    LosesLastSecond,
    /// What the operating system had not yet written is lost (`appendfsync no`; Linux
    /// writes back within about 30 s).
    LosesUnflushed,
    /// The writes since the last RDB snapshot are lost (`appendonly no`, a `save`
    /// schedule).
    LosesSinceSnapshot,
    /// Everything is lost (`appendonly no`, no `save` schedule).
    Lost,
    /// Not guaranteed: it may or may not survive (a failover; a worker crash with
    /// at-most-once delivery).
    NotGuaranteed,
    /// Unknown: the settings could not be read.
    Unknown,
}

impl std::fmt::Display for Survival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Survival::Survives => "survives",
            Survival::LosesLastSecond => {
                "up to about the last second of writes lost (appendfsync everysec)"
            }
            Survival::LosesUnflushed => {
                "writes the os had not flushed lost (appendfsync no; up to about 30 s)"
            }
            Survival::LosesSinceSnapshot => {
                "the writes since the last snapshot lost (rdb only, no append-only file)"
            }
            Survival::Lost => "everything lost (no persistence: appendonly no, no save)",
            Survival::NotGuaranteed => "not guaranteed",
            Survival::Unknown => "unknown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.samples), (50.0, 95.0, 99.0, 100));
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
        assert_eq!(Percentiles::of(vec![7.0]).p99, 7.0);
    }
}
