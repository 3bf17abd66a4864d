//! Waiting for a condition, with a deadline.

use std::time::{Duration, Instant};

/// How often [`wait_until`] checks its condition.
const POLL: Duration = Duration::from_millis(5);

/// When [`wait_until`] gives up: a time limit from now (a [`Duration`]) or a point in time
/// (an [`Instant`]), so that several waits can share one deadline.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    /// The limit as the caller put it, for the failure message.
    limit: Duration,
}

impl From<Duration> for Deadline {
    fn from(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Deadline {
        Deadline {
            at,
            limit: at.saturating_duration_since(Instant::now()),
        }
    }
}

/// Waits until `condition` holds, checking it every 5 ms.
///
/// # Panics
/// When it still does not hold at `deadline`: "timed out after {limit} waiting for
/// {what}".
///
/// ```
/// use std::time::{Duration, Instant};
/// use redisq_test_support::wait_until;
///
/// let start = Instant::now();
/// wait_until(Duration::from_secs(5), "10 ms to pass", || {
///     start.elapsed() >= Duration::from_millis(10)
/// });
/// ```
pub fn wait_until(deadline: impl Into<Deadline>, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = deadline.into();
    while !condition() {
        assert!(
            Instant::now() < deadline.at,
            "timed out after {:?} waiting for {what}",
            deadline.limit
        );
        std::thread::sleep(POLL);
    }
}
