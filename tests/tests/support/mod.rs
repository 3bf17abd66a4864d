//! What this tree's tests add to `redisq_test_support`: [`TestNs`], a namespace of one
//! test's own on the shared Redis server (removed on drop) with its backend at hand, and
//! [`WorkerProcess`], a `crash_worker` child to kill, stop and resume.
#![allow(dead_code)]

use std::ops::Deref;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redisq::RedisQueueBackend;
use redisq_test_support::{init_logging, redis_url, Namespace};

/// A namespace of its own for one test, with a backend in it; its keys are deleted when it
/// drops. It derefs to the [`Namespace`] for `key`, `keys`, `llen` and `rpush`.
pub(crate) struct TestNs {
    pub(crate) name: String,
    pub(crate) backend: RedisQueueBackend,
    namespace: Namespace,
}

impl TestNs {
    pub(crate) fn new() -> TestNs {
        init_logging();
        let namespace = Namespace::new();
        TestNs {
            name: namespace.name().to_owned(),
            backend: namespace.backend(),
            namespace,
        }
    }

    /// The dead letters of a queue, oldest first.
    pub(crate) fn dead(&self, queue: &str) -> Vec<redisq::DeadLetter> {
        let mut letters = self
            .backend
            .dead_letters(queue, 0, 100_000)
            .expect("dead letters");
        letters.reverse();
        letters
    }
}

impl Deref for TestNs {
    type Target = Namespace;

    fn deref(&self) -> &Namespace {
        &self.namespace
    }
}

/// A `crash_worker` process with one thread on `queues` of namespace `ns`, killed when
/// dropped.
pub(crate) struct WorkerProcess(Child);

impl WorkerProcess {
    pub(crate) fn spawn(ns: &str, queues: &str, lease: Duration) -> WorkerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_crash_worker"))
            .env("REDIS_URL", redis_url())
            .env("REDISQ_NS", ns)
            .env("REDISQ_QUEUES", queues)
            .env("THREADS", "1")
            .env("LEASE_MS", lease.as_millis().to_string())
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("crash_worker starts");
        WorkerProcess(child)
    }

    pub(crate) fn pid(&self) -> String {
        self.0.id().to_string()
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Whether it has exited (reaping it).
    pub(crate) fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
