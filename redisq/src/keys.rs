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

    /// The sorted set of dead-letter records, by time of death.
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.base)
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
    fn empty_namespace_has_no_prefix() {
        assert_eq!(QueueKeys::new("", "q").pending(), "{q}:pending");
    }
}
