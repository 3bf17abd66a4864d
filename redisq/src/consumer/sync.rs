//! A consumer's ways back to a known state: resynchronising with its claimed lists after
//! an error, giving up what it held when its lease was lost, and handing back at shutdown.

use super::{Consumer, State};
use crate::backend::{Delivery, Mode, Report};
use crate::error::Result;

impl Consumer {
    /// After a failed round trip: rereads the claimed lists, which are the truth, and the
    /// queue's fence of this consumer, which says whether the last settle landed. If it
    /// did not, the finished tasks are still at the head of the current list: settle them
    /// again (with their outcomes). If the lease is gone, they went back to the queue. Then
    /// go on with whatever the lists hold, one queue at a time.
    pub(super) fn resync(&self, state: &mut State) -> Result<()> {
        if self.delivery() == Delivery::AtMostOnce {
            // Popped tasks are only here, and outcomes are idempotent: keep both.
            state.resync = false;
            return Ok(());
        }
        for queue in 0..self.queues.len() {
            let name = &self.queues[queue].name;
            let landed = state.redis.landed(name)?;
            self.publish_token(state, queue);
            let mut claimed = state.redis.claimed(name)?;
            if queue == state.current && !state.report.is_empty() {
                match landed {
                    Some(false) => {
                        // The settle did not land: repeat it on the list as it is.
                        state.report.done = state.report.done.min(claimed.len());
                        state.taken = claimed;
                        self.settle(state, queue, 0, Mode::Claim)?;
                        claimed = std::mem::take(&mut state.taken);
                    }
                    Some(true) => state.report.clear(),
                    None => self.lost_lease(state, queue),
                }
            }
            // Acted on: what is in flight there is settled one way or the other.
            state.redis.forget_in_flight(name);
            if !claimed.is_empty() {
                state.current = queue;
                state.taken = claimed;
                state.report.clear();
                state.suspect = 0;
                // Stay in resync until every list has been worked off.
                return Ok(());
            }
        }
        state.taken.clear();
        state.report.clear();
        state.resync = false;
        Ok(())
    }

    /// This consumer's lease on `queue` ran out while it was away (paused, cut off): the
    /// tasks it held went back and may run elsewhere, so what it did with them is not
    /// recorded.
    pub(super) fn lost_lease(&self, state: &mut State, queue: usize) {
        if queue != state.current {
            return;
        }
        let unsettled = state.report.done;
        log::warn!(
            "consumer {}: its lease on `{}` ran out (it was paused or cut off for longer than \
             the lease); {unsettled} finished task(s) are not recorded, {} went back to the queue",
            self.id,
            self.queues[queue].name,
            state.taken.len().saturating_sub(unsettled)
        );
        state.taken.clear();
        state.report.clear();
        state.suspect = 0;
    }

    /// Settles what is done and returns what was not started to its queue.
    pub(super) fn hand_back(&self, state: &mut State) {
        let unstarted = state.taken.len().saturating_sub(state.report.done);
        let result = match self.delivery() {
            Delivery::AtLeastOnce => self.release(state),
            Delivery::AtMostOnce => (|| {
                let rest = state.taken.split_off(state.report.done);
                let current = state.current;
                self.settle(state, current, 0, Mode::Pop)?;
                state.redis.push_front(&self.queues[current].name, &rest)
            })(),
        };
        if let Err(err) = result {
            log::warn!(
                "consumer {} could not hand back {unstarted} task(s): {err}{}",
                self.id,
                if self.delivery() == Delivery::AtLeastOnce {
                    "; they return to the queue when the lease runs out"
                } else {
                    ""
                }
            );
        }
    }

    /// At least once: settles the current queue and hands back every claimed task not
    /// finished, on every queue, dropping the leases.
    fn release(&self, state: &mut State) -> Result<()> {
        if state.resync {
            self.resync(state)?;
        }
        let current = state.current;
        let released = state
            .redis
            .release(&self.queues[current].name, &state.report);
        self.publish_token(state, current);
        if released?.is_none() {
            self.lost_lease(state, current);
        }
        state.report.clear();
        let nothing = Report::default();
        for queue in (0..self.queues.len()).filter(|q| *q != current) {
            let released = state.redis.release(&self.queues[queue].name, &nothing);
            self.publish_token(state, queue);
            released?;
        }
        Ok(())
    }
}
