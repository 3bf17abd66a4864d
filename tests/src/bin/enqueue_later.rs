//! Enqueues one `crash.mark` task due `DELAY_MS` milliseconds from now (`enqueue_in`) on
//! `REDIS_URL`, namespace `REDISQ_NS`, and prints its id: run under `faketime`, it is a
//! producer whose clock is not the server's.

use std::time::Duration;

fn main() {
    let url = redisq_test_support::redis_url();
    let ns = std::env::var("REDISQ_NS").unwrap_or_else(|_| "crash".to_owned());
    let delay: u64 = std::env::var("DELAY_MS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(2_000);
    let backend = redisq::RedisQueueBackend::new(&url)
        .expect("valid REDIS_URL")
        .with_namespace(ns.clone());
    let id = redisq_tests::crash::mark::enqueue_in(
        &backend,
        Duration::from_millis(delay),
        ns,
        "later".to_owned(),
        false,
    )
    .expect("enqueued");
    println!("{id}");
}
