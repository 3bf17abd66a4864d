//! How long a failed task waits before its next attempt: [`Backoff`].

use std::time::Duration;

/// Exponential backoff between attempts: `base · 2^(attempt-1)`, capped, with equal jitter
/// (a random point in the upper half of the step), so that retries of tasks that failed
/// together spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
}

impl Backoff {
    /// The wait before the attempt after `attempt` (1 for the first), for `jitter` in [0, 1).
    pub(crate) fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let step = self
            .base
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.cap)
            .min(self.cap);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff.delay(5, 1.0), Duration::from_secs(10));
        assert_eq!(backoff.delay(200, 0.0), Duration::from_secs(5));
    }
}
