//! A worker process for the tests that kill, stop and restart workers: serves the queues
//! in `REDISQ_QUEUES` (comma-separated, default `crash`) of namespace `REDISQ_NS` on
//! `REDIS_URL` with `THREADS` threads (2), a prefetch of `PREFETCH` (10) and a lease of
//! `LEASE_MS` milliseconds (1,000), until it is killed.

use std::time::Duration;

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    redisq_test_support::init_logging();
    let url = redisq_test_support::redis_url();
    let ns = std::env::var("REDISQ_NS").unwrap_or_else(|_| "crash".to_owned());
    let queues = std::env::var("REDISQ_QUEUES").unwrap_or_else(|_| "crash".to_owned());
    let threads: usize = var("THREADS", 2);
    let backend = redisq::RedisQueueBackend::new(&url)
        .expect("valid REDIS_URL")
        .with_namespace(ns)
        .with_lease(Duration::from_millis(var("LEASE_MS", 1_000)))
        .with_block_timeout(Duration::from_millis(200));
    // Referencing the tasks links the library that registers them.
    let _ = (
        redisq_tests::crash::record::NAME,
        redisq_tests::crash::mark::NAME,
        redisq_tests::crash::abort::NAME,
        redisq_tests::crash::hold_batch::NAME,
        redisq_tests::crash::keyed::NAME,
        redisq_tests::crash::ordered::NAME,
    );
    let mut builder = redisq::Worker::builder(backend).prefetch(var("PREFETCH", 10));
    let names: Vec<&str> = queues.split(',').filter(|q| !q.is_empty()).collect();
    builder = builder.queues(names.clone());
    for queue in names {
        builder = builder.threads(queue, threads);
    }
    let _worker = builder.start().expect("worker starts");
    loop {
        std::thread::park();
    }
}
