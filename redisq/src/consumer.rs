//! One consumer thread: takes tasks from one queue, runs them, acknowledges them.
//!
//! At-least-once: tasks are claimed into the consumer's own list under a lease
//! ([`ops::claim`], or [`ops::claim_blocking`] when the queue is empty) and acknowledged
//! by the next claim. At-most-once: tasks are popped. Either way several tasks may be
//! taken per round trip (the prefetch, adapted to how long tasks take), and a Redis error
//! never ends the thread: it backs off, reconnects and resynchronises.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use redis::Connection;
use serde::Serialize;

use crate::backend::ops::{self, Payload};
use crate::backend::{Delivery, RedisQueueBackend};
use crate::dispatch::{Args, CallError};
use crate::error::Result;
use crate::keys::QueueKeys;
use crate::registry::Registry;
use crate::task::{now_millis, Task};

/// Work done per claim that the adaptive prefetch aims at.
const PREFETCH_TARGET: Duration = Duration::from_millis(5);

/// Counters shared by the consumers of one worker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) processed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dead: AtomicU64,
}

/// What one consumer thread needs.
pub(crate) struct Consumer {
    pub(crate) backend: RedisQueueBackend,
    pub(crate) queue: String,
    pub(crate) id: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) wake: Receiver<()>,
    pub(crate) max_prefetch: usize,
}

/// The consumer's view of the tasks it holds.
struct State {
    keys: QueueKeys,
    con: Option<Connection>,
    /// Tasks taken and not yet started, in order, after `done` finished ones.
    taken: Vec<Payload>,
    /// How many of `taken` have finished (and, at least once, await acknowledgement).
    done: usize,
    /// After an error: reread the claimed list before going on.
    resync: bool,
    /// Mean run time of recent tasks, for the prefetch.
    mean_run: Duration,
}

impl Consumer {
    /// Runs until the stop flag is set, then hands back what it has not started.
    pub(crate) fn run(self) {
        let mut state = State {
            keys: self.backend.keys(&self.queue),
            con: None,
            taken: Vec::new(),
            done: 0,
            resync: false,
            // Pessimistic until measured: the first claim takes one task.
            mean_run: PREFETCH_TARGET,
        };
        let mut backoff = Duration::ZERO;
        while !self.stop.load(Ordering::Acquire) {
            match self.step(&mut state) {
                Ok(()) => backoff = Duration::ZERO,
                Err(err) => {
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
                    log::warn!(
                        "consumer {} of queue `{}`: {err}; retrying in {backoff:?}",
                        self.id,
                        self.queue
                    );
                    state.con = None;
                    state.resync = true;
                    // Sleeps until the backoff passes or shutdown starts.
                    let _ = self.wake.recv_timeout(backoff);
                }
            }
        }
        self.hand_back(&mut state);
    }

    fn step(&self, state: &mut State) -> Result<()> {
        if state.con.is_none() {
            state.con = Some(self.backend.dedicated_connection()?);
        }
        self.resync_if_needed(state)?;
        if state.done == state.taken.len() {
            self.take(state)?;
        }
        self.run_taken(state)
    }

    fn delivery(&self) -> Delivery {
        self.backend.config().delivery
    }

    fn prefetch(&self, state: &State) -> usize {
        let nanos = state.mean_run.as_nanos().max(1);
        let fit = PREFETCH_TARGET.as_nanos() / nanos;
        usize::try_from(fit)
            .unwrap_or(usize::MAX)
            .clamp(1, self.max_prefetch.max(1))
    }

    /// Acknowledges what is done and takes more, blocking when the queue is empty.
    fn take(&self, state: &mut State) -> Result<()> {
        let config = self.backend.config();
        let max = self.prefetch(state);
        let Some(con) = state.con.as_mut() else {
            return Ok(());
        };
        match self.delivery() {
            Delivery::AtLeastOnce => {
                let items = ops::claim(con, &state.keys, &self.id, config.lease, state.done, max)?;
                state.taken = items;
                state.done = 0;
                if state.taken.is_empty() && !self.stop.load(Ordering::Acquire) {
                    if let Some(item) =
                        ops::claim_blocking(con, &state.keys, &self.id, config.block_timeout)?
                    {
                        state.taken.push(item);
                    }
                }
            }
            Delivery::AtMostOnce => {
                state.taken = ops::pop(con, &state.keys, max)?;
                state.done = 0;
                if state.taken.is_empty() && !self.stop.load(Ordering::Acquire) {
                    if let Some(item) = ops::pop_blocking(con, &state.keys, config.block_timeout)? {
                        state.taken.push(item);
                    }
                }
            }
        }
        Ok(())
    }

    fn resync_if_needed(&self, state: &mut State) -> Result<()> {
        if state.resync {
            self.resync(state)?;
        }
        Ok(())
    }

    /// After a failed round trip: rereads the claimed list, which is the truth, and
    /// acknowledges the finished tasks if that acknowledgement did not land.
    fn resync(&self, state: &mut State) -> Result<()> {
        if self.delivery() == Delivery::AtMostOnce {
            // Popped tasks are only here: keep them and go on.
            state.resync = false;
            return Ok(());
        }
        let Some(con) = state.con.as_mut() else {
            return Ok(());
        };
        let mut claimed = ops::claimed(con, &state.keys, &self.id)?;
        if state.done > 0 && claimed.first() == state.taken.first() {
            let done = state.done.min(claimed.len());
            ops::claim(
                con,
                &state.keys,
                &self.id,
                self.backend.config().lease,
                done,
                0,
            )?;
            claimed.drain(..done);
        }
        state.taken = claimed;
        state.done = 0;
        state.resync = false;
        Ok(())
    }

    /// Runs the taken tasks in order until they are done or shutdown starts.
    fn run_taken(&self, state: &mut State) -> Result<()> {
        let started = Instant::now();
        let first = state.done;
        while state.done < state.taken.len() {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            let payload = &state.taken[state.done];
            let Some(con) = state.con.as_mut() else {
                break;
            };
            self.process(con, &state.keys, payload)?;
            state.done += 1;
        }
        let ran = state.done - first;
        if ran > 0 {
            let per_task = started.elapsed() / u32::try_from(ran).unwrap_or(u32::MAX);
            state.mean_run = (state.mean_run * 3 + per_task) / 4;
        }
        Ok(())
    }

    /// Runs one task. Errors only when a dead letter could not be written.
    fn process(&self, con: &mut Connection, keys: &QueueKeys, payload: &[u8]) -> Result<()> {
        let Ok(text) = std::str::from_utf8(payload) else {
            return self.dead_letter(con, keys, payload, None, "payload is not valid UTF-8");
        };
        let task = match Task::decode(text) {
            Ok(task) => task,
            Err(err) => {
                let reason = format!("malformed task JSON: {err}");
                return self.dead_letter(con, keys, payload, None, &reason);
            }
        };
        let Some(def) = self.registry.get(&task.name) else {
            let reason = format!("task `{}` is not registered in this binary", task.name);
            return self.dead_letter(con, keys, payload, Some(&task), &reason);
        };
        let id = task.id.as_deref().unwrap_or("-");
        let outcome = catch_unwind(AssertUnwindSafe(|| (def.call)(Args::new(task.args))));
        match outcome {
            Ok(Ok(_result)) => {
                self.counters.processed.fetch_add(1, Ordering::Relaxed);
                log::trace!("task {} {id} done", def.name);
                Ok(())
            }
            Ok(Err(CallError::Failed(message))) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                log::error!("task {} {id} failed: {message}", def.name);
                Ok(())
            }
            Ok(Err(CallError::BadArgs(message))) => {
                let reason = format!("bad arguments: {message}");
                self.dead_letter(con, keys, payload, Some(&task), &reason)
            }
            Err(panic) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let message = panic_message(panic.as_ref());
                log::error!("task {} {id} panicked: {message}", def.name);
                Ok(())
            }
        }
    }

    fn dead_letter(
        &self,
        con: &mut Connection,
        keys: &QueueKeys,
        payload: &[u8],
        task: Option<&Task<'_>>,
        reason: &str,
    ) -> Result<()> {
        let record = DeadRecord {
            queue: &self.queue,
            id: task.and_then(|t| t.id.as_deref()),
            name: task.map(|t| t.name.as_ref()),
            reason,
            payload: &String::from_utf8_lossy(payload),
            failed_at: now_millis(),
            worker: &self.id,
        };
        let encoded = serde_json::to_vec(&record).map_err(crate::Error::Serialize)?;
        ops::dead_letter(con, keys, &encoded, self.backend.config().dead_max)?;
        self.counters.dead.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "task {} set aside in the dead-letter list of `{}`: {reason}",
            record.id.unwrap_or("-"),
            self.queue
        );
        Ok(())
    }

    /// Acknowledges what is done and returns what was not started to the queue.
    fn hand_back(&self, state: &mut State) {
        let unstarted = state.taken.len().saturating_sub(state.done);
        let con = match state.con.take() {
            Some(con) => Some(con),
            None => self.backend.dedicated_connection().ok(),
        };
        let Some(con) = con else {
            log::warn!(
                "consumer {} could not reach redis to hand back {unstarted} task(s)",
                self.id
            );
            return;
        };
        state.con = Some(con);
        let result = match self.delivery() {
            // After an error the claimed list is the truth: reread it first.
            Delivery::AtLeastOnce => self.resync_if_needed(state).and_then(|()| {
                let Some(con) = state.con.as_mut() else {
                    return Ok(());
                };
                ops::release(con, &state.keys, &self.id, state.done)?;
                Ok(())
            }),
            Delivery::AtMostOnce => match state.con.as_mut() {
                Some(con) => ops::push_front(con, &state.keys, &state.taken[state.done..])
                    .map_err(Into::into),
                None => Ok(()),
            },
        };
        if let Err(err) = result {
            log::warn!(
                "consumer {} could not hand back {unstarted} task(s): {err}",
                self.id
            );
        }
    }
}

/// A dead-letter record, as stored in `<ns>:{<queue>}:dead`.
#[derive(Serialize)]
struct DeadRecord<'a> {
    queue: &'a str,
    id: Option<&'a str>,
    name: Option<&'a str>,
    reason: &'a str,
    payload: &'a str,
    failed_at: u64,
    worker: &'a str,
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
