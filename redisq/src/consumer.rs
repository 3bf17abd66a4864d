//! One consumer thread: takes tasks from one queue, runs them, settles them.
//!
//! At least once: tasks are claimed into the consumer's own list under a lease
//! (`settle.lua` in claim mode, or `BLMOVE` when the queue is empty) and acknowledged by
//! the next settle, which also schedules the retries and writes the dead letters of the
//! tasks that failed. At most once: tasks are popped. Either way several tasks may be
//! taken per round trip (the prefetch, adapted to how long tasks take), and a Redis error
//! never ends the thread: it backs off, reconnects and resynchronises.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use redis::Connection;

use crate::backend::ops::{self, Effect, Mode, Payload};
use crate::backend::{Delivery, RedisQueueBackend};
use crate::dead::DeadLetter;
use crate::dispatch::{Args, CallError};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::registry::{Registry, TaskDef};
use crate::retry;
use crate::task::{now_millis, Task, TaskId};

/// Work done per claim that the adaptive prefetch aims at.
const PREFETCH_TARGET: Duration = Duration::from_millis(5);

/// Counters shared by the consumers of one worker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) processed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
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
    /// Tasks taken, in order: the first `done` have finished.
    taken: Vec<Payload>,
    /// How many of `taken` have finished and await settling.
    done: usize,
    /// Outcomes of finished tasks that failed, applied with the next settle.
    effects: Vec<Effect>,
    /// After an error: reread the claimed list before going on.
    resync: bool,
    /// Mean run time of recent tasks, for the prefetch.
    mean_run: Duration,
}

/// How one task ended, as far as settling is concerned.
enum Outcome {
    Done,
    Effect(Effect),
}

impl Consumer {
    /// Runs until the stop flag is set, then hands back what it has not started.
    pub(crate) fn run(self) {
        let mut state = State {
            keys: self.backend.keys(&self.queue),
            con: None,
            taken: Vec::new(),
            done: 0,
            effects: Vec::new(),
            resync: false,
            // Pessimistic until measured: the first claim takes one task.
            mean_run: PREFETCH_TARGET,
        };
        let mut backoff = Duration::ZERO;
        while !self.stopping() {
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

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn step(&self, state: &mut State) -> Result<()> {
        if state.con.is_none() {
            state.con = Some(self.backend.dedicated_connection()?);
        }
        if state.resync {
            self.resync(state)?;
        }
        if state.done == state.taken.len() {
            self.take(state)?;
        }
        self.run_taken(state);
        Ok(())
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

    /// One settle round trip; on success the finished tasks and their effects are gone.
    fn settle(&self, state: &mut State, max: usize, mode: Mode) -> Result<Vec<Payload>> {
        let config = self.backend.config();
        let Some(con) = state.con.as_mut() else {
            return Err(Error::Config("no connection".to_owned()));
        };
        let items = ops::settle(
            con,
            &state.keys,
            &self.id,
            config.lease,
            state.done,
            max,
            mode,
            &state.effects,
            config.dead_retention(),
        )?;
        state.taken.clear();
        state.done = 0;
        state.effects.clear();
        Ok(items)
    }

    /// Settles what is done and takes more, blocking when the queue is empty.
    fn take(&self, state: &mut State) -> Result<()> {
        let block = self.backend.config().block_timeout;
        let max = self.prefetch(state);
        let mode = match self.delivery() {
            Delivery::AtLeastOnce => Mode::Claim,
            Delivery::AtMostOnce => Mode::Pop,
        };
        state.taken = self.settle(state, max, mode)?;
        if !state.taken.is_empty() || self.stopping() {
            return Ok(());
        }
        let Some(con) = state.con.as_mut() else {
            return Ok(());
        };
        let item = match mode {
            Mode::Claim => ops::claim_blocking(con, &state.keys, &self.id, block)?,
            _ => ops::pop_blocking(con, &state.keys, block)?,
        };
        state.taken.extend(item);
        Ok(())
    }

    /// After a failed round trip: rereads the claimed list, which is the truth. If the
    /// last settle did not land, the finished tasks are still at its head: settle them
    /// again (with their effects). Then go on with whatever the list holds.
    fn resync(&self, state: &mut State) -> Result<()> {
        if self.delivery() == Delivery::AtMostOnce {
            // Popped tasks are only here, and effects are idempotent: keep both.
            state.resync = false;
            return Ok(());
        }
        let Some(con) = state.con.as_mut() else {
            return Ok(());
        };
        let claimed = ops::claimed(con, &state.keys, &self.id)?;
        let settle_lost = state.done > 0 && claimed.first() == state.taken.first();
        if settle_lost {
            state.done = state.done.min(claimed.len());
            state.taken = claimed;
            let rest = state.taken.split_off(state.done);
            self.settle(state, 0, Mode::Claim)?;
            state.taken = rest;
        } else {
            state.taken = claimed;
            state.done = 0;
            state.effects.clear();
        }
        state.resync = false;
        Ok(())
    }

    /// Runs the taken tasks in order until they are done or shutdown starts.
    fn run_taken(&self, state: &mut State) {
        let started = Instant::now();
        let first = state.done;
        while state.done < state.taken.len() && !self.stopping() {
            if let Outcome::Effect(effect) = self.process(&state.taken[state.done]) {
                state.effects.push(effect);
            }
            state.done += 1;
        }
        let ran = state.done - first;
        if ran > 0 {
            let per_task = started.elapsed() / u32::try_from(ran).unwrap_or(u32::MAX);
            state.mean_run = (state.mean_run * 3 + per_task) / 4;
        }
    }

    /// Runs one task; what to record if it did not succeed.
    fn process(&self, payload: &[u8]) -> Outcome {
        let Ok(text) = std::str::from_utf8(payload) else {
            return self.dead(payload, None, None, 0, "payload is not valid UTF-8");
        };
        let task = match Task::decode(text) {
            Ok(task) => task,
            Err(err) => {
                let reason = format!("malformed task JSON: {err}");
                return self.dead(payload, None, None, 0, &reason);
            }
        };
        let id = match &task.id {
            Some(id) => id.to_string(),
            None => TaskId::generate().to_string(),
        };
        let Some(def) = self.registry.get(&task.name) else {
            let reason = format!("task `{}` is not registered in this binary", task.name);
            return self.dead(payload, Some(&id), Some(&task.name), task.attempts, &reason);
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| (def.call)(Args::new(task.args))));
        let message = match outcome {
            Ok(Ok(_result)) => {
                self.counters.processed.fetch_add(1, Ordering::Relaxed);
                log::trace!("task {} {id} done", def.name);
                return Outcome::Done;
            }
            Ok(Err(CallError::BadArgs(message))) => {
                let reason = format!("bad arguments: {message}");
                return self.dead(payload, Some(&id), Some(def.name), task.attempts, &reason);
            }
            Ok(Err(CallError::Failed(message))) => message,
            Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
        };
        self.failed(text, &id, def, task.attempts + 1, &message)
    }

    /// A task that ran and failed: a retry while it has retries left, else a dead letter.
    fn failed(&self, text: &str, id: &str, def: &TaskDef, attempt: u32, message: &str) -> Outcome {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let now = now_millis();
        let payload = retry::record_attempt(text, id, attempt, message, now)
            .unwrap_or_else(|| text.as_bytes().to_vec());
        if attempt > def.retries {
            let reason = format!("failed after {attempt} attempt(s): {message}");
            return self.dead(&payload, Some(id), Some(def.name), attempt, &reason);
        }
        let delay = self
            .backend
            .config()
            .backoff
            .delay(attempt, fastrand::f64());
        self.counters.retried.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "task {} {id} failed (attempt {attempt} of {}): {message}; retrying in {delay:?}",
            def.name,
            def.retries + 1
        );
        Outcome::Effect(Effect::Retry {
            due: now + ops::millis(delay),
            payload,
        })
    }

    fn dead(
        &self,
        payload: &[u8],
        id: Option<&str>,
        name: Option<&str>,
        attempts: u32,
        reason: &str,
    ) -> Outcome {
        let letter = DeadLetter {
            id: id.map_or_else(|| TaskId::generate().to_string(), str::to_owned),
            queue: self.queue.clone(),
            name: name.map(str::to_owned),
            reason: reason.to_owned(),
            attempts,
            failed_at: now_millis(),
            worker: self.id.clone(),
            payload: String::from_utf8_lossy(payload).into_owned(),
        };
        self.counters.dead.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "task {} set aside in the dead letters of `{}`: {reason}",
            letter.id,
            self.queue
        );
        match serde_json::to_vec(&letter) {
            Ok(record) => Outcome::Effect(Effect::Dead {
                at: letter.failed_at,
                record,
            }),
            // Serializing strings and numbers cannot fail; were it to, the task is dropped
            // with the error above in the log.
            Err(_) => Outcome::Done,
        }
    }

    /// Settles what is done and returns what was not started to the queue.
    fn hand_back(&self, state: &mut State) {
        let unstarted = state.taken.len().saturating_sub(state.done);
        if state.con.is_none() {
            state.con = self.backend.dedicated_connection().ok();
        }
        let result = match self.delivery() {
            Delivery::AtLeastOnce => (|| {
                if state.resync {
                    self.resync(state)?;
                }
                self.settle(state, 0, Mode::Release).map(|_| ())
            })(),
            Delivery::AtMostOnce => (|| {
                let rest = state.taken.split_off(state.done);
                self.settle(state, 0, Mode::Pop)?;
                let Some(con) = state.con.as_mut() else {
                    return Err(Error::Config("no connection".to_owned()));
                };
                ops::push_front(con, &state.keys, &rest)?;
                Ok(())
            })(),
        };
        if let Err(err) = result {
            log::warn!(
                "consumer {} could not hand back {unstarted} task(s) of `{}`: {err}{}",
                self.id,
                self.queue,
                if self.delivery() == Delivery::AtLeastOnce {
                    "; they return to the queue when the lease runs out"
                } else {
                    ""
                }
            );
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string payload".to_owned()
    }
}
