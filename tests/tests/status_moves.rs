//! A task's status follows it after its record was last written by its outcome: a retried
//! task reads `queued` (with its position) once due and `processing` while it runs again,
//! and a requeued dead letter reads `queued` again, then `done`.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redisq::{fifo, TaskContext, TaskStatus, Worker};
use redisq_test_support::wait_until;
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

/// Keys let through by the test.
static OPEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn open(key: &str) {
    OPEN.lock().unwrap().push(key.to_owned());
}

/// Blocks until `key` is open (or the test's deadline passes).
fn wait_open(key: &str) {
    let deadline = Instant::now() + WAIT;
    while !OPEN.lock().unwrap().iter().any(|k| k == key) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Fails on its first attempt; on the next it waits for `key` to open, then succeeds.
#[fifo(queue = "moves", retries = 1)]
fn flaky(key: String) -> Result<u32, String> {
    let attempt = TaskContext::current().map_or(0, |c| c.attempt);
    if attempt == 1 {
        return Err("first attempt fails".to_owned());
    }
    wait_open(&key);
    Ok(attempt)
}

/// Waits for `key` to open.
#[fifo(queue = "moves")]
fn hold(key: String) {
    wait_open(&key);
}

/// Fails until `key` is open; never retried.
#[fifo(queue = "moves-once", retries = 0)]
fn once(key: String) -> Result<(), String> {
    if OPEN.lock().unwrap().contains(&key) {
        Ok(())
    } else {
        Err("not yet".to_owned())
    }
}

#[test]
fn a_retried_task_is_queued_with_a_position_then_processing() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::ZERO, Duration::ZERO);
    let (retry_key, hold_key) = (format!("{}-retry", ns.name), format!("{}-hold", ns.name));
    let id = flaky::enqueue(&backend, retry_key.clone()).unwrap();
    let holder = hold::enqueue(&backend, hold_key.clone()).unwrap();
    // One task per claim: the settle that records the failure also promotes the retry
    // (due at once) behind `hold`, and takes `hold`, which then blocks.
    let workers = Worker::builder(backend.clone())
        .queues(["moves"])
        .prefetch(1)
        .start()
        .unwrap();
    wait_until(WAIT, "hold to run", || {
        backend.task(&holder).unwrap().map(|t| t.status) == Some(TaskStatus::Processing)
    });
    let queued = backend.task(&id).unwrap().unwrap();
    assert_eq!(queued.status, TaskStatus::Queued, "{queued:?}");
    assert_eq!(queued.queue_position, Some(0), "{queued:?}");
    assert_eq!(queued.attempts, 1);
    assert_eq!(queued.error.as_deref(), Some("first attempt fails"));

    open(&hold_key);
    wait_until(WAIT, "the retry to run", || {
        backend.task(&id).unwrap().map(|t| t.status) == Some(TaskStatus::Processing)
    });
    let running = backend.task(&id).unwrap().unwrap();
    assert!(
        running.worker.is_some() && running.started_at.is_some(),
        "{running:?}"
    );
    assert_eq!(running.queue_position, None);

    open(&retry_key);
    let done = backend.wait(&id, WAIT).unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Done, "{done:?}");
    assert_eq!(
        (done.attempts, &done.result),
        (2, &Some(serde_json::json!(2)))
    );
    assert!(
        done.started_at.is_some() && done.worker.is_some(),
        "{done:?}"
    );
    workers.shutdown();
}

#[test]
fn a_requeued_dead_letter_is_queued_again_then_done() {
    let ns = TestNs::new();
    let key = format!("{}-once", ns.name);
    let id = once::enqueue(&ns.backend, key.clone()).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["moves-once"])
        .start()
        .unwrap();
    let dead = ns.backend.wait(&id, WAIT).unwrap().unwrap();
    assert_eq!(dead.status, TaskStatus::Dead, "{dead:?}");
    workers.shutdown();

    assert!(ns.backend.requeue_dead("moves-once", id.as_str()).unwrap());
    let queued = ns.backend.task(&id).unwrap().unwrap();
    assert_eq!(queued.status, TaskStatus::Queued, "{queued:?}");
    assert_eq!(queued.queue_position, Some(0), "{queued:?}");

    open(&key);
    let workers = Worker::builder(ns.backend.clone())
        .queues(["moves-once"])
        .start()
        .unwrap();
    let done = ns.backend.wait(&id, WAIT).unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Done, "{done:?}");
    assert_eq!(done.attempts, 1, "the requeue reset the attempts");
    workers.shutdown();
}
