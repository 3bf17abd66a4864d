//! One consumer thread: takes tasks from its queues, runs them, settles them.
//!
//! At least once: tasks are claimed into the consumer's own list of each queue under a
//! lease and acknowledged by the next settle, which also records what became of them
//! (the claim protocol, `backend/claim.rs`). When every queue is empty the consumer
//! blocks on their signal lists, which each enqueue rings. At most once: tasks are
//! popped, blocking on the lanes themselves. A consumer serving several queues takes from
//! the first that has tasks (strict priority), and within a queue from its high lane
//! first. Several tasks are taken per round trip (the prefetch, adapted to how long tasks
//! take; a batch task's batch size), items of a batch task are run together, and a Redis
//! error never ends the thread: it backs off, reconnects and resynchronises.
//!
//! This file is the loop; `run.rs` runs a task or a batch; `outcome.rs` records what
//! became of it.

mod outcome;
mod run;
mod shared;
mod sync;
mod take;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

pub(crate) use outcome::Counters;
use outcome::Recorder;
pub(crate) use shared::{Running, Shared};

use crate::backend::{
    ClaimConnection, Delivery, Mode, Payload, RedisQueueBackend, Report, Settled, Take, CLAIM_MAX,
};
use crate::error::Result;
use crate::registry::Registry;
use crate::wire::{self, Task};

/// Work done per claim that the adaptive prefetch aims at.
const PREFETCH_TARGET: Duration = Duration::from_millis(5);

/// One queue a consumer serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerQueue {
    pub(crate) name: String,
    /// The largest batch of the batch tasks registered on this queue (0: none).
    pub(crate) batch: usize,
    /// Whether its tasks may keep status records: false when every task registered on
    /// it has `store_result = false`, so that claims skip marking tasks `processing`
    /// (a task with a record routed there still ends `done`, `failed` or `dead`).
    pub(crate) records: bool,
    /// Whether it is ordered: one consumer at a time takes from it (its owner), and a
    /// retry holds it.
    pub(crate) ordered: bool,
}

/// What one consumer thread needs.
pub(crate) struct Consumer {
    pub(crate) backend: RedisQueueBackend,
    /// The queues served, highest priority first.
    pub(crate) queues: Vec<ConsumerQueue>,
    pub(crate) id: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) wake: Receiver<()>,
    pub(crate) max_prefetch: usize,
    /// How long a batch may wait to fill once its first items are taken.
    pub(crate) batch_wait: Duration,
    /// What it shares with the heartbeat.
    pub(crate) shared: Arc<Shared>,
}

/// The consumer's view of the tasks it holds.
struct State {
    redis: ClaimConnection,
    /// The queue `taken` came from.
    current: usize,
    /// Tasks taken, in order: the first `report.done` have finished.
    taken: Vec<Payload>,
    /// What became of the finished ones, sent with the next settle.
    report: Report,
    /// After an error: reread the claimed lists before going on.
    resync: bool,
    /// The lease on the current queue was not confirmed for half a lease: settle (renewing
    /// it, or learning it is lost) before starting another task.
    verify: bool,
    /// When the only task taken is a suspect (a lease ran out while a consumer held it):
    /// how many times that happened.
    suspect: u64,
    /// Mean run time of recent tasks, for the prefetch.
    mean_run: Duration,
    /// Ordered queues found owned by another consumer or held for a retry in the last
    /// round of claims, with how long to wait before claiming there again.
    parked: Vec<(usize, Duration)>,
}

impl Consumer {
    /// Runs until the stop flag is set, then hands back what it has not started.
    pub(crate) fn run(self) {
        let mut state = State {
            redis: ClaimConnection::new(self.backend.clone(), self.id.clone()),
            current: 0,
            taken: Vec::new(),
            report: Report::default(),
            resync: false,
            verify: false,
            suspect: 0,
            // Pessimistic until measured: the first claim takes one task.
            mean_run: PREFETCH_TARGET,
            parked: Vec::new(),
        };
        let mut backoff = Duration::ZERO;
        while !self.stopping() {
            match self.step(&mut state) {
                Ok(()) => backoff = Duration::ZERO,
                Err(err) => {
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
                    log::warn!("consumer {}: {err}; retrying in {backoff:?}", self.id);
                    state.redis.disconnect();
                    state.resync = true;
                    // Sleeps until the backoff passes or shutdown starts.
                    let _ = self.wake.recv_timeout(backoff);
                }
            }
        }
        self.hand_back(&mut state);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn step(&self, state: &mut State) -> Result<()> {
        if state.resync {
            self.resync(state)?;
        }
        if state.verify {
            state.verify = false;
            self.settle(state, state.current, 0, self.mode())?;
        }
        if state.report.done == state.taken.len() {
            self.take(state)?;
        }
        self.run_taken(state);
        Ok(())
    }

    fn delivery(&self) -> Delivery {
        self.backend.config().delivery
    }

    fn mode(&self) -> Mode {
        match self.delivery() {
            Delivery::AtLeastOnce => Mode::Claim,
            Delivery::AtMostOnce => Mode::Pop,
        }
    }

    fn queue_names(&self) -> Vec<&str> {
        self.queues.iter().map(|q| q.name.as_str()).collect()
    }

    fn max_take(&self, state: &State, queue: usize) -> usize {
        let nanos = state.mean_run.as_nanos().max(1);
        let fit = usize::try_from(PREFETCH_TARGET.as_nanos() / nanos).unwrap_or(usize::MAX);
        let prefetch = fit.clamp(1, self.max_prefetch.clamp(1, CLAIM_MAX));
        prefetch.max(self.queues[queue].batch.min(CLAIM_MAX))
    }

    /// One settle round trip on `queue`, taking up to `max`. When `queue` is the current
    /// one, it settles the finished work too, which is then gone from the state.
    fn settle(
        &self,
        state: &mut State,
        queue: usize,
        max: usize,
        mode: Mode,
    ) -> Result<Vec<Payload>> {
        let settles = queue == state.current && !state.report.is_empty();
        let nothing = Report::default();
        let report = if settles { &state.report } else { &nothing };
        let q = &self.queues[queue];
        let take = Take {
            track: q.records,
            ordered: q.ordered,
            // A batch's items of one key fail as a unit; a plain task's retry stops the
            // later tasks of its key this consumer took (`Report::stopped`).
            per_key: if q.batch > 0 { q.batch } else { CLAIM_MAX },
        };
        let sent = Instant::now();
        let settled = state.redis.settle(&q.name, report, mode, max, take);
        self.publish_token(state, queue);
        let settled = settled?;
        if settled != Settled::Stale {
            self.shared.lock().renewed.insert(q.name.clone(), sent);
        }
        if settles && settled != Settled::Stale {
            state.taken.drain(..state.report.done);
            state.report.clear();
        }
        match settled {
            Settled::Taken { items, suspect } => {
                state.suspect = suspect;
                Ok(items)
            }
            Settled::Busy => {
                let block = self.backend.config().block_timeout;
                state.parked.push((queue, block));
                Ok(Vec::new())
            }
            Settled::Held { ms } => {
                // A retry holds the queue: what this consumer took after the retried
                // task went back to the head with it.
                if queue == state.current {
                    state.taken.clear();
                }
                state.parked.push((queue, Duration::from_millis(ms)));
                Ok(Vec::new())
            }
            Settled::Stale => {
                self.lost_lease(state, queue);
                Ok(Vec::new())
            }
        }
    }

    /// Tells the heartbeat the consumer's current token on `queue` (it renews the lease).
    fn publish_token(&self, state: &State, queue: usize) {
        let name = &self.queues[queue].name;
        let mut slot = self.shared.lock();
        match state.redis.token(name) {
            Some(token) => slot.tokens.insert(name.clone(), token),
            None => slot.tokens.remove(name),
        };
    }

    /// Whether the consumer's lease on `queue` was last confirmed (by a settle or the
    /// heartbeat's renewal, from when it was sent) half a lease ago or more: it may have
    /// run out meanwhile (a pause: SIGSTOP, a frozen VM), and another worker may hold its
    /// tasks. At most once has no lease.
    fn lease_in_doubt(&self, slot: &shared::Slot, queue: &str) -> bool {
        self.delivery() == Delivery::AtLeastOnce
            && slot
                .renewed
                .get(queue)
                .is_some_and(|at| at.elapsed() >= self.backend.config().lease / 2)
    }

    /// Runs the taken tasks in order until they are done or shutdown starts; a suspect
    /// past the quarantine limit is set aside instead. Before each task it gives up the
    /// tasks the heartbeat handed back meanwhile (it ran past its lease on the one before).
    fn run_taken(&self, state: &mut State) {
        let started = Instant::now();
        let first = state.report.done;
        let queue = &self.queues[state.current];
        let config = self.backend.config();
        let mut recorder = Recorder {
            counters: &self.counters,
            report: &mut state.report,
            queue: &queue.name,
            consumer: &self.id,
            backoff: config.backoff,
            track: queue.records,
            ordered: queue.ordered,
            max_payload: config.max_payload,
        };
        let limit = config.quarantine_after;
        if state.suspect > 0 && limit > 0 && state.suspect >= limit {
            if let Some(payload) = state.taken.first() {
                quarantine(&mut recorder, payload, state.suspect);
                recorder.report.done = 1;
            }
        }
        state.suspect = 0;
        loop {
            let done = recorder.report.done;
            {
                let mut slot = self.shared.lock();
                if let Some(keep) = slot.keep.take() {
                    state.taken.truncate(keep.max(done));
                }
                if done >= state.taken.len() || self.stopping() {
                    break;
                }
                if self.lease_in_doubt(&slot, &queue.name) {
                    // Paused, or cut off, for half a lease: the next step settles first,
                    // which renews the lease, or finds the tasks went back.
                    state.verify = true;
                    break;
                }
                let span = if queue.batch > 0 { queue.batch } else { 1 };
                slot.running = Some(Running {
                    queue: state.current,
                    since: Instant::now(),
                    until: (done + span).min(state.taken.len()),
                    taken: state.taken.len(),
                });
            }
            let stopped = &recorder.report.stopped;
            let used = if !stopped.is_empty()
                && wire::leading_key(&state.taken[done]).is_some_and(|k| stopped.contains(&k))
            {
                // Behind a retry of its key: not started (it stays at its key's head).
                1
            } else {
                self.process(&state.taken[done..], &mut recorder)
            };
            recorder.report.done += used.max(1);
            self.shared.lock().running = None;
            if recorder.report.holds {
                // Nothing may start before the retry: the next settle holds the queue
                // and hands back what was taken after it.
                state.taken.truncate(recorder.report.done);
                break;
            }
        }
        let ran = state.report.done - first;
        if ran > 0 {
            let per_task = started.elapsed() / u32::try_from(ran).unwrap_or(u32::MAX);
            state.mean_run = (state.mean_run * 3 + per_task) / 4;
        }
    }
}

/// Sets aside a task that was held `deliveries` times when a lease ran out, without
/// running it: it most likely kills its worker.
fn quarantine(recorder: &mut Recorder<'_>, payload: &[u8], deliveries: u64) {
    let task = std::str::from_utf8(payload)
        .ok()
        .and_then(|t| Task::decode(t).ok());
    let id = task.as_ref().and_then(|t| t.id.as_deref());
    let name = task.as_ref().map(|t| t.name.as_ref());
    let attempts = task.as_ref().map_or(0, |t| t.attempts);
    let reason = format!(
        "worker died {deliveries} times running it (its lease ran out each time without an \
         acknowledgement): set aside so that it cannot stop the queue"
    );
    recorder.dead(payload, id, name, attempts, 0, &reason);
}
