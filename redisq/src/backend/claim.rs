//! The claim protocol: what a consumer thread sends Redis and how.
//!
//! A consumer reports what happened to the tasks it finished (a [`Report`]: how many of
//! its claimed tasks are done, the outcomes to record, its tally), and
//! [`ClaimConnection::settle`] turns that into one call of `settle.lua` (laid out by
//! `settle.rs`), which acknowledges, records, promotes due tasks, renews the lease and
//! claims more, in one atomic round trip. When every queue is empty the consumer blocks
//! on their signal lists ([`ClaimConnection::wait`]).

use std::time::Duration;

use redis::Connection;

use super::report::Report;
use super::settle::{settle_call, split_outcomes};
use super::RedisQueueBackend;
use crate::error::Result;
use crate::schema::LANES;
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
}

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
        let mode = match mode {
            Mode::Claim => "claim",
            Mode::Pop => "pop",
        };
        self.send(queue, report, mode, max, track)
    }

    /// Settles `report` on `queue` and hands every other task this consumer claimed there
    /// back to the head of the queue, dropping its lease; says how many went back.
    pub(crate) fn release(&mut self, queue: &str, report: &Report) -> Result<usize> {
        let moved: Vec<usize> = self.send(queue, report, "release", 0, false)?;
        Ok(moved.first().copied().unwrap_or(0))
    }

    /// Sends `report` in `mode`: the outcomes too many for one call first, on their own.
    fn send<T: redis::FromRedisValue>(
        &mut self,
        queue: &str,
        report: &Report,
        mode: &'static str,
        max: usize,
        track: bool,
    ) -> Result<T> {
        let keys = self.backend.keys(queue);
        let (leading, last) = split_outcomes(&report.outcomes);
        for outcomes in leading {
            let call = settle_call(&self.backend, &keys, &self.consumer).outcomes(outcomes);
            let _: Vec<Payload> = call.invocation().invoke(self.con()?)?;
        }
        let call = settle_call(&self.backend, &keys, &self.consumer)
            .report(report, last)
            .mode(mode)
            .take(max, track);
        Ok(call.invocation().invoke(self.con()?)?)
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
