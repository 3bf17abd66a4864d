//! Shared test support: a unique namespace per test on the real Redis server, removed on drop,
//! and waiting on conditions with a deadline.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use redisq::{RedisQueueBackend, TaskId};

/// The Redis server the tests use (`REDIS_URL`, default loopback).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A raw connection, for checks and for producing tasks without redisq.
pub fn raw() -> redis::Connection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_connection()
        .expect("redis is running (scripts/ensure-redis.sh starts it)")
}

/// A namespace of its own for one test; its keys are deleted when it drops.
pub struct TestNs {
    pub name: String,
    pub backend: RedisQueueBackend,
}

impl TestNs {
    pub fn new() -> TestNs {
        let _ = env_logger::builder().is_test(true).try_init();
        let name = format!("test-{}", TaskId::generate());
        let backend = RedisQueueBackend::new(&redis_url())
            .expect("backend")
            .with_namespace(name.clone())
            .with_block_timeout(Duration::from_millis(200));
        TestNs { name, backend }
    }

    /// The key of a queue's list, e.g. `key("emails", "pending")`.
    pub fn key(&self, queue: &str, what: &str) -> String {
        format!("{}:{{{}}}:{}", self.name, queue, what)
    }

    /// Every key of this namespace.
    pub fn keys(&self) -> Vec<String> {
        let mut con = raw();
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.name))
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)
                .expect("scan");
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    pub fn llen(&self, queue: &str, what: &str) -> usize {
        redis::cmd("LLEN")
            .arg(self.key(queue, what))
            .query(&mut raw())
            .expect("llen")
    }

    /// The dead letters of a queue, oldest first.
    pub fn dead(&self, queue: &str) -> Vec<redisq::DeadLetter> {
        let mut letters = self
            .backend
            .dead_letters(queue, 0, 100_000)
            .expect("dead letters");
        letters.reverse();
        letters
    }

    /// Pushes a raw payload, as a producer in another language would.
    pub fn rpush(&self, queue: &str, payload: &str) {
        let _: () = redis::cmd("RPUSH")
            .arg(self.key(queue, "pending"))
            .arg(payload)
            .query(&mut raw())
            .expect("rpush");
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut raw());
        }
    }
}

/// Waits until `cond` holds, panicking with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
