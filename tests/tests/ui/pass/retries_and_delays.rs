#![deny(warnings)]

use std::time::{Duration, SystemTime};

use redisq::fifo;

#[fifo(queue = "emails", retries = 0)]
pub fn send_now(to: String) -> Result<(), String> {
    let _ = to;
    Ok(())
}

#[fifo(queue = "emails", retries = 10)]
pub fn send_later(delay: u64, at: String) {
    let _ = (delay, at);
}

fn main() {
    let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:1").unwrap();
    let _ = send_now::enqueue_in(&backend, Duration::from_secs(1), "a".into());
    let _ = send_now::enqueue_at(&backend, SystemTime::now(), "a".into());
    // Parameters named like the generated ones do not clash.
    let _ = send_later::enqueue_in(&backend, Duration::from_secs(1), 5, "b".into());
    assert_eq!(send_now::DEF.retries, 0);
    assert_eq!(send_later::DEF.retries, 10);
}
