//! The global form: a plain call enqueues through the backend given to `redisq::init`.
//! In its own test binary, since the global backend is process-wide.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redisq::{fifo, Worker};
use redisq_test_support::wait_until;
use support::TestNs;

static SUM: AtomicU64 = AtomicU64::new(0);

#[fifo(queue = "global")]
fn add(n: u64) -> u64 {
    SUM.fetch_add(n, Ordering::SeqCst);
    n
}

#[test]
fn plain_call_enqueues_through_the_global_backend() {
    let ns = TestNs::new();
    redisq::init(ns.backend.clone()).unwrap();
    let id: redisq::TaskId = add(5).unwrap();
    let other = add(6).unwrap();
    assert_ne!(id, other);
    assert_eq!(ns.backend.pending("global").unwrap(), 2);
    assert_eq!(
        SUM.load(Ordering::SeqCst),
        0,
        "a plain call does not run the body"
    );

    let workers = redisq::threaded_worker(ns.backend.clone()).unwrap();
    assert_eq!(workers.queues().keys().collect::<Vec<_>>(), ["global"]);
    wait_until(Duration::from_secs(30), "both tasks", || {
        SUM.load(Ordering::SeqCst) == 11
    });
    workers.shutdown();
    let _ = Worker::builder; // the builder form is covered in core.rs
}
