//! Leases: renewing the consumers' leases (while their fencing token is still theirs),
//! handing back the tasks of consumers whose lease ran out (crashed or paused workers), of
//! consumers still busy past a shutdown deadline, and the unstarted tasks of a consumer
//! stuck on a long task; and applying the dead-letter bounds periodically.

use std::time::Duration;

use super::scripts::{Call, Function, EXPIRED, RECOVER, RENEW, RETENTION};
use super::settle::settle_call;
use super::RedisQueueBackend;
use crate::clock::millis;
use crate::error::Result;

/// Expired consumers listed per round trip.
const PAGE: usize = 100;

/// A placeholder consumer for queue scripts that serve none.
const NO_CONSUMER: &str = "-";

impl RedisQueueBackend {
    /// Returns to the head of `queue`'s lanes the tasks held by consumers (of any process)
    /// whose lease ran out, in their order, and says how many moved. Running workers do
    /// this by themselves at every heartbeat; this is the on-demand form.
    ///
    /// Each task handed back so counts a delivery: one that was held when a lease ran out
    /// is then claimed alone, and after [`with_quarantine_after`] such deliveries (3 by
    /// default) it is set aside as a dead letter instead of being run again.
    ///
    /// [`with_quarantine_after`]: RedisQueueBackend::with_quarantine_after
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn recover_stale(&self, queue: &str) -> Result<usize> {
        let keys = self.keys(queue);
        let mut con = self.connection()?;
        let mut total = 0;
        loop {
            let mut list = EXPIRED.call();
            for key in keys.script_keys(NO_CONSUMER) {
                list.key(key);
            }
            list.arg(PAGE);
            let expired: Vec<String> = con.run(|c| list.invoke(c))?;
            for consumer in &expired {
                let mut recover = self.queue_script(&RECOVER, queue, consumer);
                recover.arg(consumer).arg("expired").arg(0).arg(0);
                let moved: i64 = con.run(|c| recover.invoke(c))?;
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

    /// Renews for `lease` the leases of consumers of one queue, `(consumer, token)`, whose
    /// token is still their fence; returns the consumers whose lease is gone.
    pub(crate) fn renew(
        &self,
        queue: &str,
        consumers: &[(String, u64)],
        lease: Duration,
    ) -> Result<Vec<String>> {
        if consumers.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.queue_script(&RENEW, queue, NO_CONSUMER);
        invocation.arg(millis(lease));
        for (consumer, token) in consumers {
            invocation.arg(consumer).arg(token);
        }
        let mut con = self.connection()?;
        Ok(con.run(|c| invocation.invoke(c))?)
    }

    /// Hands back to the head of their lanes the tasks `consumer` (holding `token`)
    /// claimed on `queue` after its first `keep`: the unstarted tasks of a consumer stuck
    /// on a long one. `None` when the token is no longer its fence.
    pub(crate) fn hand_back_unstarted(
        &self,
        queue: &str,
        consumer: &str,
        token: u64,
        keep: usize,
    ) -> Result<Option<usize>> {
        let mut invocation = self.queue_script(&RECOVER, queue, consumer);
        invocation
            .arg(consumer)
            .arg("unstarted")
            .arg(token)
            .arg(keep);
        let mut con = self.connection()?;
        let moved: i64 = con.run(|c| invocation.invoke(c))?;
        Ok(usize::try_from(moved).ok())
    }

    /// Returns a busy consumer's claimed tasks to the head of `queue`'s lanes at once,
    /// dropping its lease and acknowledging nothing: for a consumer still busy past a
    /// shutdown deadline (its settles are refused from then on).
    pub(crate) fn release_consumer(&self, queue: &str, consumer: &str) -> Result<usize> {
        let keys = self.keys(queue);
        let invocation = settle_call(self, &keys, consumer)
            .mode("evict")
            .invocation();
        let mut con = self.connection()?;
        let (_, _, moved, _): (String, String, String, Vec<Vec<u8>>) =
            con.run(|c| invocation.invoke(c))?;
        Ok(moved.parse().unwrap_or(0))
    }

    /// Applies `queue`'s dead-letter bounds now; says how many letters went.
    pub(crate) fn trim_dead(&self, queue: &str) -> Result<usize> {
        let config = self.config();
        let mut invocation = self.queue_script(&RETENTION, queue, NO_CONSUMER);
        invocation
            .arg(config.dead_max)
            .arg(config.dead_max_age_ms())
            .arg(config.dead_max_bytes);
        let mut con = self.connection()?;
        Ok(con.run(|c| invocation.invoke(c))?)
    }

    /// `script` with `queue`'s keys (and `consumer`'s) as its first `KEYS`.
    pub(super) fn queue_script(
        &self,
        script: &'static Function,
        queue: &str,
        consumer: &str,
    ) -> Call {
        let mut invocation = script.call();
        for key in self.keys(queue).script_keys(consumer) {
            invocation.key(key);
        }
        invocation
    }
}
