//! The claim protocol: what a consumer thread sends Redis and how.
//!
//! A consumer reports what happened to the tasks it finished ([`Report`]: how many of its
//! claimed tasks are done, the [`Outcome`]s to record, its [`Tally`]), and
//! [`ClaimConnection::settle`] turns that into one call of `settle.lua`, which
//! acknowledges, records, promotes due tasks, renews the lease and claims more, in one
//! atomic round trip. This file alone knows that script's argument layout. When every
//! queue is empty the consumer blocks on their signal lists ([`ClaimConnection::wait`]).

use std::time::Duration;

use redis::{Connection, ScriptInvocation};

use super::scripts::SETTLE;
use super::RedisQueueBackend;
use crate::clock::millis;
use crate::error::Result;
use crate::schema::{QueueKeys, LANES};
use crate::task::Priority;

/// A raw task payload as stored in a list.
pub(crate) type Payload = Vec<u8>;

/// What to record of one finished task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It failed and runs again at `due` (Unix ms); `payload` carries its attempts and errors.
    Retry {
        id: String,
        attempts: u32,
        error: String,
        started_at: u64,
        payload: Vec<u8>,
        due: u64,
    },
    /// It is set aside: `letter` is its dead-letter record, scored `score` (Unix µs).
    Dead {
        id: String,
        attempts: u32,
        reason: String,
        started_at: u64,
        letter: Vec<u8>,
        score: u64,
    },
    /// It succeeded with `result` (JSON); sent only for tasks that keep a record.
    Done {
        id: String,
        attempts: u32,
        result: String,
        started_at: u64,
    },
}

impl Outcome {
    fn id(&self) -> &str {
        match self {
            Outcome::Retry { id, .. } | Outcome::Dead { id, .. } | Outcome::Done { id, .. } => id,
        }
    }

    /// The seven script arguments of an outcome (see `apply_outcomes` in `outcomes.lua`).
    fn add_args(&self, invocation: &mut ScriptInvocation<'_>) {
        match self {
            Outcome::Retry {
                id,
                attempts,
                error,
                started_at,
                payload,
                due,
            } => invocation
                .arg("retry")
                .arg(id)
                .arg(attempts)
                .arg(started_at)
                .arg(error)
                .arg(payload)
                .arg(due),
            Outcome::Dead {
                id,
                attempts,
                reason,
                started_at,
                letter,
                score,
            } => invocation
                .arg("dead")
                .arg(id)
                .arg(attempts)
                .arg(started_at)
                .arg(reason)
                .arg(letter)
                .arg(score),
            Outcome::Done {
                id,
                attempts,
                result,
                started_at,
            } => invocation
                .arg("done")
                .arg(id)
                .arg(attempts)
                .arg(started_at)
                .arg(result)
                .arg("")
                .arg(0),
        };
    }
}

/// What a settle adds to the queue's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) processed: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) dead: u64,
    /// `wait_ms:run_ms` samples, comma-separated.
    pub(crate) samples: String,
}

impl Tally {
    fn is_empty(&self) -> bool {
        *self == Tally::default()
    }
}

/// What a consumer finished on one queue since its last settle there.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// How many tasks at the head of the claimed list are finished.
    pub(crate) done: usize,
    /// What to record of them.
    pub(crate) outcomes: Vec<Outcome>,
    /// Ids of finished tasks with no outcome to record (no status record), whose state
    /// the queue may track: forgotten with the settle.
    pub(crate) forget: Vec<String>,
    /// What they add to the queue's statistics.
    pub(crate) tally: Tally,
}

impl Report {
    /// Whether there is nothing to settle.
    pub(crate) fn is_empty(&self) -> bool {
        self.done == 0
            && self.outcomes.is_empty()
            && self.forget.is_empty()
            && self.tally.is_empty()
    }

    /// Forgets everything, once settled (or abandoned).
    pub(crate) fn clear(&mut self) {
        *self = Report::default();
    }
}

/// How a settle ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Acknowledge, renew the lease and claim up to `max` tasks (at least once).
    Claim,
    /// Pop up to `max` tasks (at most once): nothing is acknowledged.
    Pop,
}

/// Outcomes one script call records at most; a larger report sends its leading outcomes
/// in calls of their own first (recording twice is harmless, acknowledging early is not).
const OUTCOMES_PER_CALL: usize = 500;

/// One consumer thread's connection to Redis and its side of the claim protocol.
///
/// The connection is opened on first use and dropped by [`disconnect`](Self::disconnect)
/// after an error; its reads may block for the backend's block timeout.
pub(crate) struct ClaimConnection {
    backend: RedisQueueBackend,
    consumer: String,
    con: Option<Connection>,
}

impl ClaimConnection {
    pub(crate) fn new(backend: RedisQueueBackend, consumer: String) -> ClaimConnection {
        ClaimConnection {
            backend,
            consumer,
            con: None,
        }
    }

    /// Drops the connection; the next call opens a new one.
    pub(crate) fn disconnect(&mut self) {
        self.con = None;
    }

    fn con(&mut self) -> Result<&mut Connection> {
        if self.con.is_none() {
            let config = self.backend.config();
            let read = config.block_timeout;
            self.con = Some(self.backend.blocking_connection(read)?);
        }
        match self.con.as_mut() {
            Some(con) => Ok(con),
            None => Err(crate::Error::Internal(
                "consumer connection missing".to_owned(),
            )),
        }
    }

    /// Settles `report` on `queue` and takes up to `max` more tasks (`mode`); `track`
    /// marks the taken tasks `processing` for their status records. Returns the tasks
    /// taken, oldest first.
    pub(crate) fn settle(
        &mut self,
        queue: &str,
        report: &Report,
        mode: Mode,
        max: usize,
        track: bool,
    ) -> Result<Vec<Payload>> {
        let keys = self.backend.keys(queue);
        let (leading, last) = split_outcomes(&report.outcomes);
        for outcomes in leading {
            let call = settle_call(&self.backend, &keys, &self.consumer)
                .outcomes(outcomes)
                .mode("record");
            let _: Vec<Payload> = call.invocation().invoke(self.con()?)?;
        }
        let mode = match mode {
            Mode::Claim => "claim",
            Mode::Pop => "pop",
        };
        let call = settle_call(&self.backend, &keys, &self.consumer)
            .report(report, last)
            .mode(mode)
            .take(max, track);
        Ok(call.invocation().invoke(self.con()?)?)
    }

    /// Settles `report` on `queue` and hands every other task this consumer claimed there
    /// back to the head of the queue, dropping its lease; says how many went back.
    pub(crate) fn release(&mut self, queue: &str, report: &Report) -> Result<usize> {
        let keys = self.backend.keys(queue);
        let (leading, last) = split_outcomes(&report.outcomes);
        for outcomes in leading {
            let call = settle_call(&self.backend, &keys, &self.consumer)
                .outcomes(outcomes)
                .mode("record");
            let _: Vec<Payload> = call.invocation().invoke(self.con()?)?;
        }
        let call = settle_call(&self.backend, &keys, &self.consumer)
            .report(report, last)
            .mode("release");
        let moved: Vec<usize> = call.invocation().invoke(self.con()?)?;
        Ok(moved.first().copied().unwrap_or(0))
    }

    /// Waits up to `timeout` for a wake-up token on any of the queues' signal lists; true
    /// when one came (tasks may be waiting: claim them with [`settle`](Self::settle)).
    pub(crate) fn wait(&mut self, queues: &[&str], timeout: Duration) -> Result<bool> {
        let mut cmd = redis::cmd("BLPOP");
        for queue in queues {
            cmd.arg(self.backend.keys(queue).signal());
        }
        let woke: Option<(String, String)> = cmd.arg(timeout.as_secs_f64()).query(self.con()?)?;
        Ok(woke.is_some())
    }

    /// Waits up to `timeout` for one task in any lane of any of the queues, in their
    /// order, and pops it without a lease (at most once). Returns the queue's index and
    /// the payload.
    pub(crate) fn pop_blocking(
        &mut self,
        queues: &[&str],
        timeout: Duration,
    ) -> Result<Option<(usize, Payload)>> {
        let mut cmd = redis::cmd("BLPOP");
        let mut lanes = Vec::new();
        for (index, queue) in queues.iter().enumerate() {
            let keys = self.backend.keys(queue);
            for lane in LANES {
                let key = keys.lane(lane);
                cmd.arg(&key);
                lanes.push((key, index));
            }
        }
        let popped: Option<(String, Payload)> =
            cmd.arg(timeout.as_secs_f64()).query(self.con()?)?;
        Ok(popped.and_then(|(key, payload)| {
            lanes
                .iter()
                .find(|(lane, _)| *lane == key)
                .map(|(_, index)| (*index, payload))
        }))
    }

    /// The consumer's claimed list on `queue`, oldest first: the truth after an error.
    pub(crate) fn claimed(&mut self, queue: &str) -> Result<Vec<Payload>> {
        let key = self.backend.keys(queue).claimed(&self.consumer);
        Ok(redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(self.con()?)?)
    }

    /// Puts popped but unstarted tasks back at the head of `queue`'s normal lane, in
    /// their order (at most once, at shutdown).
    pub(crate) fn push_front(&mut self, queue: &str, payloads: &[Payload]) -> Result<()> {
        let key = self.backend.keys(queue).lane(Priority::Normal);
        let mut pipe = redis::pipe();
        // LPUSH puts its last argument first: push each chunk, last chunk first, reversed.
        for chunk in payloads.rchunks(1_000) {
            let mut cmd = redis::cmd("LPUSH");
            cmd.arg(&key);
            for payload in chunk.iter().rev() {
                cmd.arg(payload);
            }
            pipe.add_command(cmd).ignore();
        }
        Ok(pipe.query::<()>(self.con()?)?)
    }
}

/// The outcomes too many for the last call, in calls of their own, and the rest.
fn split_outcomes(outcomes: &[Outcome]) -> (std::slice::Chunks<'_, Outcome>, &[Outcome]) {
    let last = outcomes.len().saturating_sub(1) / OUTCOMES_PER_CALL * OUTCOMES_PER_CALL;
    let (leading, rest) = outcomes.split_at(last);
    (leading.chunks(OUTCOMES_PER_CALL), rest)
}

/// One call of `settle.lua`, argument by argument.
pub(super) struct SettleCall<'a> {
    backend: &'a RedisQueueBackend,
    keys: &'a QueueKeys,
    consumer: &'a str,
    mode: &'static str,
    done: usize,
    max: usize,
    track: bool,
    forget: &'a [String],
    outcomes: &'a [Outcome],
    tally: Option<&'a Tally>,
}

/// A settle of nothing for `consumer` on the queue of `keys`: set what it carries.
pub(super) fn settle_call<'a>(
    backend: &'a RedisQueueBackend,
    keys: &'a QueueKeys,
    consumer: &'a str,
) -> SettleCall<'a> {
    SettleCall {
        backend,
        keys,
        consumer,
        mode: "record",
        done: 0,
        max: 0,
        track: false,
        forget: &[],
        outcomes: &[],
        tally: None,
    }
}

impl<'a> SettleCall<'a> {
    pub(super) fn mode(mut self, mode: &'static str) -> Self {
        self.mode = mode;
        self
    }

    fn outcomes(mut self, outcomes: &'a [Outcome]) -> Self {
        self.outcomes = outcomes;
        self
    }

    /// Everything of `report` but its outcomes, which are `outcomes`.
    fn report(mut self, report: &'a Report, outcomes: &'a [Outcome]) -> Self {
        self.done = report.done;
        self.forget = &report.forget;
        self.outcomes = outcomes;
        self.tally = Some(&report.tally);
        self
    }

    fn take(mut self, max: usize, track: bool) -> Self {
        self.max = max;
        self.track = track;
        self
    }

    /// The script call: the layout documented at the top of `settle.lua`.
    pub(super) fn invocation(&self) -> ScriptInvocation<'static> {
        let k = self.keys;
        let config = self.backend.config();
        let ns = self.backend.namespace_keys();
        let mut invocation = SETTLE.prepare_invoke();
        invocation
            .key(k.lane(Priority::Normal))
            .key(k.claimed(self.consumer))
            .key(k.leases())
            .key(k.scheduled())
            .key(k.dead())
            .key(k.lane(Priority::High))
            .key(k.lane(Priority::Low))
            .key(k.signal())
            .key(k.stats())
            .key(k.throughput())
            .key(k.latency())
            .key(k.counters())
            .key(k.state());
        for outcome in self.outcomes {
            invocation
                .key(ns.record(outcome.id()))
                .key(ns.record_done(outcome.id()));
        }
        let nothing = Tally::default();
        let tally = self.tally.unwrap_or(&nothing);
        invocation
            .arg(self.consumer)
            .arg(millis(config.lease))
            .arg(self.mode)
            .arg(self.done)
            .arg(self.max)
            .arg(if self.track { "1" } else { "0" })
            .arg(config.dead_max)
            .arg(config.dead_max_age_ms())
            .arg(config.result_ttl_secs())
            .arg(config.dead_ttl_secs())
            .arg(tally.processed)
            .arg(tally.failed)
            .arg(tally.retried)
            .arg(tally.dead)
            .arg(&tally.samples)
            .arg(self.forget.len());
        for id in self.forget {
            invocation.arg(id);
        }
        invocation.arg(self.outcomes.len());
        for outcome in self.outcomes {
            outcome.add_args(&mut invocation);
        }
        invocation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(n: usize) -> Vec<Outcome> {
        (0..n)
            .map(|i| Outcome::Done {
                id: i.to_string(),
                attempts: 1,
                result: "null".to_owned(),
                started_at: 0,
            })
            .collect()
    }

    #[test]
    fn large_reports_are_split_with_the_rest_last() {
        let sizes = |n: usize| {
            let outcomes = done(n);
            let (leading, last) = split_outcomes(&outcomes);
            (
                leading.map(<[Outcome]>::len).collect::<Vec<_>>(),
                last.len(),
            )
        };
        assert_eq!(sizes(0), (vec![], 0));
        assert_eq!(sizes(1), (vec![], 1));
        assert_eq!(sizes(500), (vec![], 500));
        assert_eq!(sizes(501), (vec![500], 1));
        assert_eq!(sizes(1_200), (vec![500, 500], 200));
    }
}
