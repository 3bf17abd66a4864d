//! A worker's heartbeat thread: every third of the lease it writes the worker's entry in
//! the registry, renews the leases of the worker's consumers (with their fencing tokens),
//! recovers the tasks of consumers (of any process) whose lease ran out, and hands back
//! the unstarted tasks of a consumer stuck on one task for longer than the lease; once a
//! minute it also recovers unserved queues, applies dead-letter bounds and prunes the
//! registry. It stops only after the worker's consumers have, so that the leases of
//! running tasks hold through a graceful shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::backend::RedisQueueBackend;
use crate::clock::now_millis;
use crate::consumer::{Counters, Shared};
use crate::error::Result;
use crate::status::WorkerInfo;

/// One consumer as the heartbeat sees it.
pub(crate) struct Beating {
    /// Its id.
    pub(crate) id: String,
    /// The queues it serves, in its order.
    pub(crate) queues: Vec<String>,
    /// What it shares: its tokens and the task it runs.
    pub(crate) shared: Arc<Shared>,
}

/// How often the heartbeat does its rounds of the whole namespace (recovery of queues no
/// live worker serves, the dead-letter age bound), at most.
const ROUND: Duration = Duration::from_secs(60);

/// Renews the leases of one worker's consumers, recovers expired ones, hands back the
/// unstarted tasks of consumers stuck on a long task, and keeps the registry.
pub(crate) struct Heartbeat {
    pub(crate) backend: RedisQueueBackend,
    /// The queues this worker serves.
    pub(crate) queues: Vec<String>,
    pub(crate) consumers: Vec<Beating>,
    /// Disconnected when the worker's consumers have all stopped.
    pub(crate) stop: Receiver<()>,
    /// This worker's entry in the registry.
    pub(crate) info: WorkerInfo,
    pub(crate) counters: Arc<Counters>,
}

impl Heartbeat {
    /// Beats until the worker's consumers have stopped, then leaves the registry.
    pub(crate) fn run(mut self) {
        let interval = (self.backend.lease() / 3).max(Duration::from_millis(20));
        let per_round = (ROUND.as_millis() / interval.as_millis().max(1)).max(1);
        for beat in 0u128.. {
            self.info.last_beat = now_millis();
            self.info.in_flight = self.counters.in_flight.load(Ordering::Relaxed);
            if let Err(err) = self.backend.beat(&self.info) {
                log::warn!("heartbeat of worker {}: {err}", self.info.id);
            }
            for queue in &self.queues {
                if let Err(err) = self.beat(queue) {
                    log::warn!("heartbeat of queue `{queue}`: {err}");
                }
            }
            self.free_unstarted();
            for queue in &self.queues {
                if let Err(err) = self.backend.trim_dead(queue) {
                    log::warn!("applying the dead-letter bounds of `{queue}`: {err}");
                }
            }
            if beat % per_round == 0 {
                self.round();
            }
            if let Err(RecvTimeoutError::Disconnected) = self.stop.recv_timeout(interval) {
                break;
            }
        }
        if let Err(err) = self.backend.unregister(&self.info.id) {
            log::warn!(
                "worker {} could not leave the registry: {err}",
                self.info.id
            );
        }
    }

    /// Renews this worker's leases on `queue` and recovers expired ones (of any process).
    fn beat(&self, queue: &str) -> Result<()> {
        let holders: Vec<(String, u64)> = self
            .consumers
            .iter()
            .filter_map(|c| Some((c.id.clone(), *c.shared.lock().tokens.get(queue)?)))
            .collect();
        let sent = Instant::now();
        let lost = self.backend.renew(queue, &holders, self.backend.lease())?;
        for consumer in self
            .consumers
            .iter()
            .filter(|c| holders.iter().any(|(id, _)| *id == c.id) && !lost.contains(&c.id))
        {
            consumer
                .shared
                .lock()
                .renewed
                .insert(queue.to_owned(), sent);
        }
        for consumer in lost {
            log::warn!("consumer {consumer} lost its lease on `{queue}`: it was cut off for longer than the lease");
        }
        let recovered = self.backend.recover_stale(queue)?;
        if recovered > 0 {
            log::warn!("recovered {recovered} task(s) of queue `{queue}` from expired leases");
        }
        Ok(())
    }

    /// Hands back the tasks a consumer took but has not started while it runs one for
    /// longer than the lease, so that other consumers can run them meanwhile.
    fn free_unstarted(&self) {
        let lease = self.backend.lease();
        for consumer in &self.consumers {
            let mut slot = consumer.shared.lock();
            let Some(running) = slot.running.clone() else {
                continue;
            };
            let Some(queue) = consumer.queues.get(running.queue) else {
                continue;
            };
            let Some(token) = slot.tokens.get(queue).copied() else {
                continue;
            };
            if running.since.elapsed() < lease
                || running.until >= running.taken
                || slot.keep.is_some()
            {
                continue;
            }
            match self
                .backend
                .hand_back_unstarted(queue, &consumer.id, token, running.until)
            {
                Ok(Some(moved)) => {
                    slot.keep = Some(running.until);
                    log::warn!(
                        "consumer {} has run one task of `{queue}` for over {lease:?}: {moved} task(s) it had not started went back to the queue",
                        consumer.id
                    );
                }
                Ok(None) => {}
                Err(err) => log::warn!("handing back unstarted tasks of `{queue}`: {err}"),
            }
        }
    }

    /// Once a round: recovers expired leases on every known queue (also those no live
    /// worker serves) and prunes workers long silent from the registry.
    fn round(&self) {
        if let Err(err) = self.backend.recover_all() {
            log::warn!("recovering expired leases: {err}");
        }
        if let Err(err) = self.backend.prune_workers() {
            log::warn!("pruning the worker registry: {err}");
        }
    }
}
