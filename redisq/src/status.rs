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
    /// Tasks waiting in all lanes.
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

/// Whether Redis answers, and how.
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
