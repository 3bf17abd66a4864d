//! The worker registry's writes: heartbeats, leaving, and pruning workers long silent.

use super::RedisQueueBackend;
use crate::clock::{millis, now_millis};
use crate::error::{Error, Result};
use crate::status::WorkerInfo;

/// Leases of silence after which a worker's entry is removed.
pub(crate) const PRUNE_AFTER_LEASES: u64 = 10;

impl RedisQueueBackend {
    /// Writes this worker's heartbeat into the registry, and adds its queues to the known
    /// queues (so that a worker that started while Redis was down registers them once it
    /// answers): two commands, as the two keys may be on two cluster nodes.
    pub(crate) fn beat(&self, info: &WorkerInfo) -> Result<()> {
        let ns = self.namespace_keys();
        let json = serde_json::to_string(info).map_err(Error::Serialize)?;
        let mut con = self.connection()?;
        con.run(|c| {
            redis::cmd("HSET")
                .arg(ns.workers())
                .arg(&info.id)
                .arg(json)
                .query::<()>(c)
        })?;
        drop(con);
        self.register_queues(&info.queues)
    }

    /// Removes a worker from the registry.
    pub(crate) fn unregister(&self, id: &str) -> Result<()> {
        let key = self.namespace_keys().workers();
        let mut con = self.connection()?;
        con.run(|c| redis::cmd("HDEL").arg(&key).arg(id).query::<()>(c))?;
        Ok(())
    }

    /// Removes the entries of workers silent for [`PRUNE_AFTER_LEASES`] of their leases,
    /// and unreadable ones; says how many went.
    pub(crate) fn prune_workers(&self) -> Result<usize> {
        let now = now_millis();
        let stale: Vec<String> = self
            .worker_entries()?
            .into_iter()
            .filter(|(_, info)| match info {
                Some(info) => now.saturating_sub(info.last_beat) > self.prune_after(info),
                None => true,
            })
            .map(|(id, _)| id)
            .collect();
        if !stale.is_empty() {
            let key = self.namespace_keys().workers();
            let mut con = self.connection()?;
            con.run(|c| redis::cmd("HDEL").arg(&key).arg(&stale).query::<()>(c))?;
        }
        Ok(stale.len())
    }

    /// The lease a worker's entry announces, or this backend's for old entries.
    pub(crate) fn lease_of(&self, info: &WorkerInfo) -> u64 {
        if info.lease_ms > 0 {
            info.lease_ms
        } else {
            millis(self.config.lease)
        }
    }

    /// How long a worker may be silent before its entry is pruned (ms).
    pub(crate) fn prune_after(&self, info: &WorkerInfo) -> u64 {
        self.lease_of(info).saturating_mul(PRUNE_AFTER_LEASES)
    }
}
