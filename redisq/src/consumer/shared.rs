//! What a consumer thread shares with its worker's heartbeat: its fencing token on each
//! queue (the heartbeat renews those leases, and says when), and the task it is running
//! (so that the heartbeat can hand back the tasks it took but has not started, when one
//! runs longer than the lease).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// One consumer's shared slot.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    slot: Mutex<Slot>,
}

/// What the slot holds.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The consumer's fencing token per queue where it holds a lease.
    pub(crate) tokens: BTreeMap<String, u64>,
    /// Per queue, when the consumer's lease there was last renewed: when the settle or
    /// renewal that did it was sent (the lease runs from its arrival, which is later).
    pub(crate) renewed: BTreeMap<String, Instant>,
    /// The task it runs now, if any.
    pub(crate) running: Option<Running>,
    /// Set by the heartbeat once it handed back the unstarted tasks: the consumer keeps
    /// only this many of the tasks it took.
    pub(crate) keep: Option<usize>,
}

/// The task a consumer runs.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// Its queue, by its place in the consumer's queues.
    pub(crate) queue: usize,
    /// When it started.
    pub(crate) since: Instant,
    /// How many of the tasks the consumer took it and the ones before it cover: the rest
    /// are unstarted.
    pub(crate) until: usize,
    /// How many tasks the consumer took.
    pub(crate) taken: usize,
}

impl Shared {
    /// The slot, locked (a panic elsewhere does not poison it for good).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
