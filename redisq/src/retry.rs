//! What becomes of a task that failed: a retry after an exponential backoff with jitter,
//! with the attempt recorded in its payload, or a dead letter.

use std::time::Duration;

use serde_json::{Map, Value};

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

/// The payload with `id` set, `attempts` set to `attempts`, and `{attempt, error, at}`
/// appended to `errors`; `None` when the payload is not a JSON object.
pub(crate) fn record_attempt(
    payload: &str,
    id: &str,
    attempts: u32,
    error: &str,
    at: u64,
) -> Option<Vec<u8>> {
    let mut task: Map<String, Value> = serde_json::from_str(payload).ok()?;
    task.entry("id").or_insert_with(|| Value::from(id));
    task.insert("attempts".to_owned(), Value::from(attempts));
    let entry = serde_json::json!({ "attempt": attempts, "error": error, "at": at });
    match task.get_mut("errors") {
        Some(Value::Array(errors)) => errors.push(entry),
        _ => {
            task.insert("errors".to_owned(), Value::Array(vec![entry]));
        }
    }
    serde_json::to_vec(&task).ok()
}

/// The payload with its attempt count reset, for a task requeued from the dead letters;
/// unchanged when it is not a JSON object.
pub(crate) fn reset_attempts(payload: &str) -> Vec<u8> {
    match serde_json::from_str::<Map<String, Value>>(payload) {
        Ok(mut task) => {
            task.insert("attempts".to_owned(), Value::from(0));
            serde_json::to_vec(&task).unwrap_or_else(|_| payload.as_bytes().to_vec())
        }
        Err(_) => payload.as_bytes().to_vec(),
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

    #[test]
    fn attempts_and_errors_are_kept_on_the_payload() {
        let first = record_attempt(r#"{"name":"f","args":[]}"#, "x", 1, "boom", 7).expect("object");
        let second = record_attempt(
            std::str::from_utf8(&first).expect("utf8"),
            "y",
            2,
            "bang",
            9,
        )
        .expect("object");
        let task: Value = serde_json::from_slice(&second).expect("json");
        assert_eq!(task["id"], "x");
        assert_eq!(task["attempts"], 2);
        assert_eq!(task["errors"][0]["error"], "boom");
        assert_eq!(
            task["errors"][1],
            serde_json::json!({"attempt": 2, "error": "bang", "at": 9})
        );
        assert!(record_attempt("[1]", "x", 1, "e", 0).is_none());
    }

    #[test]
    fn reset_keeps_the_errors() {
        let reset = reset_attempts(r#"{"name":"f","attempts":4,"errors":[1]}"#);
        let task: Value = serde_json::from_slice(&reset).expect("json");
        assert_eq!(task["attempts"], 0);
        assert_eq!(task["errors"], serde_json::json!([1]));
        assert_eq!(reset_attempts("{bad"), b"{bad");
    }
}
