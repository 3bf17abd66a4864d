//! What names a task: its [`TaskId`], and the [`Priority`] lane it waits in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of an enqueued task: 32 lowercase hex digits unless a foreign producer chose another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// A new random id.
    #[must_use]
    pub fn generate() -> TaskId {
        TaskId(uuid::Uuid::new_v4().simple().to_string())
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
    fn lane_names_round_trip() {
        for lane in [Priority::High, Priority::Normal, Priority::Low] {
            assert_eq!(Priority::from_lane_name(lane.lane_name()), Some(lane));
        }
        assert_eq!(Priority::from_lane_name("urgent"), None);
    }
}
