//! What a consumer reports of the tasks it finished, for its next settle: a [`Report`] of
//! [`Outcome`]s and a [`Tally`].

/// What to record of one finished task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It failed and runs again `delay_ms` from now (by the Redis server's clock);
    /// `payload` carries its attempts and errors.
    Retry {
        id: String,
        attempts: u32,
        error: String,
        started_at: u64,
        payload: Vec<u8>,
        delay_ms: u64,
    },
    /// It is set aside: `letter` is its dead-letter record (scored by the server's clock).
    Dead {
        id: String,
        attempts: u32,
        reason: String,
        started_at: u64,
        letter: Vec<u8>,
    },
    /// Only its record changes, to `status` (an item of a batch that failed as a unit).
    Mark {
        id: String,
        status: Marked,
        attempts: u32,
        error: String,
        started_at: u64,
    },
    /// It succeeded with `result` (JSON); sent only for tasks that keep a record.
    Done {
        id: String,
        attempts: u32,
        result: String,
        started_at: u64,
    },
}

/// The status a [`Outcome::Mark`] gives a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marked {
    /// It will run again (with its batch).
    Failed,
    /// It will not run again.
    Dead,
}

impl Outcome {
    pub(super) fn id(&self) -> &str {
        match self {
            Outcome::Retry { id, .. }
            | Outcome::Dead { id, .. }
            | Outcome::Done { id, .. }
            | Outcome::Mark { id, .. } => id,
        }
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
    pub(super) fn is_empty(&self) -> bool {
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
    /// A retry on an ordered queue is among the outcomes: the settle puts it back at the
    /// head with every task taken after it, and holds the queue (nothing after it may run).
    pub(crate) holds: bool,
    /// Keys with a retry among the outcomes: the consumer starts none of their later
    /// tasks it took (they stay at the head of their key's list, behind the retry, and
    /// count as done here without an outcome).
    pub(crate) stopped: std::collections::BTreeSet<String>,
}

impl Report {
    /// Whether there is nothing to settle.
    pub(crate) fn is_empty(&self) -> bool {
        self.done == 0
            && !self.holds
            && self.stopped.is_empty()
            && self.outcomes.is_empty()
            && self.forget.is_empty()
            && self.tally.is_empty()
    }

    /// Forgets everything, once settled (or abandoned).
    pub(crate) fn clear(&mut self) {
        *self = Report::default();
    }
}
