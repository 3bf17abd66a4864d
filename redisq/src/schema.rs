//! The Redis schema: every key redisq writes, every field of a status record, every
//! counter and status name, spelled in this one module.
//!
//! The Lua scripts get every key they touch as a full name in `KEYS` (built here), and
//! the field, counter and status names through a prelude generated from the constants
//! below ([`lua_prelude`]), so that no script spells a name of its own.
//!
//! All keys of one queue share the Redis Cluster hash tag `{queue}`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<ns>:{<queue>}:pending` | list | task payloads waiting in the normal lane, oldest at the head |
//! | `<ns>:{<queue>}:pending:high` | list | the high-priority lane |
//! | `<ns>:{<queue>}:pending:low` | list | the low-priority lane |
//! | `<ns>:{<queue>}:signal` | list | wake-up tokens for blocked consumers (at most 64) |
//! | `<ns>:{<queue>}:claimed:<consumer>` | list | payloads taken by one consumer thread and not yet acknowledged |
//! | `<ns>:{<queue>}:leases` | sorted set | consumer id → lease deadline (Unix ms) |
//! | `<ns>:{<queue>}:scheduled` | sorted set | payloads of delayed tasks and retries → due time (Unix ms) |
//! | `<ns>:{<queue>}:dead` | sorted set | dead-letter records (JSON) → when they died (Unix µs) |
//! | `<ns>:{<queue>}:stats` | hash | processed, failed, retried, dead counts; last_processed |
//! | `<ns>:{<queue>}:counters` | hash | `pushed:<lane>` counts (for positions), the fence number, dead-letter bytes |
//! | `<ns>:{<queue>}:state` | hash | task id → where it moved since its record was written ([`State`]) |
//! | `<ns>:{<queue>}:fences` | hash | consumer id → its fencing token and last settle number |
//! | `<ns>:{<queue>}:deliveries` | hash | task → leases that ran out while it was held (poison count) |
//! | `<ns>:{<queue>}:claimed:<consumer>:lanes` | list | the lanes of a consumer's claimed list, by segment |
//! | `<ns>:{<queue>}:throughput` | hash | minute (Unix ms / 60,000) → tasks processed in it (the last few minutes) |
//! | `<ns>:{<queue>}:latency` | list | recent `wait_ms:run_ms` samples (at most 1,000) |
//!
//! Outside any queue's slot:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<ns>:task:<id>` | hash | a task's status record ([`field`]; expires once finished) |
//! | `<ns>:task:<id>:done` | list | a wake-up for callers of `wait` (expires after 60 s) |
//! | `<ns>:queues` | set | the queues ever enqueued to or served |
//! | `<ns>:workers` | hash | worker id → its heartbeat (JSON) |

use std::fmt::Write as _;

use crate::status::TaskStatus;
use crate::task::Priority;

/// Declares a module of name constants and `ALL`, every one of them, for the Lua prelude.
macro_rules! names {
    ($(#[$doc:meta])* $module:ident { $($(#[$item:meta])* $name:ident = $value:literal,)* }) => {
        $(#[$doc])*
        pub(crate) mod $module {
            $($(#[$item])* pub(crate) const $name: &str = $value;)*

            /// Every name, for the Lua prelude.
            pub(super) const ALL: &[&str] = &[$($name),*];
        }
    };
}

names! {
    /// The fields of a status record (`<ns>:task:<id>`).
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

/// The three lanes, highest first.
pub(crate) const LANES: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

/// The field of the counters hash that counts the tasks ever pushed onto `lane`.
pub(crate) fn pushed_counter(lane: Priority) -> String {
    format!("pushed:{}", lane.lane_name())
}

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

/// The status a record's text names.
pub(crate) fn parse_status(name: &str) -> Option<TaskStatus> {
    const ALL: [TaskStatus; 6] = [
        TaskStatus::Queued,
        TaskStatus::Scheduled,
        TaskStatus::Processing,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Dead,
    ];
    ALL.into_iter().find(|s| status_name(*s) == name)
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
}

impl State {
    /// Reads a value of the `state` hash: `q:<lane>:<seq>` or `p:<started_at>:<consumer>`.
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
            _ => None,
        }
    }
}

/// The Lua prelude of every script: the names above, as Lua tables `F` (record fields),
/// `STAT` (statistics fields) and `S` (status names), and the lane names, so that scripts
/// say `F.status`, never `'status'`.
pub(crate) fn lua_prelude() -> String {
    let mut lua = String::from("local F = {");
    for name in field::ALL {
        let _ = write!(lua, " {name} = '{name}',");
    }
    lua.push_str(" }\nlocal STAT = {");
    for name in stat::ALL {
        let _ = write!(lua, " {name} = '{name}',");
    }
    lua.push_str(" }\nlocal S = {");
    for status in [
        TaskStatus::Queued,
        TaskStatus::Scheduled,
        TaskStatus::Processing,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Dead,
    ] {
        let name = status_name(status);
        let _ = write!(lua, " {name} = '{name}',");
    }
    lua.push_str(" }\n");
    // Lanes by index in the order they are taken (LANES): names and pushed counters.
    lua.push_str("local LANE_NAMES = {");
    for lane in LANES {
        let _ = write!(lua, " '{}',", lane.lane_name());
    }
    lua.push_str(" }\nlocal PUSHED = {");
    for lane in LANES {
        let _ = write!(lua, " '{}',", pushed_counter(lane));
    }
    let _ = writeln!(
        lua,
        " }}\nlocal NORMAL = {}\nlocal FENCE_COUNTER = '{FENCE_COUNTER}'\n\
         local DEAD_BYTES = '{DEAD_BYTES_COUNTER}'",
        lane_index(Priority::Normal)
    );
    // The queue's keys every queue script gets first, in `QueueKeys::script_keys` order.
    lua.push_str("local QUEUE_KEYS = ");
    let _ = writeln!(lua, "{}", SCRIPT_KEYS.len());
    lua.push_str("local function queue_keys()\n  return {");
    for (n, name) in SCRIPT_KEYS.iter().enumerate() {
        let _ = write!(lua, " {name} = KEYS[{}],", n + 1);
    }
    lua.push_str(" }\nend\n");
    let _ = writeln!(
        lua,
        "local MINUTE_MS = {MINUTE_MS}\nlocal THROUGHPUT_TTL = {THROUGHPUT_TTL_SECS}\n\
         local SIGNAL_MAX = {SIGNAL_MAX}\nlocal LATENCY_MAX = {LATENCY_MAX}\n\
         local DONE_TTL = {DONE_TTL_SECS}"
    );
    // The two forms of a `state` value, as `State::parse` reads them, and a fence's.
    lua.push_str(
        "local function state_queued(lane, seq) return 'q:' .. lane .. ':' .. seq end\n\
         local function state_processing(now, consumer) return 'p:' .. now .. ':' .. consumer end\n\
         local function fence_value(token, seq) return token .. ':' .. seq end\n\
         local function fence_parse(value)\n  \
           local token, seq = string.match(value or '', '^(%d+):(%d+)$')\n  \
           return tonumber(token), tonumber(seq)\nend\n",
    );
    lua
}

/// A lane's place in [`LANES`], from 1 as Lua counts: how scripts name lanes.
pub(crate) fn lane_index(lane: Priority) -> usize {
    LANES.iter().position(|l| *l == lane).map_or(2, |i| i + 1)
}

/// The names under which queue scripts find the keys [`QueueKeys::script_keys`] gives
/// them, in that order.
const SCRIPT_KEYS: [&str; 16] = [
    "lane_high",
    "lane_normal",
    "lane_low",
    "signal",
    "scheduled",
    "dead",
    "leases",
    "counters",
    "state",
    "stats",
    "throughput",
    "latency",
    "fences",
    "deliveries",
    "claimed",
    "segments",
];

/// A consumer's fence as the `fences` hash holds it: `<token>:<settle sequence>`.
pub(crate) fn parse_fence(value: &str) -> Option<(u64, u64)> {
    let (token, seq) = value.split_once(':')?;
    Some((token.parse().ok()?, seq.parse().ok()?))
}

/// Milliseconds in a minute: the throughput hash counts per minute.
pub(crate) const MINUTE_MS: u64 = 60_000;

/// How long a queue's throughput hash outlives its last update, in seconds.
pub(crate) const THROUGHPUT_TTL_SECS: u64 = 180;

/// Wake-up tokens a queue's signal list keeps at most.
pub(crate) const SIGNAL_MAX: usize = 64;

/// Latency samples a queue keeps at most.
pub(crate) const LATENCY_MAX: usize = 1_000;

/// How long the wake-up of a finished task's waiters is kept, in seconds.
pub(crate) const DONE_TTL_SECS: u64 = 60;

/// The keys of one queue in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueKeys {
    /// `<ns>:{<queue>}`: the common prefix, hash tag included.
    base: String,
}

impl QueueKeys {
    /// The keys of `queue` under `namespace` (an empty namespace means no prefix).
    pub(crate) fn new(namespace: &str, queue: &str) -> QueueKeys {
        let base = if namespace.is_empty() {
            format!("{{{queue}}}")
        } else {
            format!("{namespace}:{{{queue}}}")
        };
        QueueKeys { base }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.base)
    }

    /// The list of waiting payloads of one priority lane.
    pub(crate) fn lane(&self, priority: Priority) -> String {
        match priority {
            Priority::High => self.key("pending:high"),
            Priority::Normal => self.key("pending"),
            Priority::Low => self.key("pending:low"),
        }
    }

    /// The list of wake-up tokens.
    pub(crate) fn signal(&self) -> String {
        self.key("signal")
    }

    /// The list of payloads held by one consumer.
    pub(crate) fn claimed(&self, consumer: &str) -> String {
        self.key(&format!("claimed:{consumer}"))
    }

    /// The sorted set of consumer leases.
    pub(crate) fn leases(&self) -> String {
        self.key("leases")
    }

    /// The sorted set of delayed tasks and retries, by due time.
    pub(crate) fn scheduled(&self) -> String {
        self.key("scheduled")
    }

    /// The hash of statistics counters ([`stat`]).
    pub(crate) fn stats(&self) -> String {
        self.key("stats")
    }

    /// The hash of pushed and taken counts per lane.
    pub(crate) fn counters(&self) -> String {
        self.key("counters")
    }

    /// The hash of task states ([`State`]).
    pub(crate) fn state(&self) -> String {
        self.key("state")
    }

    /// The hash of consumer fences: consumer id → `<token>:<settle sequence>`.
    pub(crate) fn fences(&self) -> String {
        self.key("fences")
    }

    /// The hash of expired deliveries: task id (or the SHA-1 of an id-less payload) → how
    /// many times a lease ran out while a consumer held it.
    pub(crate) fn deliveries(&self) -> String {
        self.key("deliveries")
    }

    /// The list of a consumer's claimed segments: `<lane index>:<count>`, one per lane a
    /// claim took from, in the order of the claimed list.
    pub(crate) fn segments(&self, consumer: &str) -> String {
        self.key(&format!("claimed:{consumer}:lanes"))
    }

    /// Every key a queue script gets first, in the order of `queue_keys()` in the Lua
    /// prelude; `consumer`'s claimed list and segments last (any placeholder when the
    /// script serves no consumer).
    pub(crate) fn script_keys(&self, consumer: &str) -> [String; 16] {
        [
            self.lane(Priority::High),
            self.lane(Priority::Normal),
            self.lane(Priority::Low),
            self.signal(),
            self.scheduled(),
            self.dead(),
            self.leases(),
            self.counters(),
            self.state(),
            self.stats(),
            self.throughput(),
            self.latency(),
            self.fences(),
            self.deliveries(),
            self.claimed(consumer),
            self.segments(consumer),
        ]
    }

    /// The hash of tasks processed per minute.
    pub(crate) fn throughput(&self) -> String {
        self.key("throughput")
    }

    /// The list of recent latency samples.
    pub(crate) fn latency(&self) -> String {
        self.key("latency")
    }

    /// The sorted set of dead-letter records, by time of death.
    pub(crate) fn dead(&self) -> String {
        self.key("dead")
    }
}

/// The keys of one namespace that belong to no queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamespaceKeys {
    prefix: String,
}

impl NamespaceKeys {
    pub(crate) fn new(namespace: &str) -> NamespaceKeys {
        let prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}:")
        };
        NamespaceKeys { prefix }
    }

    /// A task's status record.
    pub(crate) fn record(&self, id: &str) -> String {
        format!("{}task:{id}", self.prefix)
    }

    /// The wake-up list of a task's waiters.
    pub(crate) fn record_done(&self, id: &str) -> String {
        format!("{}task:{id}:done", self.prefix)
    }

    /// The set of known queues.
    pub(crate) fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    /// The worker registry.
    pub(crate) fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }
}

/// The minute a Unix time in milliseconds falls in: the throughput hash's field.
pub(crate) fn minute(ms: u64) -> u64 {
    ms / MINUTE_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let keys = QueueKeys::new("app", "emails");
        assert_eq!(keys.lane(Priority::Normal), "app:{emails}:pending");
        assert_eq!(keys.claimed("c1"), "app:{emails}:claimed:c1");
        assert_eq!(keys.lane(Priority::High), "app:{emails}:pending:high");
        assert_eq!(keys.lane(Priority::Low), "app:{emails}:pending:low");
        assert_eq!(keys.signal(), "app:{emails}:signal");
        assert_eq!(keys.leases(), "app:{emails}:leases");
        assert_eq!(keys.scheduled(), "app:{emails}:scheduled");
        assert_eq!(keys.dead(), "app:{emails}:dead");
        assert_eq!(keys.state(), "app:{emails}:state");
        assert_eq!(keys.throughput(), "app:{emails}:throughput");
    }

    #[test]
    fn namespace_keys() {
        let keys = NamespaceKeys::new("app");
        assert_eq!(keys.record("42"), "app:task:42");
        assert_eq!(keys.record_done("42"), "app:task:42:done");
        assert_eq!(keys.queues(), "app:queues");
        assert_eq!(keys.workers(), "app:workers");
        assert_eq!(NamespaceKeys::new("").record("1"), "task:1");
    }

    #[test]
    fn empty_namespace_has_no_prefix() {
        assert_eq!(
            QueueKeys::new("", "q").lane(Priority::Normal),
            "{q}:pending"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in [TaskStatus::Queued, TaskStatus::Dead, TaskStatus::Processing] {
            assert_eq!(parse_status(status_name(status)), Some(status));
        }
        assert_eq!(parse_status("nope"), None);
    }

    #[test]
    fn states_parse() {
        assert_eq!(
            State::parse("q:2:7"),
            Some(State::Queued {
                lane: Priority::Normal,
                seq: 7
            })
        );
        assert_eq!(
            State::parse("q:1:-3"),
            Some(State::Queued {
                lane: Priority::High,
                seq: -3
            })
        );
        assert_eq!(parse_fence("12:40"), Some((12, 40)));
        assert_eq!(parse_fence("12"), None);
        assert_eq!(
            State::parse("p:1700:abc-1"),
            Some(State::Processing {
                started_at: 1700,
                consumer: "abc-1".to_owned()
            })
        );
        assert_eq!(State::parse("q:9:1"), None);
        assert_eq!(State::parse("x"), None);
    }

    #[test]
    fn the_prelude_names_every_field() {
        let lua = lua_prelude();
        assert!(lua.contains("status = 'status'"));
        assert!(lua.contains("last_processed = 'last_processed'"));
        assert!(lua.contains("dead = 'dead'"));
        assert!(lua.contains("local PUSHED = { 'pushed:high', 'pushed:normal', 'pushed:low', }"));
        assert!(lua.contains("local NORMAL = 2"));
        assert!(lua.contains(" segments = KEYS[16],"));
    }
}
