//! Running what a consumer took: decoding a payload, finding its function, calling it
//! under a [`TaskContext`] with panics caught, and the items of a batch task together.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::value::RawValue;

use super::outcome::{Attempt, Recorder};
use super::Consumer;
use crate::backend::Payload;
use crate::clock::now_millis;
use crate::context::TaskContext;
use crate::dispatch::{Args, CallError};
use crate::registry::TaskDef;
use crate::task::TaskId;
use crate::wire::{self, Task};

impl Consumer {
    /// Runs the first of `payloads` (with the items after it, for a batch task); says how
    /// many payloads it used. What became of them goes to `recorder`.
    pub(super) fn process(&self, payloads: &[Payload], recorder: &mut Recorder<'_>) -> usize {
        let Some(payload) = payloads.first() else {
            return 0;
        };
        let task = match wire::read(payload, self.backend.config().max_payload) {
            Ok(task) => task,
            Err(reason) => {
                recorder.dead(payload, None, None, 0, 0, &reason);
                return 1;
            }
        };
        let id = task
            .id
            .as_deref()
            .map_or_else(|| TaskId::generate().to_string(), str::to_owned);
        let Some(def) = self.registry.get(&task.name) else {
            let reason = format!("task `{}` is not registered in this binary", task.name);
            recorder.dead(
                payload,
                Some(&id),
                Some(&task.name),
                task.attempts,
                0,
                &reason,
            );
            return 1;
        };
        if def.batch > 0 && !task.batch {
            return self.process_batch(def, payloads, recorder);
        }
        let attempt = Attempt {
            id: &id,
            attempt: task.attempts + 1,
            started_at: now_millis(),
            keyed: wire::has_leading_key(payload),
        };
        let started = Instant::now();
        let outcome = self.call(recorder.queue, def, &attempt, Args::new(task.args));
        recorder.sample(task.enqueued_at, started);
        // An assembled batch's own id keeps no record; its items' records follow it.
        let items: &[Cow<'_, str>] = if task.batch { &task.items } else { &[] };
        match outcome {
            Ok(result) if task.batch => {
                recorder.succeeded(def, items, &attempt, &result, task.count());
                recorder.forget(&id);
            }
            Ok(result) => recorder.succeeded(def, &[&id], &attempt, &result, 1),
            Err(CallError::BadArgs(reason)) => {
                let started_at = attempt.started_at;
                recorder.dead(
                    payload,
                    Some(&id),
                    Some(def.name),
                    task.attempts,
                    started_at,
                    &reason,
                );
                recorder.mark_items(items, false, &attempt, &reason);
            }
            Err(CallError::Failed(message)) => {
                let text = String::from_utf8_lossy(payload);
                let retried = recorder.failed(def, &text, &attempt, &message);
                recorder.mark_items(items, retried, &attempt, &message);
            }
        }
        1
    }

    /// Runs the function once with the consecutive items of the batch task `def` at the
    /// head of `payloads` (up to its batch size). The batch succeeds, is retried or dies as
    /// a unit, its items' records with it; an item whose arguments do not fit is set aside
    /// on its own first.
    fn process_batch(
        &self,
        def: &'static TaskDef,
        payloads: &[Payload],
        recorder: &mut Recorder<'_>,
    ) -> usize {
        let mut items: Vec<&RawValue> = Vec::new();
        let mut ids: Vec<Cow<'_, str>> = Vec::new();
        // Items with ordering keys fail one by one (each held at the head of its key).
        let mut keyed: Vec<(&[u8], Cow<'_, str>, u32)> = Vec::new();
        let mut oldest: Option<u64> = None;
        let mut used = 0;
        let max = self.backend.config().max_payload;
        let tasks = payloads
            .iter()
            .take(def.batch.max(1))
            .map(|payload| (payload, wire::read(payload, max).ok()));
        for (payload, task) in tasks {
            let Some(task) = task.filter(|t| t.name == def.name && !t.batch) else {
                break;
            };
            let stopped = &recorder.report.stopped;
            if !stopped.is_empty()
                && wire::leading_key(payload).is_some_and(|k| stopped.contains(&k))
            {
                break;
            }
            used += 1;
            match batch_item(def, &task) {
                Ok(item) => {
                    items.push(item);
                    oldest = oldest.into_iter().chain(task.enqueued_at).min();
                    if wire::has_leading_key(payload) {
                        let id = task
                            .id
                            .clone()
                            .unwrap_or_else(|| Cow::Owned(TaskId::generate().to_string()));
                        keyed.push((payload.as_slice(), id, task.attempts));
                    }
                    ids.extend(task.id);
                }
                Err(message) => {
                    let reason = format!("bad arguments: {message}");
                    recorder.dead(payload, task.id.as_deref(), Some(def.name), 0, 0, &reason);
                }
            }
        }
        if items.is_empty() {
            return used.max(1);
        }
        let args = wire::batch_args(&items);
        let first = ids.first().map_or_else(String::new, |id| id.to_string());
        let attempt = Attempt {
            id: &first,
            attempt: 1,
            started_at: now_millis(),
            keyed: !keyed.is_empty(),
        };
        let started = Instant::now();
        let outcome = self.call(recorder.queue, def, &attempt, Args::new(Some(&args)));
        recorder.sample(oldest, started);
        let failure = match outcome {
            Ok(result) => {
                recorder.succeeded(def, &ids, &attempt, &result, items.len() as u64);
                return used;
            }
            Err(failure) => failure,
        };
        if keyed.is_empty() {
            batch_failed(def, &args, &ids, &attempt, failure, recorder);
        } else {
            items_failed(def, &keyed, attempt.started_at, &failure, recorder);
        }
        used
    }

    /// Calls the function with a [`TaskContext`], catching a panic; its result as JSON.
    fn call(
        &self,
        queue: &str,
        def: &TaskDef,
        attempt: &Attempt<'_>,
        args: Args<'_>,
    ) -> Result<String, CallError> {
        let context = TaskContext {
            id: TaskId::from(attempt.id),
            name: def.name.to_owned(),
            queue: queue.to_owned(),
            namespace: self.backend.namespace().to_owned(),
            attempt: attempt.attempt,
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
                Err(CallError::BadArgs(format!("bad arguments: {message}")))
            }
            Ok(Err(failed)) => Err(failed),
            Err(panic) => Err(CallError::Failed(format!(
                "panicked: {}",
                panic_message(panic.as_ref())
            ))),
        }
    }
}

/// The one argument of an item of a batch task.
fn batch_item<'a>(def: &TaskDef, task: &Task<'a>) -> Result<&'a RawValue, String> {
    let mut list = Args::new(task.args)
        .list(def.params)
        .map_err(CallError::into_message)?;
    list.next_raw().ok_or_else(|| "no item".to_owned())
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

/// A batch of `def` whose items have ordering keys failed: each item is retried, or set
/// aside, on its own (and so held at the head of its key), with its own attempts.
fn items_failed(
    def: &TaskDef,
    items: &[(&[u8], Cow<'_, str>, u32)],
    started_at: u64,
    failure: &CallError,
    recorder: &mut Recorder<'_>,
) {
    for (payload, id, attempts) in items {
        let attempt = Attempt {
            id,
            attempt: attempts + 1,
            started_at,
            keyed: true,
        };
        match failure {
            CallError::BadArgs(reason) => {
                recorder.dead(
                    payload,
                    Some(id),
                    Some(def.name),
                    *attempts,
                    started_at,
                    reason,
                );
            }
            CallError::Failed(message) => {
                let text = String::from_utf8_lossy(payload);
                recorder.failed(def, &text, &attempt, message);
            }
        }
    }
}

/// A fresh batch of `def` failed: it becomes one task of its own (with its items' ids),
/// retried or set aside as a unit, and its items' records follow it.
fn batch_failed(
    def: &TaskDef,
    args: &RawValue,
    ids: &[Cow<'_, str>],
    attempt: &Attempt<'_>,
    failure: CallError,
    recorder: &mut Recorder<'_>,
) {
    let id = TaskId::generate();
    let payload = wire::encode_batch(&id, def.name, recorder.queue, args, now_millis(), ids);
    let attempt = Attempt {
        id: id.as_str(),
        ..*attempt
    };
    match failure {
        CallError::BadArgs(reason) => {
            let started_at = attempt.started_at;
            recorder.dead(
                &payload,
                Some(id.as_str()),
                Some(def.name),
                0,
                started_at,
                &reason,
            );
            recorder.mark_items(ids, false, &attempt, &reason);
        }
        CallError::Failed(message) => {
            let text = String::from_utf8_lossy(&payload);
            let retried = recorder.failed(def, &text, &attempt, &message);
            recorder.mark_items(ids, retried, &attempt, &message);
        }
    }
}
