//! The names inside Redis values: record fields, statistics fields, counters, status
//! names, the encodings of a task's state and a consumer's fence, lanes by index.

use crate::status::TaskStatus;
use crate::task::Priority;

use super::MINUTE_MS;

/// Declares a module of name constants and `ALL`, every one of them, for the Lua prelude.
macro_rules! names {
    ($(#[$doc:meta])* $module:ident { $($(#[$item:meta])* $name:ident = $value:literal,)* }) => {
        $(#[$doc])*
        pub(crate) mod $module {
            $($(#[$item])* pub(crate) const $name: &str = $value;)*

            /// Every name, for the Lua prelude.
            pub(in crate::schema) const ALL: &[&str] = &[$($name),*];
        }
    };
}

names! {
    /// The fields of a status record (`<ns>:{<queue>}:task:<id>`).
    field {
        /// The task's [`TaskStatus`](crate::TaskStatus), by [`status_name`](super::status_name).
        STATUS = "status",
        /// Its queue.
        QUEUE = "queue",
        /// Its wire name.
        NAME = "name",
        /// When it was enqueued (Unix ms).
        CREATED_AT = "created_at",
        /// Its lane, by [`Priority::lane_name`](crate::Priority::lane_name).
        LANE = "lane",
        /// Its place in its lane: the lane's `pushed` count just after it was pushed.
        SEQ = "seq",
        /// When its last attempt started (Unix ms).
        STARTED_AT = "started_at",
        /// The consumer that ran it last.
        WORKER = "worker",
        /// Attempts made.
        ATTEMPTS = "attempts",
        /// When it finished, or its last attempt failed (Unix ms).
        FINISHED_AT = "finished_at",
        /// What it returned, as JSON.
        RESULT = "result",
        /// Its last error.
        ERROR = "error",
        /// Present while a caller of `wait` waits for it.
        WAITING = "waiting",
        /// Its ordering key, when it has one.
        KEY = "key",
    }
}

names! {
    /// The fields of a queue's statistics hash (`<ns>:{<queue>}:stats`).
    stat {
        /// Tasks (batch items) that succeeded.
        PROCESSED = "processed",
        /// Attempts that failed.
        FAILED = "failed",
        /// Failed attempts scheduled to run again.
        RETRIED = "retried",
        /// Tasks set aside as dead letters.
        DEAD = "dead",
        /// When a task last succeeded (Unix ms).
        LAST_PROCESSED = "last_processed",
    }
}

names! {
    /// The fields of an ordered queue's owner hash (`<ns>:{<queue>}:owner`).
    owner {
        /// The consumer that holds the queue.
        CONSUMER = "consumer",
        /// Since when (Unix ms).
        SINCE = "since",
    }
}

/// The three lanes, highest first.
pub(crate) const LANES: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

/// The field of the counters hash that counts the tasks ever pushed onto `lane`.
pub(crate) fn pushed_counter(lane: Priority) -> String {
    format!("pushed:{}", lane.lane_name())
}

/// The field of the counters hash that counts the keyed tasks waiting or running.
pub(crate) const KEYED_COUNTER: &str = "keyed";

/// The field of the counters hash that counts the ordering keys with tasks.
pub(crate) const KEYS_COUNTER: &str = "keys";

/// Where claimed lists' segments say a task came from when it came from a key list.
pub(crate) const KEYED_SEGMENT: usize = 4;

/// The field of the counters hash that numbers fencing tokens.
pub(crate) const FENCE_COUNTER: &str = "fence";

/// The field of the counters hash that sums the bytes of the dead letters.
pub(crate) const DEAD_BYTES_COUNTER: &str = "dead_bytes";

/// How a status is written in a record.
pub(crate) fn status_name(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Queued => "queued",
        TaskStatus::Scheduled => "scheduled",
        TaskStatus::Processing => "processing",
        TaskStatus::Done => "done",
        TaskStatus::Failed => "failed",
        TaskStatus::Dead => "dead",
    }
}

/// Every status, for parsing and for the Lua prelude.
pub(crate) const STATUSES: [TaskStatus; 6] = [
    TaskStatus::Queued,
    TaskStatus::Scheduled,
    TaskStatus::Processing,
    TaskStatus::Done,
    TaskStatus::Failed,
    TaskStatus::Dead,
];

/// The status a record's text names.
pub(crate) fn parse_status(name: &str) -> Option<TaskStatus> {
    STATUSES.into_iter().find(|s| status_name(*s) == name)
}

/// Where a task moved since its status record was written, as the queue's `state` hash
/// holds it: written by the scripts that move tasks without their record's key (claims,
/// promotion of due tasks, hand-back, requeue), read together with the record, and
/// removed when the task's outcome is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Back in a lane, at place `seq`: `pushed` of the lane minus `seq` tasks were pushed
    /// behind it (0 or below for tasks handed back to the head).
    Queued { lane: Priority, seq: i64 },
    /// Taken by `consumer` at `started_at` (Unix ms).
    Processing { started_at: u64, consumer: String },
    /// Back in its key's list (it has no place in a lane).
    Keyed,
}

impl State {
    /// Reads a value of the `state` hash: `q:<lane>:<seq>`, `p:<started_at>:<consumer>` or
    /// `k:0:0`.
    pub(crate) fn parse(value: &str) -> Option<State> {
        let mut parts = value.splitn(3, ':');
        let kind = parts.next()?;
        let first = parts.next()?;
        let rest = parts.next()?;
        match kind {
            "q" => Some(State::Queued {
                lane: *LANES.get(first.parse::<usize>().ok()?.checked_sub(1)?)?,
                seq: rest.parse().ok()?,
            }),
            "p" => Some(State::Processing {
                started_at: first.parse().ok()?,
                consumer: rest.to_owned(),
            }),
            "k" => Some(State::Keyed),
            _ => None,
        }
    }
}

/// A lane's place in [`LANES`], from 1 as Lua counts: how scripts name lanes.
pub(crate) fn lane_index(lane: Priority) -> usize {
    LANES.iter().position(|l| *l == lane).map_or(2, |i| i + 1)
}

/// A consumer's fence as the `fences` hash holds it: `<token>:<settle number>:<1 when its
/// claimed list has lane segments>`; the token and the settle number.
pub(crate) fn parse_fence(value: &str) -> Option<(u64, u64)> {
    let mut parts = value.split(':');
    let token = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((token, seq))
}

/// The minute a Unix time in milliseconds falls in: the throughput hash's field.
pub(crate) fn minute(ms: u64) -> u64 {
    ms / MINUTE_MS
}
