//! One consumer thread: takes tasks from its queues, runs them, settles them.
//!
//! At least once: tasks are claimed into the consumer's own list of each queue under a
//! lease (`settle.lua` in claim mode) and acknowledged by the next settle, which also
//! schedules the retries and writes the dead letters of the tasks that failed. When every
//! queue is empty the consumer blocks on their signal lists, which each enqueue rings. At
//! most once: tasks are popped, blocking on the lanes themselves. A consumer serving
//! several queues takes from the first that has tasks (strict priority), and within a
//! queue from its high lane first. Several tasks are taken per round trip (the prefetch,
//! adapted to how long tasks take; a batch task's batch size), items of a batch task are
//! run together, and a Redis error never ends the thread: it backs off, reconnects and
//! resynchronises.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use redis::Connection;
use serde_json::value::RawValue;

use crate::backend::ops::{self, Effect, Mode, Payload, RecordUpdate, SettleArgs, Tally};
use crate::backend::{Delivery, RedisQueueBackend};
use crate::context::TaskContext;
use crate::dead::DeadLetter;
use crate::dispatch::{Args, CallError};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::producer;
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
    /// Tasks running right now.
    pub(crate) in_flight: AtomicU64,
}

/// One queue a consumer serves.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerQueue {
    pub(crate) name: String,
    pub(crate) keys: QueueKeys,
    /// The largest batch of the batch tasks registered on this queue (0: none).
    pub(crate) batch: usize,
    /// Whether its tasks may keep status records: false when every task registered on
    /// it has `store_result = false`, so that claims skip marking records `processing`
    /// (a task with a record routed there still ends `done`, `failed` or `dead`).
    pub(crate) records: bool,
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
}

/// The consumer's view of the tasks it holds.
struct State {
    con: Option<Connection>,
    /// The queue `taken` came from.
    current: usize,
    /// Tasks taken, in order: the first `done` have finished.
    taken: Vec<Payload>,
    /// How many of `taken` have finished and await settling.
    done: usize,
    /// What to record of finished tasks, applied with the next settle.
    effects: Vec<Effect>,
    /// What finished tasks add to the queue's statistics, sent with the next settle.
    tally: Tally,
    /// After an error: reread the claimed lists before going on.
    resync: bool,
    /// Mean run time of recent tasks, for the prefetch.
    mean_run: Duration,
}

impl State {
    fn has_unsettled(&self) -> bool {
        self.done > 0 || !self.effects.is_empty() || !self.tally.is_empty()
    }

    /// Forgets the finished work once it is settled.
    fn settled(&mut self) {
        self.taken.drain(..self.done);
        self.done = 0;
        self.effects.clear();
        self.tally = Tally::default();
    }
}

impl Consumer {
    /// Runs until the stop flag is set, then hands back what it has not started.
    pub(crate) fn run(self) {
        let mut state = State {
            con: None,
            current: 0,
            taken: Vec::new(),
            done: 0,
            effects: Vec::new(),
            tally: Tally::default(),
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
                    log::warn!("consumer {}: {err}; retrying in {backoff:?}", self.id);
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

    fn mode(&self) -> Mode {
        match self.delivery() {
            Delivery::AtLeastOnce => Mode::Claim,
            Delivery::AtMostOnce => Mode::Pop,
        }
    }

    fn max_take(&self, state: &State, queue: usize) -> usize {
        let nanos = state.mean_run.as_nanos().max(1);
        let fit = usize::try_from(PREFETCH_TARGET.as_nanos() / nanos).unwrap_or(usize::MAX);
        let prefetch = fit.clamp(1, self.max_prefetch.max(1));
        prefetch.max(self.queues[queue].batch)
    }

    /// One settle round trip on `queue`. When `queue` is the current one, it settles the
    /// finished work too, which is then gone from the state.
    fn settle(
        &self,
        state: &mut State,
        queue: usize,
        max: usize,
        mode: Mode,
    ) -> Result<Vec<Payload>> {
        let config = self.backend.config();
        let settles = queue == state.current && state.has_unsettled();
        let nothing = Tally::default();
        let (done, effects, tally) = if settles {
            (state.done, state.effects.as_slice(), &state.tally)
        } else {
            (0, &[][..], &nothing)
        };
        let prefix = self.backend.record_prefix();
        let args = SettleArgs {
            lease: config.lease,
            done,
            max,
            mode,
            effects,
            tally,
            retention: config.dead_retention(),
            record_prefix: &prefix,
            ttl: self.backend.record_ttl(),
            mark_claimed: self.queues[queue].records,
        };
        let Some(con) = state.con.as_mut() else {
            return Err(Error::Config("no connection".to_owned()));
        };
        let items = ops::settle(con, &self.queues[queue].keys, &self.id, &args)?;
        if settles {
            state.settled();
        }
        Ok(items)
    }

    /// Settles what is done and takes more from the first queue that has tasks, blocking
    /// when all are empty.
    fn take(&self, state: &mut State) -> Result<()> {
        let mode = self.mode();
        if state.has_unsettled() && state.current != 0 {
            self.settle(state, state.current, 0, mode)?;
        }
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
        let all: Vec<&QueueKeys> = self.queues.iter().map(|q| &q.keys).collect();
        let Some(con) = state.con.as_mut() else {
            return Ok(());
        };
        match mode {
            // Woken (or timed out): the next step claims.
            Mode::Claim => {
                ops::wait_signal(con, &all, block)?;
            }
            _ => {
                if let Some((queue, payload)) = ops::pop_blocking(con, &all, block)? {
                    state.current = queue;
                    state.taken = vec![payload];
                    return self.fill_batch(state);
                }
            }
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
        loop {
            let now = Instant::now();
            if state.taken.len() >= batch || now >= deadline || self.stopping() {
                return Ok(());
            }
            let keys = [&self.queues[queue].keys];
            let Some(con) = state.con.as_mut() else {
                return Ok(());
            };
            match mode {
                Mode::Claim => {
                    ops::wait_signal(con, &keys, deadline - now)?;
                }
                _ => {
                    if let Some((_, payload)) = ops::pop_blocking(con, &keys, deadline - now)? {
                        state.taken.push(payload);
                    }
                }
            }
            let more = self.settle(state, queue, batch - state.taken.len(), mode)?;
            state.taken.extend(more);
        }
    }

    /// After a failed round trip: rereads the claimed lists, which are the truth. If the
    /// last settle did not land, the finished tasks are still at the head of the current
    /// list: settle them again (with their effects). Then go on with whatever the lists
    /// hold, one queue at a time.
    fn resync(&self, state: &mut State) -> Result<()> {
        if self.delivery() == Delivery::AtMostOnce {
            // Popped tasks are only here, and effects are idempotent: keep both.
            state.resync = false;
            return Ok(());
        }
        for queue in 0..self.queues.len() {
            let Some(con) = state.con.as_mut() else {
                return Ok(());
            };
            let mut claimed = ops::claimed(con, &self.queues[queue].keys, &self.id)?;
            if queue == state.current && state.has_unsettled() {
                if state.done > 0 && claimed.first() == state.taken.first() {
                    // The settle did not land: repeat it on the list as it is.
                    state.done = state.done.min(claimed.len());
                    state.taken = claimed;
                    self.settle(state, queue, 0, Mode::Claim)?;
                    claimed = std::mem::take(&mut state.taken);
                } else {
                    state.done = 0;
                    state.effects.clear();
                    state.tally = Tally::default();
                }
            }
            if !claimed.is_empty() {
                state.current = queue;
                state.taken = claimed;
                state.done = 0;
                state.effects.clear();
                state.tally = Tally::default();
                // Stay in resync until every list has been worked off.
                return Ok(());
            }
        }
        state.taken.clear();
        state.done = 0;
        state.effects.clear();
        state.tally = Tally::default();
        state.resync = false;
        Ok(())
    }

    /// Runs the taken tasks in order until they are done or shutdown starts.
    fn run_taken(&self, state: &mut State) {
        let started = Instant::now();
        let first = state.done;
        let queue = &self.queues[state.current];
        while state.done < state.taken.len() && !self.stopping() {
            let (used, effects) = self.process(queue, &state.taken[state.done..], &mut state.tally);
            state.effects.extend(effects);
            state.done += used;
        }
        let ran = state.done - first;
        if ran > 0 {
            let per_task = started.elapsed() / u32::try_from(ran).unwrap_or(u32::MAX);
            state.mean_run = (state.mean_run * 3 + per_task) / 4;
        }
    }

    /// Runs the first of `payloads` (with the items after it, for a batch task); says how
    /// many payloads it used and what to record of them.
    fn process(
        &self,
        queue: &ConsumerQueue,
        payloads: &[Payload],
        tally: &mut Tally,
    ) -> (usize, Vec<Effect>) {
        let payload = &payloads[0];
        let Ok(text) = std::str::from_utf8(payload) else {
            let reason = "payload is not valid UTF-8";
            return (
                1,
                vec![self.dead(queue, payload, None, None, 0, reason, tally)],
            );
        };
        let task = match Task::decode(text) {
            Ok(task) => task,
            Err(err) => {
                let reason = format!("malformed task JSON: {err}");
                return (
                    1,
                    vec![self.dead(queue, payload, None, None, 0, &reason, tally)],
                );
            }
        };
        let id = match &task.id {
            Some(id) => id.to_string(),
            None => TaskId::generate().to_string(),
        };
        let Some(def) = self.registry.get(&task.name) else {
            let reason = format!("task `{}` is not registered in this binary", task.name);
            let dead = self.dead(
                queue,
                payload,
                Some(&id),
                Some(&task.name),
                task.attempts,
                &reason,
                tally,
            );
            return (1, vec![dead]);
        };
        if def.batch > 0 && !task.batch {
            return self.process_batch(queue, def, payloads, tally);
        }
        let started = Instant::now();
        let attempt = task.attempts + 1;
        let outcome = self.call(queue, def, &id, attempt, Args::new(task.args));
        sample(tally, task.enqueued_at, started);
        let effect = match outcome {
            Ok(result) => {
                // An assembled batch counts its items.
                let count = if task.batch { batch_len(task.args) } else { 1 };
                self.counters.processed.fetch_add(count, Ordering::Relaxed);
                tally.processed += count;
                if !def.store_result {
                    return (1, Vec::new());
                }
                Effect::Done {
                    id,
                    attempts: attempt,
                    result,
                }
            }
            Err(Failure::BadArgs(reason)) => {
                let name = Some(def.name);
                self.dead(
                    queue,
                    payload,
                    Some(&id),
                    name,
                    task.attempts,
                    &reason,
                    tally,
                )
            }
            Err(Failure::Failed(message)) => {
                self.failed(queue, text, &id, def, attempt, &message, tally)
            }
        };
        (1, vec![effect])
    }

    /// Runs the function once with the consecutive items of the batch task `def` at the
    /// head of `payloads` (up to its batch size). The batch succeeds, is retried or dies as
    /// a unit; an item whose arguments do not fit is set aside on its own first.
    fn process_batch(
        &self,
        queue: &ConsumerQueue,
        def: &'static TaskDef,
        payloads: &[Payload],
        tally: &mut Tally,
    ) -> (usize, Vec<Effect>) {
        let mut effects = Vec::new();
        let mut items: Vec<&RawValue> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        let mut oldest: Option<u64> = None;
        let mut used = 0;
        for payload in payloads.iter().take(def.batch.max(1)) {
            let Some(task) = std::str::from_utf8(payload)
                .ok()
                .and_then(|text| Task::decode(text).ok())
            else {
                break;
            };
            if task.name != def.name || task.batch {
                break;
            }
            used += 1;
            let item = Args::new(task.args)
                .list(def.params)
                .map_err(|e| match e {
                    CallError::BadArgs(m) | CallError::Failed(m) => m,
                })
                .and_then(|mut list| list.next_raw().ok_or_else(|| "no item".to_owned()));
            let id = task.id.as_deref().map(str::to_owned);
            match item {
                Ok(item) => {
                    items.push(item);
                    ids.extend(id);
                    oldest = match (oldest, task.enqueued_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Err(message) => {
                    let reason = format!("bad arguments: {message}");
                    let name = Some(def.name);
                    effects.push(self.dead(queue, payload, id.as_deref(), name, 0, &reason, tally));
                }
            }
        }
        if items.is_empty() {
            return (used.max(1), effects);
        }
        let count = items.len();
        let mut args =
            String::with_capacity(items.iter().map(|i| i.get().len() + 1).sum::<usize>() + 4);
        args.push_str("[[");
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                args.push(',');
            }
            args.push_str(item.get());
        }
        args.push_str("]]");
        let Ok(raw) = RawValue::from_string(args) else {
            return (used, effects);
        };
        let started = Instant::now();
        let first = ids.first().cloned().unwrap_or_default();
        let outcome = self.call(queue, def, &first, 1, Args::new(Some(&raw)));
        sample(tally, oldest, started);
        match outcome {
            Ok(result) => {
                self.counters
                    .processed
                    .fetch_add(count as u64, Ordering::Relaxed);
                tally.processed += count as u64;
                if def.store_result {
                    effects.extend(ids.into_iter().map(|id| Effect::Done {
                        id,
                        attempts: 1,
                        result: result.clone(),
                    }));
                }
            }
            Err(failure) => {
                // The batch becomes one task of its own, retried or set aside as a unit.
                let id = TaskId::generate();
                let payload = producer::encode_batch(&id, def.name, &queue.name, &raw)
                    .unwrap_or_else(|_| raw.get().as_bytes().to_vec());
                let text = String::from_utf8_lossy(&payload).into_owned();
                effects.push(match failure {
                    Failure::BadArgs(reason) => self.dead(
                        queue,
                        &payload,
                        Some(id.as_str()),
                        Some(def.name),
                        0,
                        &reason,
                        tally,
                    ),
                    Failure::Failed(message) => {
                        self.failed(queue, &text, id.as_str(), def, 1, &message, tally)
                    }
                });
            }
        }
        (used, effects)
    }

    /// Calls the function, catching a panic; its result as JSON.
    fn call(
        &self,
        queue: &ConsumerQueue,
        def: &TaskDef,
        id: &str,
        attempt: u32,
        args: Args<'_>,
    ) -> std::result::Result<String, Failure> {
        let context = TaskContext {
            id: TaskId::from(id),
            name: def.name.to_owned(),
            queue: queue.name.clone(),
            namespace: self.backend.namespace().to_owned(),
            attempt,
        };
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let outcome = context.scope(|| catch_unwind(AssertUnwindSafe(|| (def.call)(args))));
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Ok(Ok(result)) => {
                log::trace!("task {} done", def.name);
                Ok(result)
            }
            Ok(Err(CallError::BadArgs(message))) => {
                Err(Failure::BadArgs(format!("bad arguments: {message}")))
            }
            Ok(Err(CallError::Failed(message))) => Err(Failure::Failed(message)),
            Err(panic) => Err(Failure::Failed(format!(
                "panicked: {}",
                panic_message(panic.as_ref())
            ))),
        }
    }

    /// A task that ran and failed: a retry while it has retries left, else a dead letter.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        queue: &ConsumerQueue,
        text: &str,
        id: &str,
        def: &TaskDef,
        attempt: u32,
        message: &str,
        tally: &mut Tally,
    ) -> Effect {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        tally.failed += 1;
        let now = now_millis();
        let payload = retry::record_attempt(text, id, attempt, message, now)
            .unwrap_or_else(|| text.as_bytes().to_vec());
        if attempt > def.retries {
            let reason = format!("failed after {attempt} attempt(s): {message}");
            return self.dead(
                queue,
                &payload,
                Some(id),
                Some(def.name),
                attempt,
                &reason,
                tally,
            );
        }
        let delay = self
            .backend
            .config()
            .backoff
            .delay(attempt, fastrand::f64());
        self.counters.retried.fetch_add(1, Ordering::Relaxed);
        tally.retried += 1;
        log::warn!(
            "task {} {id} failed (attempt {attempt} of {}): {message}; retrying in {delay:?}",
            def.name,
            def.retries + 1
        );
        Effect::Retry {
            due: now + ops::millis(delay),
            payload,
            record: RecordUpdate {
                id: id.to_owned(),
                attempts: attempt,
                error: message.to_owned(),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dead(
        &self,
        queue: &ConsumerQueue,
        payload: &[u8],
        id: Option<&str>,
        name: Option<&str>,
        attempts: u32,
        reason: &str,
        tally: &mut Tally,
    ) -> Effect {
        let letter = DeadLetter {
            id: id.map_or_else(|| TaskId::generate().to_string(), str::to_owned),
            queue: queue.name.clone(),
            name: name.map(str::to_owned),
            reason: reason.to_owned(),
            attempts,
            failed_at: now_millis(),
            worker: self.id.clone(),
            payload: String::from_utf8_lossy(payload).into_owned(),
        };
        self.counters.dead.fetch_add(1, Ordering::Relaxed);
        tally.dead += 1;
        log::error!(
            "task {} set aside in the dead letters of `{}`: {reason}",
            letter.id,
            queue.name
        );
        // Serializing strings and numbers cannot fail.
        let encoded = serde_json::to_vec(&letter).unwrap_or_default();
        Effect::Dead {
            score: dead_score(),
            letter: encoded,
            record: RecordUpdate {
                id: id.unwrap_or_default().to_owned(),
                attempts,
                error: reason.to_owned(),
            },
        }
    }

    /// Settles what is done and returns what was not started to its queue.
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
                let current = state.current;
                self.settle(state, current, 0, Mode::Release)?;
                for queue in (0..self.queues.len()).filter(|q| *q != current) {
                    self.settle(state, queue, 0, Mode::Release)?;
                }
                Ok(())
            })(),
            Delivery::AtMostOnce => (|| {
                let rest = state.taken.split_off(state.done);
                let current = state.current;
                self.settle(state, current, 0, Mode::Pop)?;
                let Some(con) = state.con.as_mut() else {
                    return Err(Error::Config("no connection".to_owned()));
                };
                ops::push_front(con, &self.queues[current].keys, &rest)?;
                Ok(())
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
}

/// Why a call did not succeed, as the consumer records it.
enum Failure {
    /// The arguments do not fit: a dead letter (the reason).
    BadArgs(String),
    /// The function failed or panicked: a retry or a dead letter (the message).
    Failed(String),
}

/// Samples sent per settle at most: enough for percentiles, cheap for Redis.
const SAMPLES_PER_SETTLE: usize = 16;

/// Adds a `wait_ms:run_ms` sample for a task enqueued at `enqueued_at` (Unix ms) that
/// started at `started` and has just finished, while the settle has room for one.
fn sample(tally: &mut Tally, enqueued_at: Option<u64>, started: Instant) {
    if tally.samples.bytes().filter(|b| *b == b',').count() + 1 > SAMPLES_PER_SETTLE
        && !tally.samples.is_empty()
    {
        return;
    }
    let run = started.elapsed();
    let started_ms = now_millis().saturating_sub(ops::millis(run));
    let wait = enqueued_at.map_or(0, |at| started_ms.saturating_sub(at));
    if !tally.samples.is_empty() {
        tally.samples.push(',');
    }
    let _ = write!(tally.samples, "{wait}:{:.3}", run.as_secs_f64() * 1000.0);
}

/// How many items an assembled batch's `args` (`[[item, …]]`) holds.
fn batch_len(args: Option<&RawValue>) -> u64 {
    args.and_then(|raw| serde_json::from_str::<(Vec<&RawValue>,)>(raw.get()).ok())
        .map_or(1, |(items,)| items.len() as u64)
}

/// The score of a new dead letter: now in microseconds, strictly increasing within this
/// process, so that letters keep their order even within one millisecond.
fn dead_score() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::task::now_micros();
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
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
