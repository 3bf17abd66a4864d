//! Batch tasks against the real Redis server: items enqueued one by one run together, in
//! full batches under a backlog and partial ones after the batch wait, and a failed batch
//! is retried or set aside as a unit.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redisq::{fifo, Worker};
use redisq_test_support::wait_until;
use serde::{Deserialize, Serialize};
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    key: String,
    n: u32,
}

/// Each call's items, by the test's own key.
static CALLS: Mutex<BTreeMap<String, Vec<Vec<u32>>>> = Mutex::new(BTreeMap::new());
/// Keys whose batches fail.
static FAILING: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn calls(key: &str) -> Vec<Vec<u32>> {
    CALLS.lock().unwrap().get(key).cloned().unwrap_or_default()
}

fn store(points: Vec<Point>) -> Result<usize, String> {
    let Some(first) = points.first() else {
        return Ok(0);
    };
    let key = first.key.clone();
    let ns: Vec<u32> = points.iter().map(|p| p.n).collect();
    CALLS
        .lock()
        .unwrap()
        .entry(key.clone())
        .or_default()
        .push(ns);
    if FAILING.lock().unwrap().contains(&key) {
        FAILING.lock().unwrap().retain(|k| *k != key);
        return Err("the database is down".to_owned());
    }
    Ok(points.len())
}

#[fifo(queue = "points", batch = 1000)]
fn insert_points(points: Vec<Point>) -> Result<usize, String> {
    store(points)
}

#[fifo(queue = "fragile", batch = 100, retries = 0)]
fn insert_or_die(points: Vec<Point>) -> Result<usize, String> {
    store(points)
}

fn points(key: &str, range: std::ops::Range<u32>) -> Vec<Point> {
    range
        .map(|n| Point {
            key: key.to_owned(),
            n,
        })
        .collect()
}

#[test]
fn a_backlog_runs_in_full_batches_in_order() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let ids = insert_points::enqueue_many(&ns.backend, points(&key, 0..2500)).unwrap();
    assert_eq!(ids.len(), 2500);
    assert_eq!(
        ns.backend.pending("points").unwrap(),
        2500,
        "one task per item"
    );
    let workers = Worker::builder(ns.backend.clone())
        .queues(["points"])
        .threads("points", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "every item", || calls(&key).concat().len() == 2500);
    let counts = workers.counts();
    workers.shutdown();
    let sizes: Vec<usize> = calls(&key).iter().map(Vec::len).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    assert_eq!(calls(&key).concat(), (0..2500).collect::<Vec<_>>());
    assert_eq!(counts.processed, 2500);
}

#[test]
fn a_partial_batch_runs_after_the_batch_wait() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["points"])
        .threads("points", 1)
        .batch_wait(Duration::from_millis(300))
        .start()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100)); // the worker is idle, blocked
    let started = Instant::now();
    // The plain call enqueues each item of the Vec as its own task.
    redisq::init(ns.backend.clone()).unwrap();
    for chunk in points(&key, 0..7).chunks(3) {
        let ids = insert_points(chunk.to_vec()).unwrap();
        assert_eq!(ids.len(), chunk.len());
    }
    wait_until(WAIT, "the partial batch", || !calls(&key).is_empty());
    let waited = started.elapsed();
    workers.shutdown();
    assert_eq!(
        calls(&key),
        [(0..7).collect::<Vec<_>>()],
        "one call with all seven"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "ran after {waited:?}, before the batch wait"
    );
}

#[test]
fn a_failed_batch_is_retried_as_a_unit() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(20));
    let key = ns.name.clone();
    FAILING.lock().unwrap().push(key.clone());
    insert_points::enqueue_many(&backend, points(&key, 0..5)).unwrap();
    let workers = Worker::builder(backend)
        .queues(["points"])
        .threads("points", 1)
        .batch_wait(Duration::ZERO)
        .start()
        .unwrap();
    wait_until(WAIT, "the retry", || calls(&key).len() == 2);
    wait_until(WAIT, "the batch to count as processed", || {
        workers.counts().processed == 5
    });
    let counts = workers.counts();
    workers.shutdown();
    let all: Vec<u32> = (0..5).collect();
    assert_eq!(
        calls(&key),
        [all.clone(), all],
        "the same items, together, twice"
    );
    assert_eq!((counts.failed, counts.retried), (1, 1));
    assert_eq!(ns.backend.scheduled("points").unwrap(), 0);
}

#[test]
fn a_batch_out_of_retries_is_one_dead_letter() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    FAILING.lock().unwrap().push(key.clone());
    insert_or_die::enqueue_many(&ns.backend, points(&key, 0..40)).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["fragile"])
        .threads("fragile", 1)
        .batch_wait(Duration::ZERO)
        .start()
        .unwrap();
    wait_until(WAIT, "the dead letter", || {
        ns.backend.dead_count("fragile").unwrap() == 1
    });
    workers.shutdown();
    let dead = ns.backend.dead_letters("fragile", 0, 10).unwrap();
    assert_eq!(
        dead[0].reason,
        "failed after 1 attempt(s): the database is down"
    );
    let payload: serde_json::Value = serde_json::from_str(&dead[0].payload).unwrap();
    assert_eq!(payload["batch"], true);
    assert_eq!(payload["args"][0].as_array().unwrap().len(), 40);
    // Requeued, the batch runs as one call again.
    assert_eq!(ns.backend.requeue_all_dead("fragile").unwrap(), 1);
    let workers = Worker::builder(ns.backend.clone())
        .queues(["fragile"])
        .start()
        .unwrap();
    wait_until(WAIT, "the requeued batch", || calls(&key).len() == 2);
    workers.shutdown();
    assert_eq!(calls(&key)[1], (0..40).collect::<Vec<_>>());
}
