//! Producer-side flow against the real Redis server: a queue named at run time
//! (`enqueue_to`), bulk enqueue in one round trip (`enqueue_many`), and the inline
//! fallback when Redis is unreachable (`enqueue_or_run`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::thread::{self, ThreadId};
use std::time::Duration;

use redisq::{fifo, Dispatch, RedisQueueBackend, TaskId, Worker};
use redisq_test_support::{raw, wait_until};
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

/// What each test's tasks recorded, by the test's own key: a number and the thread it ran on.
static SEEN: Mutex<BTreeMap<String, Vec<(u64, ThreadId)>>> = Mutex::new(BTreeMap::new());

fn seen(key: &str) -> Vec<(u64, ThreadId)> {
    SEEN.lock().unwrap().get(key).cloned().unwrap_or_default()
}

fn numbers(key: &str) -> Vec<u64> {
    seen(key).into_iter().map(|(n, _)| n).collect()
}

fn note(key: String, n: u64) {
    SEEN.lock()
        .unwrap()
        .entry(key)
        .or_default()
        .push((n, thread::current().id()));
}

#[fifo(queue = "flow")]
fn record(key: String, n: u64) {
    note(key, n);
}

#[fifo(queue = "emails")]
fn send_email(key: String, n: u64) -> Result<u64, String> {
    note(key, n);
    Ok(n)
}

#[fifo(queue = "flow")]
fn double(key: String, n: u64) -> u64 {
    note(key, n);
    n * 2
}

/// A map with non-string keys, which JSON cannot hold.
#[fifo(queue = "flow")]
fn unserializable(key: String, map: HashMap<Vec<u8>, u8>) {
    note(key, map.len() as u64);
}

/// A backend on a loopback port where nothing listens: every connection is refused.
fn unreachable_backend(ns: &TestNs) -> RedisQueueBackend {
    RedisQueueBackend::new("redis://127.0.0.1:1")
        .unwrap()
        .with_namespace(ns.name.clone())
        .with_timeout(Duration::from_millis(300))
}

/// The ids of the payloads waiting in `queue`, head first.
fn pending_ids(ns: &TestNs, queue: &str) -> Vec<TaskId> {
    let payloads: Vec<String> = redis::cmd("LRANGE")
        .arg(ns.key(queue, "pending"))
        .arg(0)
        .arg(-1)
        .query(&mut raw())
        .unwrap();
    payloads
        .iter()
        .map(|p| {
            let value: serde_json::Value = serde_json::from_str(p).unwrap();
            TaskId::from(value["id"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn enqueue_to_routes_to_a_queue_named_at_run_time() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let id = send_email::enqueue_to(&ns.backend, "emails-eu", key.clone(), 1).unwrap();
    assert_eq!(ns.backend.pending("emails-eu").unwrap(), 1);
    assert_eq!(ns.backend.pending("emails").unwrap(), 0, "default queue");
    assert_eq!(pending_ids(&ns, "emails-eu"), [id]);

    let payload: String = redis::cmd("LINDEX")
        .arg(ns.key("emails-eu", "pending"))
        .arg(0)
        .query(&mut raw())
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["queue"], "emails-eu");
    assert_eq!(payload["name"], "flow::send_email");

    let workers = Worker::builder(ns.backend.clone())
        .queues(["emails-eu"])
        .start()
        .unwrap();
    wait_until(WAIT, "the routed task to run", || numbers(&key) == [1]);
    wait_until(WAIT, "the queue to drain", || {
        ns.backend.pending("emails-eu").unwrap() == 0
    });
    let counts = workers.counts();
    workers.shutdown();
    assert_eq!((counts.processed, counts.dead), (1, 0));
}

#[test]
fn enqueue_to_an_empty_queue_name_is_an_invalid_argument() {
    let ns = TestNs::new();
    let err = send_email::enqueue_to(&ns.backend, "", ns.name.clone(), 1).unwrap_err();
    assert!(matches!(err, redisq::Error::InvalidArgument(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "invalid argument: queue name must not be empty"
    );
    assert!(ns.keys().is_empty());
}

#[test]
fn enqueue_many_keeps_item_order_in_ids_queue_and_runs() {
    const N: u64 = 1_000;
    let ns = TestNs::new();
    let key = ns.name.clone();
    let ids = record::enqueue_many(&ns.backend, (0..N).map(|n| (key.clone(), n))).unwrap();
    assert_eq!(ids.len() as u64, N);
    let distinct: std::collections::BTreeSet<&TaskId> = ids.iter().collect();
    assert_eq!(distinct.len() as u64, N, "ids are distinct");
    assert_eq!(
        pending_ids(&ns, "flow"),
        ids,
        "the queue holds them in item order"
    );
    assert!(numbers(&key).is_empty(), "enqueued, not run");

    let workers = Worker::builder(ns.backend.clone())
        .queues(["flow"])
        .threads("flow", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "all tasks to run", || numbers(&key).len() as u64 >= N);
    workers.shutdown();
    assert_eq!(
        numbers(&key),
        (0..N).collect::<Vec<_>>(),
        "ran in item order"
    );
}

#[test]
fn enqueue_many_pushes_several_chunks_in_order() {
    // More than one RPUSH chunk (1,000 payloads each) in the one pipeline.
    const N: u64 = 2_345;
    let ns = TestNs::new();
    let key = ns.name.clone();
    let ids = double::enqueue_many(&ns.backend, (0..N).map(|n| (key.clone(), n))).unwrap();
    assert_eq!(ids.len() as u64, N);
    assert_eq!(pending_ids(&ns, "flow"), ids);
}

#[test]
fn enqueue_many_of_nothing_returns_nothing_and_touches_no_redis() {
    let ns = TestNs::new();
    let ids = record::enqueue_many(&ns.backend, Vec::new()).unwrap();
    assert!(ids.is_empty());
    assert!(ns.keys().is_empty(), "nothing written");
    // Not even a connection: the same on a server that does not exist.
    let ids = record::enqueue_many(&unreachable_backend(&ns), std::iter::empty()).unwrap();
    assert!(ids.is_empty());
}

#[test]
fn enqueue_many_with_an_unserializable_item_enqueues_nothing() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let bad = HashMap::from([(vec![1_u8], 1_u8)]);
    let items = vec![
        (key.clone(), HashMap::new()),
        (key.clone(), bad),
        (key.clone(), HashMap::new()),
    ];
    let err = unserializable::enqueue_many(&ns.backend, items).unwrap_err();
    assert!(matches!(err, redisq::Error::Serialize(_)), "{err:?}");
    assert_eq!(ns.backend.pending("flow").unwrap(), 0);
}

#[test]
fn enqueue_or_run_runs_inline_when_redis_is_unreachable_and_queues_again_once_it_is_back() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let down = unreachable_backend(&ns);

    let out = double::enqueue_or_run(&down, key.clone(), 21).unwrap();
    assert_eq!(out, Dispatch::RanInline(42));
    assert!(!out.is_queued());
    assert_eq!(out.task_id(), None);
    assert_eq!(
        seen(&key),
        [(21, thread::current().id())],
        "the body ran once, in the caller's thread"
    );

    // Redis is back: the same call is queued, and nothing runs inline.
    let out = double::enqueue_or_run(&ns.backend, key.clone(), 5).unwrap();
    let id = out.task_id().cloned().expect("queued");
    assert!(out.is_queued());
    assert_eq!(out.clone().into_inline(), None);
    assert_eq!(pending_ids(&ns, "flow"), [id]);
    assert_eq!(numbers(&key), [21], "not run inline");

    let workers = Worker::builder(ns.backend.clone())
        .queues(["flow"])
        .start()
        .unwrap();
    wait_until(WAIT, "a worker to run the queued call", || {
        numbers(&key) == [21, 5]
    });
    workers.shutdown();
    let (_, worker_thread) = seen(&key)[1];
    assert_ne!(worker_thread, thread::current().id(), "ran on a worker");
}

#[test]
fn without_the_fallback_an_unreachable_redis_is_an_unavailable_error() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let down = unreachable_backend(&ns);
    let err = double::enqueue(&down, key.clone(), 1).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = double::enqueue_to(&down, "elsewhere", key.clone(), 1).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = double::enqueue_many(&down, [(key.clone(), 1)]).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(seen(&key).is_empty(), "nothing ran");
}

#[test]
fn enqueue_or_run_returns_other_errors_without_running_inline() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    for backend in [ns.backend.clone(), unreachable_backend(&ns)] {
        let map = HashMap::from([(vec![1_u8, 2], 3_u8)]);
        let err = unserializable::enqueue_or_run(&backend, key.clone(), map).unwrap_err();
        assert!(matches!(err, redisq::Error::Serialize(_)), "{err:?}");
        assert!(!err.is_unavailable());
    }
    assert!(seen(&key).is_empty(), "not run inline");
    assert_eq!(ns.backend.pending("flow").unwrap(), 0);
}
