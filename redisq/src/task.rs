//! What names a task: its [`TaskId`], and the [`Priority`] lane it waits in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of an enqueued task: 32 lowercase hex digits unless a foreign producer chose another.
///
/// The last four digits of an id redisq made are the Redis Cluster slot of its queue
/// (0000–3fff), where the task's status record is kept, so that the record is found by
/// the id alone; the other 28 are random (a version 4 UUID's last 16 bits replaced).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// A new random id.
    #[must_use]
    pub fn generate() -> TaskId {
        TaskId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// A new random id whose last four hex digits are `slot` (taken modulo 16,384).
    pub(crate) fn for_slot(slot: u16) -> TaskId {
        use std::fmt::Write as _;
        let mut id = uuid::Uuid::new_v4().simple().to_string();
        id.truncate(28);
        let _ = write!(id, "{:04x}", slot % crate::schema::SLOTS);
        TaskId(id)
    }

    /// The slot the id names, when it has the form redisq makes (32 lowercase hex digits
    /// ending in a slot); `None` for a foreign producer's id of another form.
    pub(crate) fn slot(&self) -> Option<u16> {
        let id = self.0.as_bytes();
        if id.len() != 32 || !id.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let slot = u16::from_str_radix(self.0.get(28..)?, 16).ok()?;
        (slot < crate::schema::SLOTS).then_some(slot)
    }

    /// The id as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for TaskId {
    fn from(id: String) -> Self {
        TaskId(id)
    }
}

impl From<&str> for TaskId {
    fn from(id: &str) -> Self {
        TaskId(id.to_owned())
    }
}

impl AsRef<str> for TaskId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The lane of a queue a task waits in: higher lanes are always taken first, and each lane
/// is first in, first out.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Taken before anything else waiting in the queue.
    High,
    /// The default lane: `<ns>:{<queue>}:pending`.
    #[default]
    Normal,
    /// Taken only when the other lanes are empty.
    Low,
}

impl Priority {
    /// The lane's name in keys and records: `high`, `normal`, `low`.
    #[must_use]
    pub fn lane_name(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    pub(crate) fn from_lane_name(name: &str) -> Option<Priority> {
        Some(match name {
            "high" => Priority::High,
            "normal" => Priority::Normal,
            "low" => Priority::Low,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_hex() {
        let a = TaskId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, TaskId::generate());
    }

    #[test]
    fn an_id_names_its_slot() {
        let id = TaskId::for_slot(12182);
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().ends_with("2f96"));
        assert_eq!(id.slot(), Some(12182));
        assert_eq!(TaskId::for_slot(0).slot(), Some(0));
        assert_eq!(TaskId::from("job-1").slot(), None);
        assert_eq!(
            TaskId::from("0123456789abcdef0123456789abffff").slot(),
            None
        );
        assert_eq!(
            TaskId::from("0123456789ABCDEF0123456789AB0001").slot(),
            None
        );
    }

    #[test]
    fn lane_names_round_trip() {
        for lane in [Priority::High, Priority::Normal, Priority::Low] {
            assert_eq!(Priority::from_lane_name(lane.lane_name()), Some(lane));
        }
        assert_eq!(Priority::from_lane_name("urgent"), None);
    }
}
