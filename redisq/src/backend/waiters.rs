//! Waiting on the signal lists of queues in several cluster slots at once. One blocking
//! pop names the keys of one slot only, so a consumer whose queues are in several slots
//! has a waiter thread per slot, each blocking on its slot's lists on a connection of its
//! own; the consumer waits for the first of them to answer.

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::link::Blocking;
use super::RedisQueueBackend;
use crate::error::{Error, Result};

/// The shortest blocking pop a waiter sends.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// One consumer's waiter threads, one per slot of its queues.
pub(crate) struct SlotWaiters {
    /// Each slot's signal lists: what these waiters wait on.
    groups: Vec<Vec<String>>,
    /// Starts a wait until the deadline sent, per waiter.
    go: Vec<Sender<Instant>>,
    /// Which waiters are waiting now.
    busy: Vec<bool>,
    /// Each ended wait: the waiter's index and whether a token came.
    answers: Receiver<(usize, bool)>,
}

impl SlotWaiters {
    /// Starts a waiter thread per group of signal lists (each group in one slot). The
    /// threads end once this value is dropped and their current wait is over.
    pub(crate) fn start(
        backend: &RedisQueueBackend,
        groups: Vec<Vec<String>>,
    ) -> Result<SlotWaiters> {
        let (answer, answers) = crossbeam_channel::unbounded();
        let mut go = Vec::with_capacity(groups.len());
        for (index, keys) in groups.iter().enumerate() {
            let (start, starts) = crossbeam_channel::unbounded::<Instant>();
            let (backend, keys, answer) = (backend.clone(), keys.clone(), answer.clone());
            thread::Builder::new()
                .name(format!("redisq-wait-{index}"))
                .spawn(move || wait_loop(&backend, &keys, index, &starts, &answer))
                .map_err(Error::Spawn)?;
            go.push(start);
        }
        let busy = vec![false; groups.len()];
        Ok(SlotWaiters {
            groups,
            go,
            busy,
            answers,
        })
    }

    /// Whether these waiters wait on exactly `groups`.
    pub(crate) fn serves(&self, groups: &[Vec<String>]) -> bool {
        self.groups == groups
    }

    /// Waits up to `timeout` for a token on any slot's lists: true when one came (also
    /// when one came after an earlier wait had returned).
    pub(crate) fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut woke = false;
        while let Ok((index, token)) = self.answers.try_recv() {
            self.busy[index] = false;
            woke |= token;
        }
        if woke {
            return true;
        }
        for (index, start) in self.go.iter().enumerate() {
            if !self.busy[index] && start.send(deadline).is_ok() {
                self.busy[index] = true;
            }
        }
        while let Ok((index, token)) = self.answers.recv_deadline(deadline) {
            self.busy[index] = false;
            if token {
                return true;
            }
        }
        false
    }
}

/// A waiter thread: for each deadline it is sent, one blocking pop on `keys` until then,
/// and the answer. An error is a wait without a token (logged; the connection is opened
/// again for the next): the consumer meets the same error at its next call.
fn wait_loop(
    backend: &RedisQueueBackend,
    keys: &[String],
    index: usize,
    starts: &Receiver<Instant>,
    answer: &Sender<(usize, bool)>,
) {
    let mut con: Option<Blocking> = None;
    for deadline in starts {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_WAIT);
        let token = match pop(backend, &mut con, keys, left) {
            Ok(token) => token,
            Err(err) => {
                log::debug!("waiter on {keys:?}: {err}");
                con = None;
                thread::sleep(left.min(Duration::from_millis(100)));
                false
            }
        };
        if answer.send((index, token)).is_err() {
            return;
        }
    }
}

/// `BLPOP keys… left`: whether a token came.
fn pop(
    backend: &RedisQueueBackend,
    con: &mut Option<Blocking>,
    keys: &[String],
    left: Duration,
) -> Result<bool> {
    if con.is_none() {
        *con = Some(backend.blocking_connection(backend.config().block_timeout)?);
    }
    let Some(con) = con.as_mut() else {
        return Ok(false);
    };
    let woke: Option<(String, String)> = redis::cmd("BLPOP")
        .arg(keys)
        .arg(left.as_secs_f64())
        .query(con)?;
    Ok(woke.is_some())
}
