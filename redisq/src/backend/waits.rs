//! A consumer's blocking waits: on its queues' signal lists when they are empty, and the
//! blocking pop of at-most-once delivery; on a cluster, per slot.

use std::time::{Duration, Instant};

use super::claim::{ClaimConnection, Payload};
use super::waiters::SlotWaiters;
use crate::error::Result;
use crate::schema::LANES;

impl ClaimConnection {
    /// Waits up to `timeout` for a wake-up token on any of the queues' signal lists; true
    /// when one came (tasks may be waiting: claim them with [`settle`](Self::settle)).
    ///
    /// On a cluster one blocking pop can only name keys of one slot: queues in several
    /// slots are waited on by a waiter thread per slot (`waiters.rs`), so that a worker's
    /// queues may be on any nodes and any of them wakes it at once.
    pub(crate) fn wait(&mut self, queues: &[&str], timeout: Duration) -> Result<bool> {
        let groups: Vec<Vec<String>> = self
            .slot_groups(queues)
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|queue| self.backend.keys(queue).signal())
                    .collect()
            })
            .collect();
        if groups.len() > 1 {
            if !self.waiters.as_ref().is_some_and(|w| w.serves(&groups)) {
                self.waiters = Some(SlotWaiters::start(&self.backend, groups)?);
            }
            return Ok(self.waiters.as_mut().is_some_and(|w| w.wait(timeout)));
        }
        let woke: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(groups.concat())
            .arg(timeout.max(Duration::from_millis(10)).as_secs_f64())
            .query(self.con()?)?;
        Ok(woke.is_some())
    }

    /// `queues` grouped by slot on a cluster, in their order (all in one group on a single
    /// server, where a blocking pop may name any keys).
    fn slot_groups<'q>(&self, queues: &[&'q str]) -> Vec<Vec<&'q str>> {
        if !self.backend.is_cluster() {
            return vec![queues.to_vec()];
        }
        let mut groups: Vec<(u16, Vec<&str>)> = Vec::new();
        for queue in queues {
            let slot = self.backend.queue_slot(queue);
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, group)) => group.push(queue),
                None => groups.push((slot, vec![queue])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// Waits up to `timeout` for one task in any lane of any of the queues, in their
    /// order, and pops it without a lease (at most once). Returns the queue's index and
    /// the payload. On a cluster, queues in several slots are waited on in turn, each slot
    /// for its share of `timeout` (at least 10 ms): a popped task must not be left with a
    /// waiter thread.
    pub(crate) fn pop_blocking(
        &mut self,
        queues: &[&str],
        timeout: Duration,
    ) -> Result<Option<(usize, Payload)>> {
        let groups = self.slot_groups(queues);
        let share = (timeout / u32::try_from(groups.len().max(1)).unwrap_or(1))
            .max(Duration::from_millis(10));
        let deadline = Instant::now() + timeout;
        for group in groups.iter().cycle() {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut cmd = redis::cmd("BLPOP");
            let mut lanes = Vec::new();
            for queue in group {
                let index = queues.iter().position(|q| q == queue).unwrap_or(0);
                let keys = self.backend.keys(queue);
                for lane in LANES {
                    let key = keys.lane(lane);
                    cmd.arg(&key);
                    lanes.push((key, index));
                }
            }
            let popped: Option<(String, Payload)> = cmd
                .arg(share.min(left).max(Duration::from_millis(10)).as_secs_f64())
                .query(self.con()?)?;
            if let Some((key, payload)) = popped {
                return Ok(lanes
                    .iter()
                    .find(|(lane, _)| *lane == key)
                    .map(|(_, index)| (*index, payload)));
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Ok(None)
    }
}
