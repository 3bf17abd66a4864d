//! The history of a chaos run, recorded outside the system under test, and what the checker
//! reads: every enqueue with its outcome ([`Enqueue`]), every execution start and finish
//! ([`Execution`], one line each in the worker processes' history files), every fault the
//! nemesis injected ([`Fault`]), the queue positions sampled while nothing moved
//! ([`Probe`]), and what was found in Redis once the run was over ([`Record`],
//! [`KeyInfo`], [`RegistryEntry`], [`Shutdown`]).
//!
//! Times are microseconds since the Unix epoch by the machine's wall clock, which every
//! process of a run shares.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use redisq::TaskStatus;
use serde::{Deserialize, Serialize};

use super::tasks::Kind;

/// Now, in microseconds since the Unix epoch.
#[must_use]
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// How a producer reached Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Straight to the Redis server.
    Direct,
    /// Through the proxy, so through its faults.
    Proxy,
    /// Straight to Redis, by a probe filling a queue while the workers are stopped.
    Probe,
}

/// What an enqueue returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// `Ok(id)`: the task is in Redis and must run.
    Acked,
    /// An error that proves nothing was sent (the connection was refused, or the call was
    /// refused before any I/O): the task must not run.
    Failed,
    /// Any other error (a timeout, a dropped connection, a lost reply): the task may or may
    /// not be in Redis.
    Unknown,
}

/// One enqueue call, as the producer saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueue {
    /// The task's sequence number, unique in the run, carried in its arguments.
    pub seq: u64,
    /// What the task is.
    pub kind: Kind,
    /// The ordering key carried in its arguments, for the kinds of an order stream
    /// ([`Kind::stream`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How the producer reached Redis.
    pub via: Via,
    /// When the call started.
    pub sent_us: u64,
    /// When it returned.
    pub done_us: u64,
    /// What it returned.
    pub outcome: Outcome,
    /// The task id, when acknowledged.
    pub id: Option<String>,
    /// The error, when not.
    pub error: Option<String>,
}

/// What an execution line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The body started.
    Start,
    /// The body finished and returned `Ok`.
    Ok,
    /// The body finished and returned `Err`.
    Err,
}

/// One line of a worker process's history file: an execution started or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// The task's sequence number (from its arguments).
    pub seq: u64,
    /// What the task is.
    pub kind: Kind,
    /// The ordering key (from its arguments), for the kinds of an order stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The id the task ran under (`TaskContext::current()`; a batch's first item's).
    pub id: String,
    /// The queue it was taken from.
    pub queue: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The worker process.
    pub pid: u32,
    /// When.
    pub at_us: u64,
    /// Started or finished, and how.
    pub event: Event,
}

/// A kind of fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A worker process killed with SIGKILL, then started again.
    Kill,
    /// A worker process stopped with SIGSTOP, then continued.
    Pause,
    /// A worker process asked to shut down gracefully, then started again.
    Restart,
    /// Latency added by the proxy to every chunk it forwards.
    Latency,
    /// Replies swallowed by the proxy after it forwarded the request, and the connection
    /// closed.
    DropReplies,
    /// Every connection through the proxy cut at once.
    Cut,
    /// Every connection cut and new ones refused for a while.
    Partition,
    /// The Redis server killed with SIGKILL, then restarted on its append-only file.
    RedisRestart,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Restart,
        FaultKind::Latency,
        FaultKind::DropReplies,
        FaultKind::Cut,
        FaultKind::Partition,
        FaultKind::RedisRestart,
    ];

    /// Whether it strikes one worker process only (the fault's `pid`).
    #[must_use]
    pub fn targets_worker(self) -> bool {
        matches!(
            self,
            FaultKind::Kill | FaultKind::Pause | FaultKind::Restart
        )
    }

    /// Whether it may make a task run twice under at-least-once delivery. A graceful
    /// restart may not: a shutdown settles what ran and hands back what did not.
    #[must_use]
    pub fn may_duplicate(self) -> bool {
        self != FaultKind::Restart
    }

    /// Whether it may reorder a FIFO queue (all but a graceful restart, which hands back
    /// to the head of the queue in order).
    #[must_use]
    pub fn may_reorder(self) -> bool {
        self != FaultKind::Restart
    }

    /// Its name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Restart => "restart",
            FaultKind::Latency => "latency",
            FaultKind::DropReplies => "drop-replies",
            FaultKind::Cut => "cut",
            FaultKind::Partition => "partition",
            FaultKind::RedisRestart => "redis-restart",
        }
    }
}

/// A fault as it was injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What it was.
    pub kind: FaultKind,
    /// The worker process it struck, for the kinds that strike one.
    pub pid: Option<u32>,
    /// When it began.
    pub start_us: u64,
    /// When it was healed (the worker restarted or continued, the proxy passing again,
    /// Redis answering again); the same as `start_us` for an instant fault.
    pub end_us: u64,
    /// Details: the latency, the process's slot.
    pub detail: String,
    /// Whether a probe made it (its pauses, and its kill of the FIFO consumer).
    #[serde(default)]
    pub by_probe: bool,
}

/// A task's record as one probe read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The task's sequence number.
    pub seq: u64,
    /// Its id.
    pub id: String,
    /// Its status, `None` when it had no record.
    pub status: Option<TaskStatus>,
    /// Its queue position, as `backend.task(&id)` reported it.
    pub position: Option<u64>,
}

/// The queue positions of one queue, read while no worker could move anything (every
/// worker process stopped, producers paused) and the nemesis was idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The queue.
    pub queue: String,
    /// When the reading began; every worker process was stopped by then.
    pub at_us: u64,
    /// When the workers were let go again.
    pub resumed_us: u64,
    /// Whether the probe followed the recovery of a killed consumer's tasks.
    pub after_recovery: bool,
    /// Whether one consumer thread serves the queue in the whole run, so that tasks
    /// queued at the probe start in the queue's order once the workers go on.
    pub single_consumer: bool,
    /// Tasks waiting in the queue's lanes (`queue_stats().total_pending`) before the
    /// records were read.
    pub lane_before: u64,
    /// The same, after; a probe is conclusive only when nothing moved in between.
    pub lane_after: u64,
    /// Every acknowledged task of the queue not known to have finished, as read.
    pub samples: Vec<Sample>,
}

/// A task's status record after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The task's sequence number.
    pub seq: u64,
    /// Its id.
    pub id: String,
    /// Its status, `None` when it had no record.
    pub status: Option<TaskStatus>,
    /// The attempts its record counts.
    pub attempts: u32,
}

/// A key of the run's namespace after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key without the `<namespace>:` prefix.
    pub key: String,
    /// Its Redis type (`list`, `hash`, `zset`, …).
    pub kind: String,
    /// Its time to live in milliseconds (`PTTL`): -1 for none.
    pub ttl_ms: i64,
    /// Its length (`LLEN`, `HLEN`, `ZCARD`, `SCARD`; 1 for a string).
    pub len: u64,
    /// A few of its members or fields, for the report.
    pub sample: Vec<String>,
}

/// An entry of the worker registry after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// The worker's id.
    pub id: String,
    /// Its process.
    pub pid: u32,
    /// Its last heartbeat (Unix ms).
    pub last_beat_ms: u64,
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// Killed with SIGKILL (by the nemesis, a probe, or when the harness stopped).
    Killed,
    /// Exited by itself after it was asked to stop.
    Stopped,
    /// Killed because it did not exit in time after it was asked to stop.
    KilledAtDeadline,
}

/// A worker process of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerProcess {
    /// Its place among the workers (slot 0 serves the FIFO queue).
    pub slot: usize,
    /// Its process id.
    pub pid: u32,
    /// The id of its redisq worker (its consumers are `<id>-<n>`), as it printed it.
    pub worker_id: String,
    /// When it was started.
    pub started_us: u64,
    /// When it ended, and how.
    pub ended: Option<(u64, End)>,
}

/// How a worker process ended at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    /// The process.
    pub pid: u32,
    /// Whether it exited by itself within the deadline after it was asked to stop.
    pub graceful: bool,
}

/// Everything a run recorded, as the checker reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The seed of the run.
    pub seed: u64,
    /// The lease the workers used, in microseconds.
    pub lease_us: u64,
    /// Every enqueue call.
    pub enqueues: Vec<Enqueue>,
    /// Every execution line of every worker process, in time order.
    pub executions: Vec<Execution>,
    /// History lines that did not parse (a process killed mid-write would leave one).
    pub unparsed_lines: usize,
    /// Every fault injected, in time order.
    pub faults: Vec<Fault>,
    /// Every probe.
    pub probes: Vec<Probe>,
    /// Whether every acknowledged task finished and the queues emptied before the drain
    /// deadline.
    pub drained: bool,
    /// The status records read after the run.
    pub records: Vec<Record>,
    /// The ids in the dead letters of every queue after the run.
    pub dead_letters: Vec<String>,
    /// The namespace's keys after the workers stopped.
    pub keys: Vec<KeyInfo>,
    /// The worker registry after the workers stopped.
    pub registry: Vec<RegistryEntry>,
    /// When the last worker process was asked to stop (µs).
    pub stopped_us: u64,
    /// How each worker process ended.
    pub shutdowns: Vec<Shutdown>,
    /// Every worker process of the run.
    #[serde(default)]
    pub processes: Vec<WorkerProcess>,
}

impl History {
    /// How many faults of each kind the nemesis injected (the probes' own excluded).
    #[must_use]
    pub fn faults_by_kind(&self) -> BTreeMap<FaultKind, usize> {
        let mut counts = BTreeMap::new();
        for fault in self.faults.iter().filter(|f| !f.by_probe) {
            *counts.entry(fault.kind).or_insert(0) += 1;
        }
        counts
    }

    /// Writes the history as JSON to `path`, so that the checker can be run on it again
    /// (`chaos --recheck`).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string(self).map_err(io::Error::other)?;
        fs::write(path, text)
    }

    /// Reads a history written by [`History::save`].
    ///
    /// # Errors
    /// When the file cannot be read or is not such a history.
    pub fn load(path: &Path) -> io::Result<History> {
        let text = fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(io::Error::other)
    }
}

/// Reads every worker history file (`*.jsonl`) in `dir`: the executions, sorted by time,
/// and the number of lines that did not parse.
///
/// # Errors
/// When the directory or a file cannot be read.
pub fn read_executions(dir: &Path) -> io::Result<(Vec<Execution>, usize)> {
    let mut executions = Vec::new();
    let mut unparsed = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "jsonl") {
            continue;
        }
        for line in fs::read_to_string(&path)?.lines() {
            match serde_json::from_str::<Execution>(line) {
                Ok(execution) => executions.push(execution),
                Err(_) if line.trim().is_empty() => {}
                Err(_) => unparsed += 1,
            }
        }
    }
    executions.sort_by_key(|e| (e.at_us, e.seq, e.event));
    Ok((executions, unparsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_line_round_trips() {
        let line = r#"{"seq":7,"kind":"batch","id":"ab","queue":"chaos-batch","attempt":2,"pid":42,"at_us":1,"event":"ok"}"#;
        let execution: Execution = serde_json::from_str(line).expect("parses");
        assert_eq!(execution.kind, Kind::Batch);
        assert_eq!(execution.event, Event::Ok);
        assert_eq!(serde_json::to_string(&execution).expect("writes"), line);
    }

    #[test]
    fn history_files_are_read_in_time_order_and_bad_lines_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let line = |seq: u64, at: u64| {
            format!(
                r#"{{"seq":{seq},"kind":"fifo","id":"i","queue":"q","attempt":1,"pid":1,"at_us":{at},"event":"start"}}"#
            )
        };
        fs::write(
            dir.path().join("a.jsonl"),
            format!("{}\n{{\"seq\":", line(1, 30)),
        )
        .expect("write");
        fs::write(dir.path().join("b.jsonl"), format!("{}\n", line(2, 10))).expect("write");
        fs::write(dir.path().join("ignored.log"), "not history").expect("write");
        let (executions, unparsed) = read_executions(dir.path()).expect("read");
        assert_eq!(executions.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(unparsed, 1);
    }
}
