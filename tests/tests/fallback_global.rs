//! `#[fifo(fallback = "inline")]`: the plain call enqueues through the global backend and
//! runs the body inline when Redis is unreachable. In its own test binary, since the global
//! backend is process-wide.

mod support;

use std::sync::Mutex;
use std::thread::{self, ThreadId};
use std::time::Duration;

use redisq::{fifo, Dispatch, RedisQueueBackend};
use redisq_test_support::wait_until;
use support::TestNs;

/// The numbers the task saw, with the thread it ran on.
static SEEN: Mutex<Vec<(u64, ThreadId)>> = Mutex::new(Vec::new());

fn seen() -> Vec<(u64, ThreadId)> {
    SEEN.lock().unwrap().clone()
}

#[fifo(queue = "fallback", fallback = "inline")]
fn square(n: u64) -> u64 {
    SEEN.lock().unwrap().push((n, thread::current().id()));
    n * n
}

#[fifo(queue = "fallback")]
fn plain(n: u64) {
    SEEN.lock().unwrap().push((n, thread::current().id()));
}

#[test]
fn plain_call_with_fallback_runs_inline_while_redis_is_unreachable() {
    let ns = TestNs::new();
    let down = RedisQueueBackend::new("redis://127.0.0.1:1")
        .unwrap()
        .with_namespace(ns.name.clone())
        .with_timeout(Duration::from_millis(300));
    redisq::init(down).unwrap();

    let out: redisq::Result<Dispatch<u64>> = square(7);
    assert_eq!(out.unwrap(), Dispatch::RanInline(49));
    assert_eq!(seen(), [(7, thread::current().id())], "ran in this thread");

    // Without the key, the plain call still reports the outage.
    let err = plain(8).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(seen().len(), 1, "not run");

    // Redis is back: the plain call enqueues again.
    redisq::init(ns.backend.clone()).unwrap();
    let out = square(9).unwrap();
    assert!(out.is_queued());
    assert_eq!(ns.backend.pending("fallback").unwrap(), 1);
    assert_eq!(seen().len(), 1, "not run inline");

    let workers = redisq::threaded_worker(ns.backend.clone()).unwrap();
    wait_until(Duration::from_secs(30), "a worker to run it", || {
        seen().len() == 2
    });
    workers.shutdown();
    let (n, worker_thread) = seen()[1];
    assert_eq!(n, 9);
    assert_ne!(worker_thread, thread::current().id());
}
