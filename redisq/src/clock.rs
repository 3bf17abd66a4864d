//! Time as the client writes it, in Unix milliseconds: informative times only (when a
//! task was enqueued, failed, started); every due time, lease and minute comes from the
//! Redis server's clock, in the scripts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now as Unix time in milliseconds.
pub(crate) fn now_millis() -> u64 {
    unix_millis(SystemTime::now())
}

/// `at` as Unix time in milliseconds (0 before 1970).
pub(crate) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| saturating_u64(d.as_millis()))
}

/// A duration in whole milliseconds.
pub(crate) fn millis(d: Duration) -> u64 {
    saturating_u64(d.as_millis())
}

fn saturating_u64(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(millis(Duration::from_micros(2_500)), 2);
        assert_eq!(unix_millis(UNIX_EPOCH + Duration::from_secs(3)), 3_000);
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(3)), 0);
    }
}
