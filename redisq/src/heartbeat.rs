//! A worker's heartbeat thread: every third of the lease it writes the worker's entry in
//! the registry, renews the leases of the worker's consumers, recovers the tasks of
//! consumers (of any process) whose lease ran out, and prunes long-silent workers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::backend::RedisQueueBackend;
use crate::clock::now_millis;
use crate::consumer::Counters;
use crate::error::Result;
use crate::status::WorkerInfo;

/// Renews the leases of one worker's consumers and recovers expired ones.
pub(crate) struct Heartbeat {
    pub(crate) backend: RedisQueueBackend,
    /// Queue → the ids of the consumers serving it.
    pub(crate) consumers: BTreeMap<String, Vec<String>>,
    /// Disconnected when the worker shuts down.
    pub(crate) wake: Receiver<()>,
    /// This worker's entry in the registry.
    pub(crate) info: WorkerInfo,
    pub(crate) counters: Arc<Counters>,
}

impl Heartbeat {
    /// Beats until the worker shuts down, then leaves the registry.
    pub(crate) fn run(mut self) {
        let interval = (self.backend.lease() / 3).max(Duration::from_millis(20));
        loop {
            self.info.last_beat = now_millis();
            self.info.in_flight = self.counters.in_flight.load(Ordering::Relaxed);
            if let Err(err) = self.backend.beat(&self.info) {
                log::warn!("heartbeat of worker {}: {err}", self.info.id);
            }
            for (queue, consumers) in &self.consumers {
                if let Err(err) = self.beat(queue, consumers) {
                    log::warn!("heartbeat of queue `{queue}`: {err}");
                }
            }
            if let Err(err) = self.backend.prune_workers() {
                log::warn!("pruning the worker registry: {err}");
            }
            if let Err(RecvTimeoutError::Disconnected) = self.wake.recv_timeout(interval) {
                if let Err(err) = self.backend.unregister(&self.info.id) {
                    log::warn!(
                        "worker {} could not leave the registry: {err}",
                        self.info.id
                    );
                }
                return;
            }
        }
    }

    fn beat(&self, queue: &str, consumers: &[String]) -> Result<()> {
        self.backend.renew(queue, consumers, self.backend.lease())?;
        let recovered = self.backend.recover_stale(queue)?;
        if recovered > 0 {
            log::warn!("recovered {recovered} task(s) of queue `{queue}` from expired leases");
        }
        Ok(())
    }
}
