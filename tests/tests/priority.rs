//! Priorities against the real Redis server: lanes within a queue (high, normal, low; FIFO
//! within each) and queues served in a declared order by one shared pool of threads.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use redisq::{fifo, Priority, Worker};
use redisq_test_support::wait_until;
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

/// What ran, in order, by the test's own key: (lane or queue tag, sequence number).
static RAN: Mutex<BTreeMap<String, Vec<(String, u32)>>> = Mutex::new(BTreeMap::new());

fn ran(key: &str) -> Vec<(String, u32)> {
    RAN.lock().unwrap().get(key).cloned().unwrap_or_default()
}

fn record(key: String, tag: String, n: u32) {
    RAN.lock().unwrap().entry(key).or_default().push((tag, n));
}

#[fifo(queue = "lanes")]
fn lane_task(key: String, tag: String, n: u32) {
    record(key, tag, n);
}

#[fifo(queue = "lanes", priority = "high")]
fn urgent_by_default(key: String, n: u32) {
    record(key, "urgent".to_owned(), n);
}

#[fifo(queue = "live")]
fn live(key: String, n: u32) {
    record(key, "live".to_owned(), n);
}

#[fifo(queue = "upload")]
fn upload(key: String, n: u32) {
    record(key, "upload".to_owned(), n);
}

#[fifo(queue = "flymaster")]
fn flymaster(key: String, n: u32) {
    record(key, "flymaster".to_owned(), n);
}

fn tags(runs: &[(String, u32)]) -> Vec<&str> {
    let mut tags: Vec<&str> = Vec::new();
    for (tag, _) in runs {
        if tags.last() != Some(&tag.as_str()) {
            tags.push(tag);
        }
    }
    tags
}

fn fifo_within_each_tag(runs: &[(String, u32)]) {
    let mut last: BTreeMap<&str, u32> = BTreeMap::new();
    for (tag, n) in runs {
        if let Some(previous) = last.insert(tag, *n) {
            assert!(*n > previous, "{tag} ran {n} after {previous}");
        }
    }
}

#[test]
fn higher_lanes_are_taken_first_and_each_lane_is_fifo() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    // Enqueued lowest first, so that only the lanes can explain the order they run in.
    for n in 0..300 {
        lane_task::with(&ns.backend)
            .priority(Priority::Low)
            .enqueue(key.clone(), "low".into(), n)
            .unwrap();
    }
    for n in 0..300 {
        lane_task::enqueue(&ns.backend, key.clone(), "normal".into(), n).unwrap();
    }
    for n in 0..300 {
        lane_task::with(&ns.backend)
            .priority(Priority::High)
            .enqueue(key.clone(), "high".into(), n)
            .unwrap();
    }
    for n in 0..100 {
        urgent_by_default::enqueue(&ns.backend, key.clone(), n).unwrap();
    }
    let workers = Worker::builder(ns.backend.clone())
        .queues(["lanes"])
        .threads("lanes", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "all 1,000 tasks", || ran(&key).len() == 1000);
    workers.shutdown();
    let runs = ran(&key);
    assert_eq!(tags(&runs), ["high", "urgent", "normal", "low"]);
    fifo_within_each_tag(&runs);
}

#[test]
fn a_high_task_overtakes_a_normal_backlog_under_load() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let normal: Vec<_> = (0..3000)
        .map(|n| (key.clone(), "normal".to_owned(), n))
        .collect();
    lane_task::enqueue_many(&ns.backend, normal).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["lanes"])
        .threads("lanes", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "the backlog to be under way", || {
        ran(&key).len() >= 200
    });
    let before = ran(&key).len();
    let high: Vec<_> = (0..20)
        .map(|n| (key.clone(), "high".to_owned(), n))
        .collect();
    lane_task::with(&ns.backend)
        .priority(Priority::High)
        .enqueue_many(high)
        .unwrap();
    wait_until(WAIT, "everything", || ran(&key).len() == 3020);
    workers.shutdown();
    let runs = ran(&key);
    let first_high = runs.iter().position(|(tag, _)| tag == "high").unwrap();
    let highs: Vec<u32> = runs
        .iter()
        .filter(|(tag, _)| tag == "high")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(highs, (0..20).collect::<Vec<_>>());
    // Taken at the next claim: at most one prefetch (100) of normal tasks in between.
    assert!(
        first_high < before + 100 + 20,
        "the first high task ran at {first_high}, {before} had run when it was enqueued"
    );
    assert!(runs[first_high..first_high + 20]
        .iter()
        .all(|(tag, _)| tag == "high"));
    assert!(
        first_high + 20 < 3000,
        "high tasks waited for the whole backlog"
    );
}

#[test]
fn one_pool_serves_queues_in_their_declared_order() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    // Lowest priority first, again.
    flymaster::enqueue_many(&ns.backend, (0..200).map(|n| (key.clone(), n))).unwrap();
    upload::enqueue_many(&ns.backend, (0..200).map(|n| (key.clone(), n))).unwrap();
    live::enqueue_many(&ns.backend, (0..200).map(|n| (key.clone(), n))).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .pool(["live", "upload", "flymaster"], 1)
        .start()
        .unwrap();
    assert_eq!(workers.queues().len(), 3);
    wait_until(WAIT, "all 600 tasks", || ran(&key).len() == 600);
    let runs = ran(&key);
    assert_eq!(tags(&runs), ["live", "upload", "flymaster"]);
    fifo_within_each_tag(&runs);

    // Idle, the pool blocks on all three queues: a task on the last one still runs.
    let late = format!("{key}-late");
    flymaster::enqueue(&ns.backend, late.clone(), 1).unwrap();
    wait_until(WAIT, "a task on the lowest queue of an idle pool", || {
        ran(&late).len() == 1
    });
    workers.shutdown();
}
