//! The Redis schema: every key redisq writes, every field of a status record, every
//! counter and status name, spelled in this one module.
//!
//! The Lua scripts get every key they touch as a full name in `KEYS` (built here), and
//! the field, counter and status names through a prelude generated from the constants
//! of `names.rs` ([`lua_prelude`], `prelude.rs`), so that no script spells a name of its
//! own.
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
//! | `<ns>:{<queue>}:key:<key>` | list | one ordering key's tasks, oldest first: those a consumer holds at its head (gone when empty) |
//! | `<ns>:{<queue>}:ready` | list | keys with tasks whose head no consumer holds and no retry holds, in round-robin order |
//! | `<ns>:{<queue>}:held` | sorted set | keys whose head task waits to be retried → due time (Unix ms) |
//! | `<ns>:{<queue>}:owner` | hash | an ordered queue's owner: `consumer`, `since` (Unix ms) |
//! | `<ns>:{<queue>}:hold` | string | an ordered queue's retry hold: set while its head task waits to be retried (expires then) |
//! | `<ns>:{<queue>}:task:<id>` | hash | a task's status record ([`field`]; expires once finished) |
//! | `<ns>:{<queue>}:task:<id>:done` | list | a wake-up for callers of `wait` (expires after 60 s) |
//!
//! A task's record is in its queue's slot, so that every script touches one slot. The id
//! says which: its last four hex digits are the queue's slot (`TaskId::for_slot`),
//! and the set of known queues says which queues have that slot.
//!
//! Outside any queue's slot:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<ns>:queues` | set | the queues ever enqueued to or served |
//! | `<ns>:workers` | hash | worker id → its heartbeat (JSON) |

mod names;
mod prelude;

pub(crate) use names::*;
pub(crate) use prelude::lua_prelude;

use crate::task::Priority;

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

/// The names under which queue scripts find the keys [`QueueKeys::script_keys`] gives
/// them, in that order.
pub(super) const SCRIPT_KEYS: [&str; 21] = [
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
    "ready",
    "held",
    "key_prefix",
    "owner",
    "hold",
    "claimed",
    "segments",
];

/// Hash slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag — what is between
/// the first `{` and the first `}` after it, when that is not empty — or of the whole
/// key, modulo 16,384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

/// Bytes an ordering key may have at most.
pub(crate) const KEY_MAX: usize = 512;

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

    /// The Redis Cluster slot of every key of the queue.
    pub(crate) fn slot(&self) -> u16 {
        key_slot(self.base.as_bytes())
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

    /// The list of the tasks of ordering key `key`.
    pub(crate) fn key_list(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix())
    }

    /// What every key list's name starts with: scripts append the key.
    pub(crate) fn key_prefix(&self) -> String {
        self.key("key:")
    }

    /// The list of keys ready to be taken, round robin.
    pub(crate) fn ready(&self) -> String {
        self.key("ready")
    }

    /// The sorted set of keys held for a retry, by due time.
    pub(crate) fn held(&self) -> String {
        self.key("held")
    }

    /// An ordered queue's owner.
    pub(crate) fn owner(&self) -> String {
        self.key("owner")
    }

    /// An ordered queue's retry hold.
    pub(crate) fn hold(&self) -> String {
        self.key("hold")
    }

    /// Every key a queue script gets first, in the order of `queue_keys()` in the Lua
    /// prelude; `consumer`'s claimed list and segments last (any placeholder when the
    /// script serves no consumer).
    pub(crate) fn script_keys(&self, consumer: &str) -> [String; 21] {
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
            self.ready(),
            self.held(),
            self.key_prefix(),
            self.owner(),
            self.hold(),
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

    /// A task's status record.
    pub(crate) fn record(&self, id: &str) -> String {
        format!("{}:task:{id}", self.base)
    }

    /// The wake-up list of a task's waiters.
    pub(crate) fn record_done(&self, id: &str) -> String {
        format!("{}:task:{id}:done", self.base)
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

    /// The set of known queues.
    pub(crate) fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    /// The worker registry.
    pub(crate) fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::TaskStatus;

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
        assert_eq!(keys.record("42"), "app:{emails}:task:42");
        assert_eq!(keys.record_done("42"), "app:{emails}:task:42:done");
    }

    #[test]
    fn namespace_keys() {
        let keys = NamespaceKeys::new("app");
        assert_eq!(keys.queues(), "app:queues");
        assert_eq!(keys.workers(), "app:workers");
        assert_eq!(NamespaceKeys::new("").queues(), "queues");
    }

    #[test]
    fn slots_follow_the_hash_tag() {
        // The values Redis's own `CLUSTER KEYSLOT` gives.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"app:{foo}:pending"), 12182);
        assert_eq!(QueueKeys::new("app", "foo").slot(), 12182);
        assert_eq!(QueueKeys::new("other", "foo").slot(), 12182);
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
        assert_eq!(parse_fence("12:40:1"), Some((12, 40)));
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
        assert!(lua.contains(" segments = KEYS[21],"));
    }
}
