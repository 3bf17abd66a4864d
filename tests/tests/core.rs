//! The core path against the real Redis server: enqueue, run on worker threads, FIFO,
//! several queues, foreign producers, dead letters, failures and shutdown.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redisq::{fifo, Worker};
use redisq_test_support::wait_until;
use serde::{Deserialize, Serialize};
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

/// What each test's tasks recorded, by the test's own key.
static SEEN: Mutex<BTreeMap<String, Vec<u64>>> = Mutex::new(BTreeMap::new());

fn seen(key: &str) -> Vec<u64> {
    SEEN.lock().unwrap().get(key).cloned().unwrap_or_default()
}

#[fifo(queue = "record")]
fn record(key: String, n: u64) {
    SEEN.lock().unwrap().entry(key).or_default().push(n);
}

#[derive(Debug, Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

#[fifo(queue = "points", name = "tests.add_point")]
fn add_point(key: String, point: Point) -> Result<i64, String> {
    let sum = point.x + point.y;
    SEEN.lock()
        .unwrap()
        .entry(key)
        .or_default()
        .push(sum as u64);
    Ok(sum)
}

#[fifo(queue = "trouble", retries = 0)]
fn fails(key: String) -> Result<(), String> {
    SEEN.lock().unwrap().entry(key).or_default().push(1);
    Err("this task always fails".to_owned())
}

#[fifo(queue = "trouble", retries = 0)]
fn panics(key: String) {
    SEEN.lock().unwrap().entry(key).or_default().push(2);
    panic!("this task always panics");
}

static RELEASED: AtomicBool = AtomicBool::new(false);

#[fifo(queue = "slow")]
fn wait_for_release(key: String) {
    SEEN.lock().unwrap().entry(key.clone()).or_default().push(0);
    let deadline = Instant::now() + WAIT;
    while !RELEASED.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    SEEN.lock().unwrap().entry(key).or_default().push(1);
}

#[test]
fn enqueued_task_runs_on_a_worker_thread() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let id = record::enqueue(&ns.backend, key.clone(), 7).unwrap();
    assert_eq!(id.as_str().len(), 32);
    assert_eq!(ns.backend.pending("record").unwrap(), 1, "queued, not run");
    assert!(seen(&key).is_empty());

    let workers = Worker::builder(ns.backend.clone())
        .queues(["record"])
        .start()
        .unwrap();
    wait_until(WAIT, "the task to run", || seen(&key) == [7]);
    wait_until(WAIT, "the acknowledgement", || {
        ns.llen("record", "pending") == 0
    });
    workers.shutdown();
    assert_eq!(ns.backend.pending("record").unwrap(), 0);
}

#[test]
fn run_calls_the_body_inline_without_redis() {
    let out = add_point::run("inline".to_owned(), Point { x: 2, y: 3 });
    assert_eq!(out, Ok(5));
    assert_eq!(seen("inline"), [5]);
    assert_eq!(add_point::NAME, "tests.add_point");
    assert_eq!(add_point::QUEUE, "points");
    assert_eq!(record::NAME, "core::record");
}

#[test]
fn fifo_order_holds_over_ten_thousand_tasks_with_one_thread() {
    const N: u64 = 10_000;
    let ns = TestNs::new();
    let key = ns.name.clone();
    for n in 0..N {
        record::enqueue(&ns.backend, key.clone(), n).unwrap();
    }
    let workers = Worker::builder(ns.backend.clone())
        .queues(["record"])
        .threads("record", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "all tasks to run", || seen(&key).len() as u64 >= N);
    workers.shutdown();
    let order = seen(&key);
    assert_eq!(order, (0..N).collect::<Vec<_>>(), "tasks ran out of order");
}

#[test]
fn several_queues_with_several_threads_each_are_independent() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let slow_key = format!("{key}-slow");
    // Two tasks hold both threads of the slow queue until released.
    wait_for_release::enqueue(&ns.backend, slow_key.clone()).unwrap();
    wait_for_release::enqueue(&ns.backend, slow_key.clone()).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["slow", "record", "points"])
        .threads("slow", 2)
        .threads("record", 3)
        .threads("points", 2)
        .start()
        .unwrap();
    assert_eq!(workers.queues().get("record"), Some(&3));
    wait_until(WAIT, "both slow tasks to start", || {
        seen(&slow_key) == [0, 0]
    });

    for n in 0..300 {
        record::enqueue(&ns.backend, key.clone(), n).unwrap();
        add_point::enqueue(
            &ns.backend,
            key.clone(),
            Point {
                x: 1000,
                y: n as i64,
            },
        )
        .unwrap();
    }
    wait_until(
        WAIT,
        "the other queues to drain while `slow` is busy",
        || seen(&key).len() == 600,
    );
    assert_eq!(seen(&slow_key), [0, 0], "slow tasks still running");
    let mut got = seen(&key);
    got.sort_unstable();
    let mut want: Vec<u64> = (0..300).chain((0..300).map(|n| 1000 + n)).collect();
    want.sort_unstable();
    assert_eq!(got, want);

    RELEASED.store(true, Ordering::Release);
    wait_until(WAIT, "slow tasks to finish", || seen(&slow_key).len() == 4);
    workers.shutdown();
}

#[test]
fn raw_rpush_task_runs_with_positional_and_named_args() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    ns.rpush(
        "points",
        &format!(
            r#"{{"id":"raw-1","name":"tests.add_point","queue":"points","args":["{key}",{{"x":1,"y":2}}],"enqueued_at":1}}"#
        ),
    );
    // Only `name` is required; args by parameter name, as another language would send them.
    ns.rpush(
        "points",
        &format!(
            r#"{{"name":"tests.add_point","args":{{"point":{{"x":10,"y":20}},"key":"{key}"}}}}"#
        ),
    );
    let workers = Worker::builder(ns.backend.clone())
        .queues(["points"])
        .start()
        .unwrap();
    wait_until(WAIT, "both raw tasks to run", || seen(&key).len() == 2);
    assert_eq!(seen(&key), [3, 30]);
    assert_eq!(workers.counts().processed, 2);
    workers.shutdown();
    assert!(ns.dead("points").is_empty());
}

#[test]
fn poison_payloads_go_to_the_dead_letter_list_and_the_worker_goes_on() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    ns.rpush("record", "{not json");
    ns.rpush(
        "record",
        r#"{"id":"u1","name":"nobody::knows_me","args":[]}"#,
    );
    ns.rpush(
        "record",
        &format!(r#"{{"id":"b1","name":"core::record","args":["{key}","seven"]}}"#),
    );
    ns.rpush(
        "record",
        &format!(r#"{{"id":"b2","name":"core::record","args":["{key}"]}}"#),
    );
    record::enqueue(&ns.backend, key.clone(), 42).unwrap();

    let workers = Worker::builder(ns.backend.clone())
        .queues(["record"])
        .start()
        .unwrap();
    wait_until(WAIT, "the good task after the poison ones", || {
        seen(&key) == [42]
    });
    wait_until(WAIT, "four dead letters", || {
        ns.backend.dead_count("record").unwrap() == 4
    });
    let counts = workers.counts();
    workers.shutdown();
    assert_eq!((counts.processed, counts.dead), (1, 4));

    let dead = ns.dead("record");
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        reasons[0].starts_with("payload is not JSON"),
        "{}",
        reasons[0]
    );
    assert_eq!(
        reasons[1],
        "task `nobody::knows_me` is not registered in this binary"
    );
    assert!(
        reasons[2].starts_with("bad arguments: argument `n`: invalid type"),
        "{}",
        reasons[2]
    );
    assert_eq!(reasons[3], "bad arguments: expected 2 argument(s), got 1");
    assert_eq!(dead[0].payload, "{not json");
    assert_eq!(dead[0].name, None);
    assert_eq!(dead[1].id, "u1");
    assert_eq!(dead[2].name.as_deref(), Some("core::record"));
    assert!(dead
        .iter()
        .all(|d| d.queue == "record" && d.failed_at > 0 && d.attempts == 0));
    assert_eq!(ns.llen("record", "pending"), 0);
}

#[test]
fn failing_and_panicking_tasks_are_counted_and_the_thread_survives() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    fails::enqueue(&ns.backend, key.clone()).unwrap();
    panics::enqueue(&ns.backend, key.clone()).unwrap();
    panics::enqueue(&ns.backend, key.clone()).unwrap();
    fails::enqueue(&ns.backend, key.clone()).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["trouble"])
        .threads("trouble", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "all four to run on the one thread", || {
        seen(&key).len() == 4
    });
    assert_eq!(seen(&key), [1, 2, 2, 1]);
    wait_until(WAIT, "the failures to be counted", || {
        workers.counts().failed == 4
    });
    workers.shutdown();
    // With no retries left, each failure is a dead letter with its message.
    let reasons: Vec<String> = ns.dead("trouble").into_iter().map(|d| d.reason).collect();
    assert_eq!(
        reasons,
        [
            "failed after 1 attempt(s): this task always fails",
            "failed after 1 attempt(s): panicked: this task always panics",
            "failed after 1 attempt(s): panicked: this task always panics",
            "failed after 1 attempt(s): this task always fails",
        ]
    );
}

#[test]
fn shutdown_of_idle_workers_is_prompt() {
    let ns = TestNs::new();
    // The default block timeout (1 s) bounds how long an idle thread takes to notice.
    let backend = ns
        .backend
        .clone()
        .with_block_timeout(Duration::from_secs(1));
    let workers = Worker::builder(backend)
        .queues(["record", "points", "slow"])
        .threads("record", 4)
        .start()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300)); // let every thread block in its pop
    let started = Instant::now();
    workers.shutdown();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}

#[test]
fn starting_with_no_queue_is_an_error_not_a_panic() {
    let ns = TestNs::new();
    let err = Worker::builder(ns.backend.clone())
        .queues(Vec::<String>::new())
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("no queue to serve"), "{err}");
    let err = Worker::builder(ns.backend.clone())
        .queues([""])
        .start()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: queue name must not be empty"
    );
}

#[test]
fn an_unreachable_redis_is_an_unavailable_error() {
    let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:1")
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = record::enqueue(&backend, "x".into(), 1).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// What `TaskContext::current()` said inside each run, by the test's key.
static CONTEXTS: Mutex<BTreeMap<String, redisq::TaskContext>> = Mutex::new(BTreeMap::new());

#[fifo(queue = "context")]
fn remember_context(key: String) {
    if let Some(context) = redisq::TaskContext::current() {
        CONTEXTS.lock().unwrap().insert(key, context);
    }
}

#[test]
fn a_running_task_knows_its_context() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    remember_context::run(key.clone());
    assert!(
        CONTEXTS.lock().unwrap().get(&key).is_none(),
        "no context inline"
    );
    let id = remember_context::enqueue(&ns.backend, key.clone()).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["context"])
        .start()
        .unwrap();
    wait_until(WAIT, "the task", || {
        CONTEXTS.lock().unwrap().contains_key(&key)
    });
    workers.shutdown();
    let context = CONTEXTS.lock().unwrap()[&key].clone();
    assert_eq!(context.id, id);
    assert_eq!(context.queue, "context");
    assert_eq!(context.namespace, ns.name);
    assert_eq!(context.name, "core::remember_context");
    assert_eq!(context.attempt, 1);
}
