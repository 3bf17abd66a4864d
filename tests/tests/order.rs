//! Order against the real Redis server: tasks of one ordering key run one at a time in
//! enqueue order across threads and workers, different keys in parallel, a retry holds
//! back its key only; an ordered queue has one consumer at a time across workers, keeps
//! its order through a retry and passes to another worker when its owner stops.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use redisq::{fifo, RedisQueueBackend, TaskStatus, Worker};
use redisq_test_support::wait_until;
use serde::{Deserialize, Serialize};
use support::TestNs;

const WAIT: Duration = Duration::from_secs(60);

/// Per test run: what started, in order ((key, n) and the attempt), what is running now,
/// and every time two tasks of one key (or of an ordered queue) overlapped.
#[derive(Default)]
struct Log {
    started: Vec<(String, u32, u32)>,
    running: BTreeSet<String>,
    overlaps: Vec<String>,
    concurrent: usize,
}

static LOGS: Mutex<BTreeMap<String, Log>> = Mutex::new(BTreeMap::new());

fn with_log<R>(run: &str, f: impl FnOnce(&mut Log) -> R) -> R {
    f(LOGS.lock().unwrap().entry(run.to_owned()).or_default())
}

/// Runs a task of `key` number `n`: logs its start, checks nobody else of `key` runs,
/// works a little.
fn work(run: &str, key: &str, n: u32) {
    let attempt = redisq::TaskContext::current().map_or(0, |c| c.attempt);
    with_log(run, |log| {
        log.started.push((key.to_owned(), n, attempt));
        if !log.running.insert(key.to_owned()) {
            log.overlaps.push(format!("{key} #{n}"));
        }
        log.concurrent = log.concurrent.max(log.running.len());
    });
    std::thread::sleep(Duration::from_micros(200 + u64::from(n % 5) * 300));
    with_log(run, |log| log.running.remove(key));
}

/// The first start of every (key, n), in the order they happened, by key.
fn first_starts(run: &str) -> BTreeMap<String, Vec<u32>> {
    with_log(run, |log| {
        let mut seen = BTreeSet::new();
        let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (key, n, _) in &log.started {
            if seen.insert((key.clone(), *n)) {
                by_key.entry(key.clone()).or_default().push(*n);
            }
        }
        by_key
    })
}

fn started(run: &str) -> usize {
    with_log(run, |log| log.started.len())
}

#[fifo(queue = "order-keys", key = "device")]
fn point(run: String, device: String, n: u32) {
    work(&run, &device, n);
}

#[fifo(queue = "order-keys-retry", key = "device", retries = 3)]
fn flaky_point(run: String, device: String, n: u32) -> Result<(), String> {
    work(&run, &device, n);
    let attempt = redisq::TaskContext::current().map_or(1, |c| c.attempt);
    if device == "a" && n == 0 && attempt == 1 {
        return Err("the first attempt fails".to_owned());
    }
    Ok(())
}

#[fifo(
    queue = "order-keys-dead",
    key = "device",
    retries = 5,
    on_failure = "dead_letter"
)]
fn doomed_point(run: String, device: String, n: u32) -> Result<(), String> {
    work(&run, &device, n);
    if n == 1 {
        return Err("never works".to_owned());
    }
    Ok(())
}

#[fifo(queue = "order-ledger", ordered = true, retries = 3)]
fn entry(run: String, n: u32) -> Result<(), String> {
    work(&run, "ledger", n);
    let attempt = redisq::TaskContext::current().map_or(1, |c| c.attempt);
    if n == 5 && attempt == 1 {
        return Err("the first attempt fails".to_owned());
    }
    Ok(())
}

#[fifo(queue = "order-keys-numeric", key = "device")]
fn numbered(run: String, device: u64, n: u32) -> u32 {
    work(&run, &device.to_string(), n);
    n
}

#[fifo(
    queue = "order-ledger-skip",
    ordered = true,
    retries = 5,
    on_failure = "dead_letter"
)]
fn skippable_entry(run: String, n: u32) -> Result<(), String> {
    work(&run, "ledger", n);
    if n == 2 {
        return Err("never works".to_owned());
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Point {
    run: String,
    device: String,
    n: u32,
}

/// Per run: each batch's (device, n) items, as the batch saw them.
/// One call's items: (device, n).
type Items = Vec<(String, u32)>;

static BATCHES: Mutex<BTreeMap<String, Vec<Items>>> = Mutex::new(BTreeMap::new());

#[fifo(queue = "order-batch", batch = 20, key = "device")]
fn points(points: Vec<Point>) {
    let Some(run) = points.first().map(|p| p.run.clone()) else {
        return;
    };
    let items = points.iter().map(|p| (p.device.clone(), p.n)).collect();
    BATCHES.lock().unwrap().entry(run).or_default().push(items);
}

/// Per run: the entries of each call of `ledger_batch`, and whether it failed.
type Calls = Vec<(Vec<u32>, bool)>;

static LEDGER: Mutex<BTreeMap<String, Calls>> = Mutex::new(BTreeMap::new());

#[fifo(queue = "order-ledger-batch", ordered = true, batch = 4, retries = 3)]
fn ledger_batch(entries: Vec<(String, u32)>) -> Result<(), String> {
    let Some(run) = entries.first().map(|(run, _)| run.clone()) else {
        return Ok(());
    };
    let mut calls = LEDGER.lock().unwrap();
    let calls = calls.entry(run).or_default();
    let fail = calls.is_empty();
    calls.push((entries.iter().map(|(_, n)| *n).collect(), fail));
    if fail {
        return Err("the first batch fails".to_owned());
    }
    Ok(())
}

/// Per run: each call's items, and whether that call failed.
static FLAKY: Mutex<BTreeMap<String, Vec<(Items, bool)>>> = Mutex::new(BTreeMap::new());

#[fifo(queue = "order-batch-retry", batch = 20, key = "device", retries = 3)]
fn flaky_points(points: Vec<Point>) -> Result<(), String> {
    let Some(run) = points.first().map(|p| p.run.clone()) else {
        return Ok(());
    };
    let items: Vec<(String, u32)> = points.iter().map(|p| (p.device.clone(), p.n)).collect();
    let mut calls = FLAKY.lock().unwrap();
    let calls = calls.entry(run).or_default();
    // The first call fails: its items go back to the heads of their keys.
    let fail = calls.is_empty();
    calls.push((items, fail));
    if fail {
        return Err("the first batch fails".to_owned());
    }
    Ok(())
}

fn backend(ns: &TestNs) -> RedisQueueBackend {
    ns.backend
        .clone()
        .with_retry_backoff(Duration::from_millis(200), Duration::from_millis(200))
}

fn workers(backend: &RedisQueueBackend, queue: &str, threads: usize, n: usize) -> Vec<Worker> {
    (0..n)
        .map(|_| {
            Worker::builder(backend.clone())
                .queues([queue])
                .threads(queue, threads)
                .start()
                .unwrap()
        })
        .collect()
}

#[test]
fn tasks_of_one_key_run_one_at_a_time_in_order_and_keys_in_parallel() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let (devices, per_device) = (24_u32, 30_u32);
    // Enqueued interleaved, in a few batches, with the key set at the call site for one.
    for n in 0..per_device {
        for d in 0..devices {
            let device = format!("d{d}");
            if d == 0 {
                point::with(&ns.backend)
                    .key("d0")
                    .enqueue(run.clone(), device, n)
                    .unwrap();
            } else {
                point::enqueue(&ns.backend, run.clone(), device, n).unwrap();
            }
        }
    }
    let workers = workers(&ns.backend, "order-keys", 3, 2);
    let total = (devices * per_device) as usize;
    wait_until(WAIT, "every point ran", || started(&run) >= total);
    for worker in workers {
        worker.shutdown();
    }
    let by_key = first_starts(&run);
    assert_eq!(by_key.len(), devices as usize);
    for (key, ns_) in &by_key {
        assert_eq!(*ns_, (0..per_device).collect::<Vec<_>>(), "order of {key}");
    }
    with_log(&run, |log| {
        assert!(log.overlaps.is_empty(), "overlapping: {:?}", log.overlaps);
        assert_eq!(log.started.len(), total, "each ran once");
        assert!(log.concurrent > 1, "different keys ran in parallel");
    });
    let queue = ns.backend.queue_stats("order-keys").unwrap();
    assert_eq!(
        (queue.total_pending, queue.keyed, queue.keys),
        (0, 0, 0),
        "{queue:?}"
    );
}

#[test]
fn a_retry_holds_back_the_later_tasks_of_its_key_only() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let backend = backend(&ns);
    for n in 0..10 {
        flaky_point::enqueue(&backend, run.clone(), "a".into(), n).unwrap();
        flaky_point::enqueue(&backend, run.clone(), "b".into(), n).unwrap();
    }
    let workers = workers(&backend, "order-keys-retry", 2, 1);
    wait_until(WAIT, "every point ran", || started(&run) >= 21);
    for worker in workers {
        worker.shutdown();
    }
    let log: Vec<(String, u32, u32)> = with_log(&run, |log| log.started.clone());
    let of_a: Vec<(u32, u32)> = log
        .iter()
        .filter(|(k, _, _)| k == "a")
        .map(|(_, n, attempt)| (*n, *attempt))
        .collect();
    let mut expected = vec![(0, 1), (0, 2)];
    expected.extend((1..10).map(|n| (n, 1)));
    assert_eq!(of_a, expected, "a's retry runs before a's later tasks");
    // b went on while a waited out its backoff: all of b started before a's retry.
    let retry_at = log
        .iter()
        .position(|(k, n, a)| k == "a" && *n == 0 && *a == 2);
    let last_b = log.iter().rposition(|(k, _, _)| k == "b");
    assert!(last_b < retry_at, "b was held back by a's retry: {log:?}");
}

#[test]
fn on_failure_dead_letter_sets_the_task_aside_at_once_and_its_key_goes_on() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let ids: Vec<_> = (0..4)
        .map(|n| doomed_point::enqueue(&ns.backend, run.clone(), "k".into(), n).unwrap())
        .collect();
    let workers = workers(&ns.backend, "order-keys-dead", 1, 1);
    wait_until(WAIT, "every point ran", || started(&run) >= 4);
    wait_until(WAIT, "the failed one is dead", || {
        ns.backend.task(&ids[1]).unwrap().map(|t| t.status) == Some(TaskStatus::Dead)
    });
    for worker in workers {
        worker.shutdown();
    }
    assert_eq!(first_starts(&run)["k"], vec![0, 1, 2, 3]);
    assert_eq!(started(&run), 4, "no retry");
    assert_eq!(ns.dead("order-keys-dead").len(), 1);
}

#[test]
fn an_ordered_queue_has_one_consumer_and_keeps_its_order_through_a_retry() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let backend = backend(&ns);
    for n in 0..60 {
        entry::enqueue(&backend, run.clone(), n).unwrap();
    }
    let workers = workers(&backend, "order-ledger", 4, 3);
    wait_until(WAIT, "every entry ran", || started(&run) >= 61);
    for worker in workers {
        worker.shutdown();
    }
    let log: Vec<(u32, u32)> = with_log(&run, |log| {
        assert!(log.overlaps.is_empty(), "overlapping: {:?}", log.overlaps);
        log.started.iter().map(|(_, n, a)| (*n, *a)).collect()
    });
    let mut expected: Vec<(u32, u32)> = (0..6).map(|n| (n, 1)).collect();
    expected.push((5, 2));
    expected.extend((6..60).map(|n| (n, 1)));
    assert_eq!(log, expected);
}

#[test]
fn an_ordered_queue_passes_to_another_worker_when_its_owner_stops() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let first = workers(&ns.backend, "order-ledger", 1, 1);
    for n in 0..20 {
        entry::enqueue(&ns.backend, run.clone(), n + 100).unwrap();
    }
    wait_until(WAIT, "the first worker ran some", || started(&run) >= 20);
    let queue = ns.backend.queue_stats("order-ledger").unwrap();
    let owner = queue.owner.clone().expect("an owner");
    assert!(owner.consumer.starts_with(first[0].id()), "{owner:?}");
    let second = workers(&ns.backend, "order-ledger", 1, 1);
    for worker in first {
        worker.shutdown();
    }
    for n in 20..40 {
        entry::enqueue(&ns.backend, run.clone(), n + 100).unwrap();
    }
    wait_until(WAIT, "the second worker ran the rest", || {
        started(&run) >= 40
    });
    let queue = ns.backend.queue_stats("order-ledger").unwrap();
    let owner = queue.owner.clone().expect("an owner");
    assert!(owner.consumer.starts_with(second[0].id()), "{owner:?}");
    for worker in second {
        worker.shutdown();
    }
    assert_eq!(first_starts(&run)["ledger"], (100..140).collect::<Vec<_>>());
}

#[test]
fn a_batch_holds_the_items_of_one_key_in_order_and_no_key_is_in_two_batches_at_once() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let items: Vec<Point> = (0..15)
        .flat_map(|n| {
            let run = run.clone();
            (0..8).map(move |d| Point {
                run: run.clone(),
                device: format!("d{d}"),
                n,
            })
        })
        .collect();
    points::enqueue_many(&ns.backend, items).unwrap();
    let workers = workers(&ns.backend, "order-batch", 2, 1);
    let seen = || {
        BATCHES
            .lock()
            .unwrap()
            .get(&run)
            .map_or(0, |b| b.iter().map(Vec::len).sum::<usize>())
    };
    wait_until(WAIT, "every item ran", || seen() >= 120);
    for worker in workers {
        worker.shutdown();
    }
    let batches = BATCHES.lock().unwrap().get(&run).cloned().unwrap();
    let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for batch in &batches {
        for (device, n) in batch {
            by_key.entry(device.clone()).or_default().push(*n);
        }
    }
    assert!(
        batches.iter().any(|b| {
            let keys: BTreeSet<&String> = b.iter().map(|(d, _)| d).collect();
            keys.len() < b.len()
        }),
        "a batch takes several items of one key: {batches:?}"
    );
    for (key, ns_) in by_key {
        assert_eq!(ns_, (0..15).collect::<Vec<_>>(), "order of {key}");
    }
}

#[test]
fn a_failed_batch_s_items_go_back_to_the_heads_of_their_keys_in_order() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let backend = backend(&ns);
    let items: Vec<Point> = (0..10)
        .flat_map(|n| {
            let run = run.clone();
            (0..4).map(move |d| Point {
                run: run.clone(),
                device: format!("d{d}"),
                n,
            })
        })
        .collect();
    flaky_points::enqueue_many(&backend, items).unwrap();
    let workers = workers(&backend, "order-batch-retry", 2, 1);
    let stored = || {
        FLAKY.lock().unwrap().get(&run).map_or(0, |calls| {
            calls
                .iter()
                .filter(|(_, failed)| !failed)
                .map(|(i, _)| i.len())
                .sum::<usize>()
        })
    };
    wait_until(WAIT, "every item stored", || stored() >= 40);
    for worker in workers {
        worker.shutdown();
    }
    let calls = FLAKY.lock().unwrap().get(&run).cloned().unwrap();
    assert!(calls[0].1 && !calls[0].0.is_empty(), "{calls:?}");
    let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (items, _) in calls.iter().filter(|(_, failed)| !failed) {
        for (device, n) in items {
            by_key.entry(device.clone()).or_default().push(*n);
        }
    }
    assert_eq!(by_key.len(), 4);
    for (key, ns_) in by_key {
        assert_eq!(
            ns_,
            (0..10).collect::<Vec<_>>(),
            "{key}: once each, in order"
        );
    }
    let queue = backend.queue_stats("order-batch-retry").unwrap();
    assert_eq!(
        (queue.keyed, queue.keys, queue.held_keys),
        (0, 0, 0),
        "{queue:?}"
    );
}

#[test]
fn odd_keys_keep_their_order_and_records_follow_keyed_tasks() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let odd = ["a\"b", "c\\d", "é ü", "", "k:{x}*"];
    let mut ids = Vec::new();
    for n in 0..6 {
        for key in odd {
            ids.push(
                point::with(&ns.backend)
                    .key(key)
                    .enqueue(run.clone(), key.to_owned(), n)
                    .unwrap(),
            );
        }
    }
    let numeric = numbered::enqueue(&ns.backend, run.clone(), 42, 0).unwrap();
    let info = ns.backend.task(&numeric).unwrap().unwrap();
    assert_eq!(info.key.as_deref(), Some("42"), "{info:?}");
    assert_eq!(info.status, TaskStatus::Queued);
    assert_eq!(info.queue_position, None, "a keyed task has no position");
    let too_long = "x".repeat(513);
    let refused = point::with(&ns.backend)
        .key(&too_long)
        .enqueue(run.clone(), String::new(), 0)
        .unwrap_err();
    assert!(
        matches!(refused, redisq::Error::InvalidArgument(_)),
        "{refused}"
    );
    let queue = ns.backend.queue_stats("order-keys").unwrap();
    assert_eq!((queue.keyed, queue.keys), (30, 5), "{queue:?}");
    assert_eq!(queue.busiest_keys.len(), 5);
    let workers: Vec<Worker> = ["order-keys", "order-keys-numeric"]
        .into_iter()
        .flat_map(|q| workers(&ns.backend, q, 2, 1))
        .collect();
    wait_until(WAIT, "every task ran", || started(&run) >= 31);
    for id in ids.iter().chain([&numeric]) {
        wait_until(WAIT, "its record to say done", || {
            ns.backend.task(id).unwrap().map(|t| t.status) == Some(TaskStatus::Done)
        });
    }
    for worker in workers {
        worker.shutdown();
    }
    let by_key = first_starts(&run);
    for key in odd {
        assert_eq!(by_key[key], (0..6).collect::<Vec<_>>(), "order of {key:?}");
    }
    assert_eq!(by_key["42"], vec![0]);
}

#[test]
fn delayed_and_requeued_keyed_tasks_join_their_key() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let doomed = doomed_point::enqueue(&ns.backend, run.clone(), "k".into(), 1).unwrap();
    let workers = workers(&ns.backend, "order-keys-dead", 1, 1);
    wait_until(WAIT, "the failing one is dead", || {
        ns.backend.task(&doomed).unwrap().map(|t| t.status) == Some(TaskStatus::Dead)
    });
    let later = doomed_point::with(&ns.backend)
        .delay(Duration::from_millis(300))
        .enqueue(run.clone(), "k".into(), 7)
        .unwrap();
    assert_eq!(
        ns.backend.task(&later).unwrap().unwrap().status,
        TaskStatus::Scheduled
    );
    assert!(ns
        .backend
        .requeue_dead("order-keys-dead", doomed.as_str())
        .unwrap());
    wait_until(WAIT, "the delayed one ran", || {
        ns.backend.task(&later).unwrap().map(|t| t.status) == Some(TaskStatus::Done)
    });
    wait_until(WAIT, "the requeued one failed again", || {
        ns.dead("order-keys-dead").len() == 1 && started(&run) >= 3
    });
    for worker in workers {
        worker.shutdown();
    }
    let queue = ns.backend.queue_stats("order-keys-dead").unwrap();
    assert_eq!(
        (queue.keyed, queue.keys, queue.total_pending),
        (0, 0, 0),
        "{queue:?}"
    );
    assert_eq!(
        first_starts(&run)["k"],
        vec![1, 7],
        "{:?}",
        with_log(&run, |l| l.started.clone())
    );
}

#[test]
fn the_tasks_behind_a_retry_of_their_key_wait_queued_in_order() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::from_millis(1_500), Duration::from_millis(1_500));
    let workers = workers(&backend, "order-keys-retry", 1, 1);
    // Quick tasks of another key first, so that the worker's prefetch grows past one.
    let warm: Vec<_> = (0..40)
        .map(|n| flaky_point::enqueue(&backend, run.clone(), "w".into(), n).unwrap())
        .collect();
    for id in &warm {
        wait_until(WAIT, "the quick tasks", || {
            backend.task(id).unwrap().map(|t| t.status) == Some(TaskStatus::Done)
        });
    }
    let run_a = |n: u32| (run.clone(), "a".to_owned(), n);
    let ids = flaky_point::enqueue_many(&backend, (0..5).map(run_a)).unwrap();
    wait_until(WAIT, "a0's first attempt to fail", || {
        backend.task(&ids[0]).unwrap().map(|t| t.status) == Some(TaskStatus::Failed)
    });
    // One claim took them all; the ones behind the retry were not started: queued.
    for id in &ids[1..] {
        let info = backend.task(id).unwrap().unwrap();
        assert_eq!(info.status, TaskStatus::Queued, "{info:?}");
    }
    assert_eq!(
        backend.queue_stats("order-keys-retry").unwrap().held_keys,
        1
    );
    let of_a = || {
        with_log(&run, |log| {
            log.started.iter().filter(|(k, _, _)| k == "a").count()
        })
    };
    assert_eq!(of_a(), 1, "nothing of a ran behind its retry");
    for id in &ids {
        wait_until(WAIT, "every task done", || {
            backend.task(id).unwrap().map(|t| t.status) == Some(TaskStatus::Done)
        });
    }
    for worker in workers {
        worker.shutdown();
    }
    let log: Vec<(u32, u32)> = with_log(&run, |log| {
        log.started
            .iter()
            .filter(|(k, _, _)| k == "a")
            .map(|(_, n, a)| (*n, *a))
            .collect()
    });
    assert_eq!(log, [(0, 1), (0, 2), (1, 1), (2, 1), (3, 1), (4, 1)]);
}

#[test]
fn an_ordered_queue_with_on_failure_dead_letter_sets_a_failed_task_aside_and_goes_on() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    for n in 0..6 {
        skippable_entry::enqueue(&ns.backend, run.clone(), n).unwrap();
    }
    let workers = workers(&ns.backend, "order-ledger-skip", 1, 2);
    wait_until(WAIT, "every entry ran", || started(&run) >= 6);
    wait_until(WAIT, "the failed one is dead", || {
        ns.dead("order-ledger-skip").len() == 1
    });
    for worker in workers {
        worker.shutdown();
    }
    assert_eq!(first_starts(&run)["ledger"], (0..6).collect::<Vec<_>>());
    assert_eq!(started(&run), 6, "no retry");
}

#[test]
fn an_ordered_queue_s_failed_batch_is_retried_before_anything_behind_it() {
    let ns = TestNs::new();
    let run = ns.name.clone();
    let backend = backend(&ns);
    ledger_batch::enqueue_many(&backend, (0..12).map(|n| (run.clone(), n))).unwrap();
    let workers = workers(&backend, "order-ledger-batch", 1, 2);
    let stored = || {
        LEDGER.lock().unwrap().get(&run).map_or(0, |calls| {
            calls
                .iter()
                .filter(|(_, failed)| !failed)
                .map(|(e, _)| e.len())
                .sum::<usize>()
        })
    };
    wait_until(WAIT, "every entry stored", || stored() >= 12);
    for worker in workers {
        worker.shutdown();
    }
    let calls = LEDGER.lock().unwrap().get(&run).cloned().unwrap();
    let (first, failed) = &calls[0];
    assert!(*failed, "{calls:?}");
    // The retried batch comes first again, then the rest, in order.
    assert_eq!(&calls[1].0, first, "{calls:?}");
    let done: Vec<u32> = calls
        .iter()
        .filter(|(_, failed)| !failed)
        .flat_map(|(e, _)| e.clone())
        .collect();
    assert_eq!(done, (0..12).collect::<Vec<_>>(), "{calls:?}");
}
