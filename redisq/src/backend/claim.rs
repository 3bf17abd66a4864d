//! The claim protocol: what a consumer thread sends Redis and how.
//!
//! A consumer reports what happened to the tasks it finished (a [`Report`]: how many of
//! its claimed tasks are done, the outcomes to record, its tally), and
//! [`ClaimConnection::settle`] turns that into one call of `settle.lua` (laid out by
//! `settle.rs`), which acknowledges, records, promotes due tasks, renews the lease and
//! claims more, in one atomic round trip. When every queue is empty the consumer blocks
//! on their signal lists ([`ClaimConnection::wait`]).

use std::collections::HashMap;

use super::link::Blocking;
use super::report::Report;
use super::settle::{settle_call, split_outcomes};
use super::waiters::SlotWaiters;
use super::RedisQueueBackend;
use crate::error::{Error, Result};
use crate::schema;
use crate::task::Priority;

/// A raw task payload as stored in a list.
pub(crate) type Payload = Vec<u8>;

/// How a settle ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Acknowledge, renew the lease and claim up to `max` tasks (at least once).
    Claim,
    /// Pop up to `max` tasks (at most once): nothing is acknowledged.
    Pop,
    /// As `Claim`, but to fill a batch: a suspect is not taken (it comes alone).
    Fill,
}

/// Tasks one claim takes at most, whatever the prefetch or batch size: a larger batch is
/// filled by several claims, so that no script holds Redis for long.
pub(crate) const CLAIM_MAX: usize = 1_000;

/// What a settle came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Done; these tasks were taken, oldest first. When the first is a suspect (a lease
    /// ran out while a consumer held it), it comes alone, with that count.
    Taken { items: Vec<Payload>, suspect: u64 },
    /// Nothing taken: another consumer owns the ordered queue (what was reported landed).
    Busy,
    /// Nothing taken: the ordered queue's head task waits for its retry, `ms` more.
    Held { ms: u64 },
    /// Refused: this consumer's lease ran out and its tasks went back to the queue (it
    /// was paused, or cut off, for longer than the lease). Nothing of the report was
    /// recorded; the tasks run elsewhere.
    Stale,
}

/// One consumer thread's connection to Redis and its side of the claim protocol, with
/// its fencing token on each queue and the number of its last call.
///
/// The connection is opened on first use and dropped by [`disconnect`](Self::disconnect)
/// after an error; its reads may block for the backend's block timeout.
pub(crate) struct ClaimConnection {
    pub(super) backend: RedisQueueBackend,
    consumer: String,
    con: Option<Blocking>,
    /// The consumer's fencing token per queue (absent: it holds no lease there).
    tokens: HashMap<String, u64>,
    /// The number of the consumer's last call (every settle call has its own).
    seq: u64,
    /// Per queue, while a report is in flight there (sent, its reply not read), the number
    /// of the call that settles it: once the queue's fence holds it, that report landed.
    expected: HashMap<String, u64>,
    /// On a cluster, the waiter threads of queues in several slots (made on first wait).
    pub(super) waiters: Option<SlotWaiters>,
}

impl ClaimConnection {
    pub(crate) fn new(backend: RedisQueueBackend, consumer: String) -> ClaimConnection {
        ClaimConnection {
            backend,
            consumer,
            con: None,
            tokens: HashMap::new(),
            seq: 0,
            expected: HashMap::new(),
            waiters: None,
        }
    }

    /// The consumer's fencing token on `queue`, while it holds a lease there.
    pub(crate) fn token(&self, queue: &str) -> Option<u64> {
        self.tokens.get(queue).copied()
    }

    /// Drops the connection; the next call opens a new one.
    pub(crate) fn disconnect(&mut self) {
        self.con = None;
    }

    pub(super) fn con(&mut self) -> Result<&mut Blocking> {
        if self.con.is_none() {
            let read = self.backend.config().block_timeout;
            self.con = Some(self.backend.blocking_connection(read)?);
        }
        match self.con.as_mut() {
            Some(con) => Ok(con),
            None => Err(crate::Error::Internal(
                "consumer connection missing".to_owned(),
            )),
        }
    }

    /// Settles `report` on `queue` and takes up to `max` more tasks (at most
    /// [`CLAIM_MAX`]) as `mode` says; `take.track` marks the taken tasks `processing` for
    /// their status records, `take.ordered` takes only as the queue's owner.
    pub(crate) fn settle(
        &mut self,
        queue: &str,
        report: &Report,
        mode: Mode,
        max: usize,
        take: Take,
    ) -> Result<Settled> {
        let mode = match mode {
            Mode::Claim => "claim",
            Mode::Fill => "fill",
            Mode::Pop => "pop",
        };
        let reply = self.send(queue, report, mode, max.min(CLAIM_MAX), take)?;
        Ok(match reply {
            Reply::Ok {
                status: Status::Ok,
                n,
                items,
                ..
            } => Settled::Taken { items, suspect: n },
            Reply::Ok {
                status: Status::Busy,
                ..
            } => Settled::Busy,
            Reply::Ok {
                status: Status::Held,
                n,
                ..
            } => Settled::Held { ms: n },
            Reply::Stale => Settled::Stale,
        })
    }

    /// Settles `report` on `queue` and hands every other task this consumer claimed there
    /// back to the head of its lane, dropping its lease; says how many went back (`None`:
    /// stale, they had gone back already).
    pub(crate) fn release(&mut self, queue: &str, report: &Report) -> Result<Option<usize>> {
        if self.token(queue).is_none() && report.is_empty() {
            return Ok(Some(0));
        }
        Ok(
            match self.send(queue, report, "release", 0, Take::default())? {
                Reply::Ok { n, .. } => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                Reply::Stale => None,
            },
        )
    }

    /// After an error: whether the report last sent on `queue` landed, from the queue's
    /// fence of this consumer, whose token it adopts (a claim whose reply was lost made
    /// one). `Some(false)` also when no report is in flight there (the current one was
    /// never sent); `None` when the consumer holds no lease there (its tasks went back).
    pub(crate) fn landed(&mut self, queue: &str) -> Result<Option<bool>> {
        let key = self.backend.keys(queue).fences();
        let consumer = self.consumer.clone();
        let fence: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg(consumer)
            .query(self.con()?)?;
        let in_flight = self.expected.get(queue).copied();
        match fence.as_deref().and_then(schema::parse_fence) {
            Some((token, seq)) => {
                self.tokens.insert(queue.to_owned(), token);
                Ok(Some(in_flight.is_some_and(|expected| seq >= expected)))
            }
            None => {
                self.tokens.remove(queue);
                Ok(None)
            }
        }
    }

    /// Forgets the report in flight on `queue`, once the consumer has acted on what
    /// [`landed`](Self::landed) said (it stays in flight until then, so that an error in
    /// between gets the same answer again).
    pub(crate) fn forget_in_flight(&mut self, queue: &str) {
        self.expected.remove(queue);
    }

    /// Sends `report` in `mode`: the outcomes too many for one call first, on their own,
    /// each call with the consumer's token and a number of its own.
    fn send(
        &mut self,
        queue: &str,
        report: &Report,
        mode: &'static str,
        max: usize,
        take: Take,
    ) -> Result<Reply> {
        let keys = self.backend.keys(queue);
        let (leading, last) = split_outcomes(&report.outcomes);
        let calls = u64::try_from(leading.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let first = self.seq + 1;
        self.seq += calls;
        self.expected.insert(queue.to_owned(), self.seq);
        let token = self.token(queue).unwrap_or(0);
        for (n, outcomes) in leading.enumerate() {
            let seq = first + u64::try_from(n).unwrap_or(0);
            let call = settle_call(&self.backend, &keys, &self.consumer)
                .fence(token, seq)
                .outcomes(outcomes);
            let reply = Reply::parse(call.invocation().invoke(self.con()?)?)?;
            if reply == Reply::Stale {
                return Ok(self.stale(queue));
            }
        }
        let call = settle_call(&self.backend, &keys, &self.consumer)
            .fence(token, self.seq)
            .report(report, last)
            .mode(mode)
            .take(max, take);
        let reply = Reply::parse(call.invocation().invoke(self.con()?)?)?;
        self.expected.remove(queue);
        match &reply {
            Reply::Stale => return Ok(self.stale(queue)),
            Reply::Ok { token, .. } if *token > 0 && mode != "release" => {
                self.tokens.insert(queue.to_owned(), *token);
            }
            Reply::Ok { .. } => {
                self.tokens.remove(queue);
            }
        }
        Ok(reply)
    }

    fn stale(&mut self, queue: &str) -> Reply {
        self.tokens.remove(queue);
        self.expected.remove(queue);
        Reply::Stale
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
        if payloads.is_empty() {
            return Ok(());
        }
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

/// How a claim takes on one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Take {
    /// Mark the taken tasks `processing` in the queue's state hash (their records).
    pub(crate) track: bool,
    /// The queue is ordered: take only as its owner, hold it for a retry.
    pub(crate) ordered: bool,
    /// Tasks of one ordering key a claim takes at most (0 or 1: one; a batch task's queue
    /// takes up to a batch of one key, which then fails or succeeds as a unit).
    pub(crate) per_key: usize,
}

/// What `settle.lua` answers: `{ status, token, n, { items… } }`.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Ok {
        status: Status,
        token: u64,
        n: u64,
        items: Vec<Payload>,
    },
    Stale,
}

/// The status of a reply that was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Busy,
    Held,
}

impl Reply {
    fn parse(reply: (String, String, String, Vec<Payload>)) -> Result<Reply> {
        let (status, token, n, items) = reply;
        let status = match status.as_str() {
            "stale" => return Ok(Reply::Stale),
            "busy" => Status::Busy,
            "held" => Status::Held,
            _ => Status::Ok,
        };
        let (Ok(token), Ok(n)) = (token.parse(), n.parse()) else {
            return Err(Error::Internal(format!(
                "unexpected settle reply `{status:?} {token} {n}`"
            )));
        };
        Ok(Reply::Ok {
            status,
            token,
            n,
            items,
        })
    }
}
