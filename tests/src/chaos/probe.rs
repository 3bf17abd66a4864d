//! Probes: the queue positions of waiting tasks, read while nothing can move them. A probe
//! pauses the producers, optionally kills the FIFO queue's one consumer and waits until its
//! tasks are recovered to the head of the queue, stops every other worker process
//! (SIGSTOP), adds a few tasks to each queue so that there is a backlog, reads the status
//! records of every task that may be waiting, and lets everything go again. The checker
//! later compares the positions read with the order in which the tasks were then taken.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redisq::{RedisQueueBackend, TaskId, TaskStatus};

use super::cluster::Cluster;
use super::history::{now_us, read_executions, Event, FaultKind, Probe, Sample, Via};
use super::producer::{Log, Producers};
use super::tasks::{Kind, FIFO_QUEUE, QUEUES};

/// Tasks a probe adds to each queue.
const BACKLOG: usize = 8;
/// A task that finished this recently may have gone back to its queue (its consumer's
/// lease ran out before the settle that acknowledged it), so its record is read too.
const RECENT: Duration = Duration::from_secs(10);

/// Makes probes.
pub(crate) struct Prober<'a> {
    pub(crate) cluster: &'a Cluster,
    pub(crate) producers: &'a Producers,
    pub(crate) log: &'a Log,
    /// Straight to Redis.
    pub(crate) backend: RedisQueueBackend,
    pub(crate) history_dir: PathBuf,
    pub(crate) probes: Mutex<Vec<Probe>>,
}

impl Prober<'_> {
    /// Makes a probe; `after_recovery` first kills the FIFO queue's consumer (slot 0) and
    /// waits for its tasks to be recovered. A probe that cannot be made (Redis errors, the
    /// producers do not pause) is logged and skipped.
    pub(crate) fn probe(&self, after_recovery: bool) {
        if !self.producers.pause(Duration::from_secs(10)) {
            eprintln!("chaos: probe skipped: the producers did not pause");
            self.producers.resume();
            return;
        }
        let killed = if after_recovery {
            self.kill_busy_consumer()
        } else {
            None
        };
        let result = self.stop_and_read(killed.is_some());
        if let Some((pid, start)) = killed {
            if let Err(err) = self.cluster.spawn(0) {
                log::error!("the FIFO worker could not start again: {err}");
            }
            self.cluster
                .record_probe(FaultKind::Kill, pid, start, "slot 0".to_owned());
        }
        self.producers.resume();
        match result {
            Ok(probes) => self
                .probes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(probes),
            Err(err) => eprintln!("chaos: probe skipped: {err}"),
        }
    }

    /// Gives the FIFO queue's consumer (slot 0) a backlog, waits until it holds some of it
    /// (at most a second), and kills it; returns its id and when it was killed.
    fn kill_busy_consumer(&self) -> Option<(u32, u64)> {
        for _ in 0..BACKLOG {
            self.log.enqueue(&self.backend, Kind::Fifo, Via::Probe);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if self
                .backend
                .queue_stats(FIFO_QUEUE)
                .is_ok_and(|s| s.processing > 0)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = now_us();
        self.cluster.kill(0).map(|pid| (pid, start))
    }

    /// Waits for the recovery if asked, stops the other workers, reads, and continues them.
    fn stop_and_read(&self, after_recovery: bool) -> Result<Vec<Probe>, String> {
        if after_recovery {
            self.wait_for_recovery()?;
        }
        let start = now_us();
        let paused: Vec<(usize, u32)> = (0..self.cluster.config().workers)
            .filter_map(|slot| Some((slot, self.cluster.pause(slot, true)?)))
            .collect();
        let result = self.read(after_recovery);
        let resumed_us = now_us();
        for (slot, pid) in paused {
            self.cluster.pause(slot, false);
            self.cluster
                .record_probe(FaultKind::Pause, pid, start, format!("slot {slot}"));
        }
        let mut probes = result?;
        for probe in &mut probes {
            probe.resumed_us = resumed_us;
        }
        Ok(probes)
    }

    /// Recovers the killed consumer's tasks (its lease has to run out first) until no
    /// consumer holds any task of the FIFO queue.
    fn wait_for_recovery(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.cluster.config().lease * 5 + Duration::from_secs(2);
        loop {
            for queue in QUEUES {
                retry("recovery", || self.backend.recover_stale(queue))?;
            }
            let stats = retry("queue stats", || self.backend.queue_stats(FIFO_QUEUE))?;
            if stats.processing == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} FIFO task(s) still claimed after the lease",
                    stats.processing
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Adds a backlog and reads the records of every task that may be waiting.
    fn read(&self, after_recovery: bool) -> Result<Vec<Probe>, String> {
        // A failed enqueue is recorded like any other; the backlog is only shorter.
        for kind in [Kind::Fifo, Kind::Multi, Kind::Flaky, Kind::Batch] {
            for _ in 0..BACKLOG {
                self.log.enqueue(&self.backend, kind, Via::Probe);
            }
        }
        let (executions, _) = read_executions(&self.history_dir).map_err(|e| e.to_string())?;
        let mut last_finish: BTreeMap<u64, u64> = BTreeMap::new();
        for e in executions.iter().filter(|e| e.event != Event::Start) {
            last_finish.insert(e.seq, e.at_us);
        }
        let at_us = now_us();
        let recent = at_us.saturating_sub(u64::try_from(RECENT.as_micros()).unwrap_or(0));
        let enqueues = self.log.enqueues();
        let mut probes = Vec::new();
        for queue in QUEUES {
            let lane_before = self.lane(queue)?;
            let mut samples = Vec::new();
            for enqueue in enqueues.iter().filter(|e| e.kind.queue() == queue) {
                let Some(id) = &enqueue.id else { continue };
                if last_finish.get(&enqueue.seq).is_some_and(|t| *t < recent) {
                    continue;
                }
                let id_ = TaskId::from(id.as_str());
                let info = retry("task record", || self.backend.task(&id_))?;
                samples.push(Sample {
                    seq: enqueue.seq,
                    id: id.clone(),
                    status: info.as_ref().map(|i| i.status),
                    position: info.and_then(|i| i.queue_position),
                });
            }
            probes.push(Probe {
                queue: queue.to_owned(),
                at_us,
                resumed_us: 0,
                after_recovery,
                single_consumer: queue == FIFO_QUEUE,
                lane_before,
                lane_after: self.lane(queue)?,
                samples,
            });
        }
        log::debug!(
            "probe: {} queued task(s) read",
            probes
                .iter()
                .flat_map(|p| &p.samples)
                .filter(|s| s.status == Some(TaskStatus::Queued))
                .count()
        );
        Ok(probes)
    }

    fn lane(&self, queue: &str) -> Result<u64, String> {
        Ok(retry("queue stats", || self.backend.queue_stats(queue))?.total_pending)
    }
}

/// Runs `call` up to three times while Redis is unavailable (a pooled connection that a
/// Redis restart broke fails once).
pub(crate) fn retry<T>(
    what: &str,
    mut call: impl FnMut() -> redisq::Result<T>,
) -> Result<T, String> {
    let mut attempts = 0;
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(err) if err.is_unavailable() && attempts < 2 => attempts += 1,
            Err(err) => return Err(format!("{what}: {err}")),
        }
    }
}
