//! Taking tasks: from the first of a consumer's queues that has some, blocking on their
//! signal lists when all are empty (or ordered and not this consumer's to take from now),
//! and filling a batch.

use std::time::{Duration, Instant};

use super::{Consumer, State};
use crate::backend::Mode;
use crate::error::Result;

impl Consumer {
    /// Settles what is done and takes more from the first queue that has tasks, blocking
    /// when all are empty.
    pub(super) fn take(&self, state: &mut State) -> Result<()> {
        let mode = self.mode();
        if !state.report.is_empty() && state.current != 0 {
            self.settle(state, state.current, 0, mode)?;
        }
        state.parked.clear();
        for queue in 0..self.queues.len() {
            let max = self.max_take(state, queue);
            let items = self.settle(state, queue, max, mode)?;
            if !items.is_empty() {
                state.current = queue;
                state.taken = items;
                return self.fill_batch(state);
            }
        }
        if self.stopping() {
            return Ok(());
        }
        let block = self.backend.config().block_timeout;
        let all = self.queue_names();
        match mode {
            // Woken (or timed out): the next step claims.
            Mode::Claim | Mode::Fill if !state.parked.is_empty() => self.wait_parked(state)?,
            Mode::Claim | Mode::Fill => {
                state.redis.wait(&all, block)?;
            }
            Mode::Pop => {
                if let Some((queue, payload)) = state.redis.pop_blocking(&all, block)? {
                    state.current = queue;
                    state.taken = vec![payload];
                    return self.fill_batch(state);
                }
            }
        }
        Ok(())
    }

    /// Every queue was empty, or ordered and not this consumer's to take from now: waits
    /// on the signal lists of the others (an ordered queue's signals wake its owner), at
    /// most until a parked queue may be claimed again.
    fn wait_parked(&self, state: &mut State) -> Result<()> {
        let block = self.backend.config().block_timeout;
        let until = state
            .parked
            .iter()
            .map(|(_, wait)| *wait)
            .min()
            .unwrap_or(block)
            .clamp(Duration::from_millis(1), block);
        let free: Vec<&str> = (0..self.queues.len())
            .filter(|q| state.parked.iter().all(|(parked, _)| parked != q))
            .map(|q| self.queues[q].name.as_str())
            .collect();
        if free.is_empty() {
            // Sleeps until then or shutdown starts.
            let _ = self.wake.recv_timeout(until);
        } else {
            state.redis.wait(&free, until)?;
        }
        Ok(())
    }

    /// When the current queue has batch tasks and fewer items than a batch were taken,
    /// waits up to the batch wait for more.
    fn fill_batch(&self, state: &mut State) -> Result<()> {
        let queue = state.current;
        let batch = self.queues[queue].batch;
        if batch == 0 || state.taken.len() >= batch || self.batch_wait.is_zero() {
            return Ok(());
        }
        let mode = self.mode();
        let deadline = Instant::now() + self.batch_wait;
        let name = [self.queues[queue].name.as_str()];
        loop {
            let now = Instant::now();
            if state.taken.len() >= batch || now >= deadline || self.stopping() {
                return Ok(());
            }
            match mode {
                Mode::Claim | Mode::Fill => {
                    state.redis.wait(&name, deadline - now)?;
                }
                Mode::Pop => {
                    if let Some((_, payload)) = state.redis.pop_blocking(&name, deadline - now)? {
                        state.taken.push(payload);
                    }
                }
            }
            let fill = match mode {
                Mode::Claim => Mode::Fill,
                other => other,
            };
            let more = self.settle(state, queue, batch.saturating_sub(state.taken.len()), fill)?;
            state.taken.extend(more);
        }
    }
}
