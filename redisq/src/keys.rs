//! Every Redis key redisq uses, built in this one place.
//!
//! All keys of one queue share the Redis Cluster hash tag `{queue}`, so every
//! multi-key command and script of a queue touches a single slot:
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
//! | `<ns>:{<queue>}:counters` | hash | `pushed:<lane>` and `taken:<lane>` counts, for positions |
//! | `<ns>:{<queue>}:tp:<minute>` | string | tasks processed in one minute (expires after 3) |
//! | `<ns>:{<queue>}:latency` | list | recent `wait_ms:run_ms` samples (at most 1,000) |
//!
//! Outside any queue's slot:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<ns>:task:<id>` | hash | a task's status record (expires once finished) |
//! | `<ns>:task:<id>:done` | list | a wake-up for callers of `wait` (expires after 60 s) |
//! | `<ns>:queues` | set | the queues ever enqueued to or served |
//! | `<ns>:workers` | hash | worker id → its heartbeat (JSON) |

use crate::task::Priority;

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

    /// The list of waiting payloads.
    pub(crate) fn pending(&self) -> String {
        format!("{}:pending", self.base)
    }

    /// The list of waiting payloads of one priority lane.
    pub(crate) fn lane(&self, priority: Priority) -> String {
        match priority {
            Priority::High => format!("{}:pending:high", self.base),
            Priority::Normal => self.pending(),
            Priority::Low => format!("{}:pending:low", self.base),
        }
    }

    /// The list of wake-up tokens.
    pub(crate) fn signal(&self) -> String {
        format!("{}:signal", self.base)
    }

    /// The list of payloads held by one consumer.
    pub(crate) fn claimed(&self, consumer: &str) -> String {
        format!("{}:claimed:{consumer}", self.base)
    }

    /// The sorted set of consumer leases.
    pub(crate) fn leases(&self) -> String {
        format!("{}:leases", self.base)
    }

    /// The sorted set of delayed tasks and retries, by due time.
    pub(crate) fn scheduled(&self) -> String {
        format!("{}:scheduled", self.base)
    }

    /// The hash of statistics counters.
    pub(crate) fn stats(&self) -> String {
        format!("{}:stats", self.base)
    }

    /// The hash of pushed and taken counts per lane.
    pub(crate) fn counters(&self) -> String {
        format!("{}:counters", self.base)
    }

    /// The prefix of the per-minute throughput counters (`…:tp:<minute>`).
    pub(crate) fn throughput(&self) -> String {
        format!("{}:tp", self.base)
    }

    /// The list of recent latency samples.
    pub(crate) fn latency(&self) -> String {
        format!("{}:latency", self.base)
    }

    /// The sorted set of dead-letter records, by time of death.
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.base)
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

    /// The prefix of task records: `<ns>:task:`, followed by the id.
    pub(crate) fn record_prefix(&self) -> String {
        format!("{}task:", self.prefix)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let keys = QueueKeys::new("app", "emails");
        assert_eq!(keys.pending(), "app:{emails}:pending");
        assert_eq!(keys.claimed("c1"), "app:{emails}:claimed:c1");
        assert_eq!(keys.lane(Priority::High), "app:{emails}:pending:high");
        assert_eq!(keys.lane(Priority::Normal), "app:{emails}:pending");
        assert_eq!(keys.signal(), "app:{emails}:signal");
        assert_eq!(keys.leases(), "app:{emails}:leases");
        assert_eq!(keys.scheduled(), "app:{emails}:scheduled");
        assert_eq!(keys.dead(), "app:{emails}:dead");
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
        assert_eq!(QueueKeys::new("", "q").pending(), "{q}:pending");
    }
}
