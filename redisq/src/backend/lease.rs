//! Leases: renewing the consumers' leases, and handing back the tasks of consumers whose
//! lease ran out (crashed or paused workers) or that are still busy past a shutdown
//! deadline.

use std::time::Duration;

use super::scripts::{EXPIRED, RECOVER, RENEW};
use super::settle::settle_call;
use super::RedisQueueBackend;
use crate::clock::millis;
use crate::error::Result;
use crate::task::Priority;

/// Expired consumers listed per round trip.
const PAGE: usize = 100;

impl RedisQueueBackend {
    /// Returns to the head of `queue` the tasks held by consumers (of any process) whose
    /// lease ran out, in their order, and says how many moved. Running workers do this by
    /// themselves at every heartbeat; this is the on-demand form.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn recover_stale(&self, queue: &str) -> Result<usize> {
        let keys = self.keys(queue);
        let mut con = self.connection()?;
        let mut total = 0;
        loop {
            let expired: Vec<String> =
                con.run(|c| EXPIRED.key(keys.leases()).arg(PAGE).invoke(c))?;
            for consumer in &expired {
                let moved: i64 = con.run(|c| {
                    RECOVER
                        .key(keys.lane(Priority::Normal))
                        .key(keys.claimed(consumer))
                        .key(keys.leases())
                        .key(keys.signal())
                        .key(keys.counters())
                        .key(keys.state())
                        .arg(consumer)
                        .invoke(c)
                })?;
                // -1: renewed in the meantime.
                total += usize::try_from(moved).unwrap_or(0);
            }
            if expired.len() < PAGE {
                return Ok(total);
            }
        }
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

    /// Renews the leases of several consumers of one queue for `lease`.
    pub(crate) fn renew(&self, queue: &str, consumers: &[String], lease: Duration) -> Result<()> {
        let keys = self.keys(queue);
        let mut invocation = RENEW.key(keys.leases());
        invocation.arg(millis(lease));
        for consumer in consumers {
            invocation.arg(consumer);
        }
        let mut con = self.connection()?;
        let _: i64 = con.run(|c| invocation.invoke(c))?;
        Ok(())
    }

    /// Returns a busy consumer's claimed tasks to the head of `queue` at once, dropping
    /// its lease and acknowledging nothing: for a consumer still busy past a shutdown
    /// deadline.
    pub(crate) fn release_consumer(&self, queue: &str, consumer: &str) -> Result<usize> {
        let keys = self.keys(queue);
        let invocation = settle_call(self, &keys, consumer)
            .mode("release")
            .invocation();
        let mut con = self.connection()?;
        let moved: Vec<usize> = con.run(|c| invocation.invoke(c))?;
        Ok(moved.first().copied().unwrap_or(0))
    }
}
