//! What this tree's tests add to `redisq_test_support`: [`TestNs`], a namespace of one
//! test's own on the shared Redis server (removed on drop) with its backend at hand.
#![allow(dead_code)]

use std::ops::Deref;

use redisq::RedisQueueBackend;
use redisq_test_support::{init_logging, Namespace};

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
