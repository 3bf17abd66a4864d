//! Recording what became of the tasks a consumer ran: one [`Recorder`] updates the
//! worker's [`Counters`] and the [`Report`] its next settle sends Redis, together, so the
//! two never disagree.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::backend::{Marked, Outcome, Report};
use crate::clock::{millis, now_millis};
use crate::dead::DeadLetter;
use crate::registry::TaskDef;
use crate::retry::Backoff;
use crate::task::TaskId;
use crate::wire;

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

/// Samples sent per settle at most: enough for percentiles, cheap for Redis.
const SAMPLES_PER_SETTLE: usize = 16;

/// Records the outcomes of tasks of one queue into a report and the worker's counters.
pub(super) struct Recorder<'a> {
    pub(super) counters: &'a Counters,
    pub(super) report: &'a mut Report,
    /// The queue the tasks came from.
    pub(super) queue: &'a str,
    /// The consumer that ran them.
    pub(super) consumer: &'a str,
    pub(super) backoff: Backoff,
    /// Whether the queue tracks task states (claims mark them processing).
    pub(super) track: bool,
    /// Whether the queue is ordered (a retry there holds it).
    pub(super) ordered: bool,
    /// Payload bytes a dead letter keeps at most.
    pub(super) max_payload: usize,
}

/// One finished attempt: which task, which attempt, when it started (Unix ms), and
/// whether the task has an ordering key.
pub(super) struct Attempt<'a> {
    pub(super) id: &'a str,
    pub(super) attempt: u32,
    pub(super) started_at: u64,
    pub(super) keyed: bool,
}

impl Recorder<'_> {
    /// `items` tasks of `def` succeeded with `result`; `ids` are theirs.
    pub(super) fn succeeded(
        &mut self,
        def: &TaskDef,
        ids: &[impl AsRef<str>],
        attempt: &Attempt<'_>,
        result: &str,
        items: u64,
    ) {
        self.counters.processed.fetch_add(items, Ordering::Relaxed);
        self.report.tally.processed += items;
        for id in ids {
            let id = id.as_ref();
            if def.store_result {
                self.report.outcomes.push(Outcome::Done {
                    id: id.to_owned(),
                    attempts: attempt.attempt,
                    result: result.to_owned(),
                    started_at: attempt.started_at,
                });
            } else if self.track {
                self.report.forget.push(id.to_owned());
            }
        }
    }

    /// The attempt of `def` whose payload is `payload` failed with `message`: a retry
    /// while it has retries left (true), else a dead letter (false).
    pub(super) fn failed(
        &mut self,
        def: &TaskDef,
        payload: &str,
        attempt: &Attempt<'_>,
        message: &str,
    ) -> bool {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        self.report.tally.failed += 1;
        let message = truncate(message);
        let message = message.as_str();
        let n = attempt.attempt;
        let Some(payload) = wire::with_attempt(payload, attempt.id, n, message, now_millis())
        else {
            // Not an object (a task decoded from it, so this cannot be): never retry it
            // with its attempts unrecorded.
            let reason = format!(
                "failed after {n} attempt(s): {message} (its payload could not record the attempt)"
            );
            self.dead(
                payload.as_bytes(),
                Some(attempt.id),
                Some(def.name),
                n,
                attempt.started_at,
                &reason,
            );
            return false;
        };
        let in_order = self.ordered || attempt.keyed;
        if n > def.retries || (in_order && !def.ordered_retries) {
            let reason = format!("failed after {n} attempt(s): {message}");
            self.dead(
                &payload,
                Some(attempt.id),
                Some(def.name),
                n,
                attempt.started_at,
                &reason,
            );
            return false;
        }
        let delay = self.backoff.delay(n, fastrand::f64());
        self.counters.retried.fetch_add(1, Ordering::Relaxed);
        self.report.tally.retried += 1;
        log::warn!(
            "task {} {} failed (attempt {n} of {}): {message}; retrying in {delay:?}",
            def.name,
            attempt.id,
            def.retries + 1
        );
        if attempt.keyed {
            self.report.stopped.extend(wire::leading_key(&payload));
        } else if self.ordered {
            self.report.holds = true;
        }
        self.report.outcomes.push(Outcome::Retry {
            id: attempt.id.to_owned(),
            attempts: n,
            error: message.to_owned(),
            started_at: attempt.started_at,
            payload,
            delay_ms: millis(delay),
        });
        true
    }

    /// Sets `payload` aside in the dead letters for `reason`, after `attempts` attempts
    /// (0: it never ran); `id` and `name` when the payload was readable.
    pub(super) fn dead(
        &mut self,
        payload: &[u8],
        id: Option<&str>,
        name: Option<&str>,
        attempts: u32,
        started_at: u64,
        reason: &str,
    ) {
        let reason = truncate(reason);
        let kept = &payload[..payload.len().min(self.max_payload)];
        let letter = DeadLetter {
            id: id.map_or_else(|| TaskId::generate().to_string(), str::to_owned),
            queue: self.queue.to_owned(),
            name: name.map(str::to_owned),
            reason: reason.clone(),
            attempts,
            failed_at: now_millis(),
            worker: self.consumer.to_owned(),
            payload: String::from_utf8_lossy(kept).into_owned(),
        };
        self.counters.dead.fetch_add(1, Ordering::Relaxed);
        self.report.tally.dead += 1;
        log::error!(
            "task {} set aside in the dead letters of `{}`: {reason}",
            letter.id,
            self.queue
        );
        // Serializing strings and numbers cannot fail.
        let encoded = serde_json::to_vec(&letter).unwrap_or_default();
        self.report.outcomes.push(Outcome::Dead {
            id: letter.id,
            attempts,
            reason,
            started_at,
            letter: encoded,
        });
    }

    /// The items `ids` of a batch that failed as a unit: their records follow the batch's
    /// fate (retried with it, or dead with it).
    pub(super) fn mark_items(
        &mut self,
        ids: &[impl AsRef<str>],
        retried: bool,
        attempt: &Attempt<'_>,
        error: &str,
    ) {
        let status = if retried {
            Marked::Failed
        } else {
            Marked::Dead
        };
        let error = truncate(error);
        for id in ids {
            self.report.outcomes.push(Outcome::Mark {
                id: id.as_ref().to_owned(),
                status,
                attempts: attempt.attempt,
                error: error.clone(),
                started_at: attempt.started_at,
            });
        }
    }

    /// Forgets the state of a task that keeps no record (an assembled batch's own id).
    pub(super) fn forget(&mut self, id: &str) {
        if self.track {
            self.report.forget.push(id.to_owned());
        }
    }

    /// Adds a `wait_ms:run_ms` sample for a task enqueued at `enqueued_at` (Unix ms) that
    /// started at `started` and has just finished, while the settle has room for one.
    pub(super) fn sample(&mut self, enqueued_at: Option<u64>, started: Instant) {
        let samples = &mut self.report.tally.samples;
        if !samples.is_empty()
            && samples.bytes().filter(|b| *b == b',').count() + 1 >= SAMPLES_PER_SETTLE
        {
            return;
        }
        let run = started.elapsed();
        let started_ms = now_millis().saturating_sub(millis(run));
        let wait = enqueued_at.map_or(0, |at| started_ms.saturating_sub(at));
        if !samples.is_empty() {
            samples.push(',');
        }
        let _ = write!(samples, "{wait}:{:.3}", run.as_secs_f64() * 1000.0);
    }
}

/// Bytes of an error message kept in records, payloads and dead letters.
pub(super) const ERROR_MAX: usize = 2048;

/// `message`, cut to [`ERROR_MAX`] bytes (at a character boundary) with a mark.
fn truncate(message: &str) -> String {
    if message.len() <= ERROR_MAX {
        return message.to_owned();
    }
    let mut end = ERROR_MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &message[..end], message.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_at_a_character() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(ERROR_MAX);
        let cut = truncate(&long);
        assert!(cut.len() < ERROR_MAX + 40, "{}", cut.len());
        assert!(cut.ends_with(&format!("({} bytes cut)", long.len() - ERROR_MAX)));
    }

    #[test]
    fn samples_stop_at_the_bound() {
        let counters = Counters::default();
        let mut report = Report::default();
        let mut recorder = Recorder {
            counters: &counters,
            report: &mut report,
            queue: "q",
            consumer: "c",
            backoff: Backoff {
                base: std::time::Duration::ZERO,
                cap: std::time::Duration::ZERO,
            },
            track: false,
            ordered: false,
            max_payload: 1024,
        };
        for _ in 0..40 {
            recorder.sample(Some(0), Instant::now());
        }
        assert_eq!(report.tally.samples.split(',').count(), SAMPLES_PER_SETTLE);
    }
}
