//! A worker process for the crash test: serves queue `crash` of namespace `REDISQ_NS` on
//! `REDIS_URL` with two threads and a one-second lease, until it is killed.

use std::time::Duration;

fn main() {
    redisq_test_support::init_logging();
    let url = redisq_test_support::redis_url();
    let ns = std::env::var("REDISQ_NS").unwrap_or_else(|_| "crash".to_owned());
    let backend = redisq::RedisQueueBackend::new(&url)
        .expect("valid REDIS_URL")
        .with_namespace(ns)
        .with_lease(Duration::from_secs(1))
        .with_block_timeout(Duration::from_millis(200));
    // Referencing the task links the library that registers it.
    let _ = redisq_tests::crash::record::NAME;
    let _worker = redisq::Worker::builder(backend)
        .queues(["crash"])
        .threads("crash", 2)
        .prefetch(10)
        .start()
        .expect("worker starts");
    loop {
        std::thread::park();
    }
}
