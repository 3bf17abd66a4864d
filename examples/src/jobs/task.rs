//! The job type and its `#[fifo]` handler on the `jobs` queue.
//!
//! The handler sleeps for the processing delay (`WORKER_PROCESSING_DELAY` seconds, a float,
//! default 2), read once per process ([`processing_delay`]), then returns a result derived
//! from the input. A job named `"fail"` returns an error instead; the task has
//! `retries = 0`, so such a job is dead at once (`GET /jobs/{id}` answers
//! `{"status": "failed", "will_retry": false}`).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redisq::fifo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The queue of the jobs.
pub const QUEUE: &str = process_job::QUEUE;

/// The processing delay when `WORKER_PROCESSING_DELAY` is not set.
pub const DEFAULT_PROCESSING_DELAY: Duration = Duration::from_secs(2);

static PROCESSING_DELAY: OnceLock<Duration> = OnceLock::new();

/// A job as `POST /jobs` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// A name; `"fail"` makes the job fail.
    pub name: String,
    /// A number; the result carries it doubled.
    pub value: i64,
    /// A message, echoed in the result.
    pub message: String,
    /// Anything else the client wants echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Sets this process's processing delay, unless it was set (or read) already; returns
/// whether it was set by this call.
pub fn set_processing_delay(delay: Duration) -> bool {
    PROCESSING_DELAY.set(delay).is_ok()
}

/// This process's processing delay: the one [`set_processing_delay`] set, else
/// `WORKER_PROCESSING_DELAY` (seconds, a non-negative float) read at the first call, else 2 s.
/// An unparsable value is logged and the default used.
pub fn processing_delay() -> Duration {
    *PROCESSING_DELAY.get_or_init(|| match std::env::var("WORKER_PROCESSING_DELAY") {
        Err(_) => DEFAULT_PROCESSING_DELAY,
        Ok(raw) => match raw.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs),
            _ => {
                log::warn!("WORKER_PROCESSING_DELAY=`{raw}` is not a number of seconds; using 2");
                DEFAULT_PROCESSING_DELAY
            }
        },
    })
}

/// Processes one job: waits for the processing delay, then echoes the input with its
/// value doubled. Fails (no retry) when the job's name is `"fail"` or the doubled value
/// overflows.
#[fifo(queue = "jobs", name = "jobs::process_job", retries = 0)]
pub fn process_job(job: Job) -> Result<Value, String> {
    let started = Instant::now();
    std::thread::sleep(processing_delay());
    if job.name == "fail" {
        return Err(format!("job '{}' failed on purpose", job.name));
    }
    let doubled = job
        .value
        .checked_mul(2)
        .ok_or_else(|| format!("value {} doubled overflows", job.value))?;
    Ok(json!({
        "message": format!("Demo processing complete for '{}'", job.name),
        "input_echo": {
            "name": job.name,
            "value": job.value,
            "message": job.message,
            "metadata": job.metadata,
            "processed_value": doubled,
        },
        "processed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "processing_duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}
