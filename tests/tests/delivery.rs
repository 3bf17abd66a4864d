//! Delivery under faults that one process can stage: claims and pushes of any size,
//! shutdown with tasks running, a task that hangs, payloads that cannot run, batches that
//! fail, dead-letter bounds, Redis at its memory limit and a Redis whose clock is not the
//! client's.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redisq::{fifo, RedisQueueBackend, TaskStatus, Worker};
use redisq_test_support::{wait_until, Namespace, RedisServer};
use support::TestNs;

const WAIT: Duration = Duration::from_secs(60);

/// Items each key's tasks saw, and keys let through.
static SEEN: Mutex<BTreeMap<String, Vec<u64>>> = Mutex::new(BTreeMap::new());
static OPEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn saw(key: &str, n: u64) {
    SEEN.lock()
        .unwrap()
        .entry(key.to_owned())
        .or_default()
        .push(n);
}

fn seen(key: &str) -> Vec<u64> {
    SEEN.lock().unwrap().get(key).cloned().unwrap_or_default()
}

fn open(key: &str) {
    OPEN.lock().unwrap().insert(key.to_owned());
}

fn wait_open(key: &str) {
    let deadline = Instant::now() + WAIT;
    while !OPEN.lock().unwrap().contains(key) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[fifo(queue = "big", batch = 9000, store_result = false)]
fn big(items: Vec<(String, u64)>) {
    for (key, n) in items {
        saw(&key, n);
    }
}

#[fifo(queue = "many")]
fn many(key: String, n: u64) {
    saw(&key, n);
}

#[fifo(queue = "slow")]
fn slow(key: String) {
    saw(&key, 0);
    std::thread::sleep(Duration::from_millis(1_500));
}

#[fifo(queue = "hung")]
fn hung(key: String, n: u64) {
    saw(&key, n);
    if n == 0 {
        wait_open(&key);
    }
}

#[fifo(queue = "bad", retries = 1)]
fn always_fails(key: String) -> Result<(), String> {
    saw(&key, 0);
    Err("it never works".to_owned())
}

#[fifo(queue = "items", batch = 10, retries = 2)]
fn flaky_batch(items: Vec<(String, u64)>) -> Result<usize, String> {
    let Some(key) = items.first().map(|(k, _)| k.clone()) else {
        return Ok(0);
    };
    let first = seen(&key).is_empty();
    for (key, n) in &items {
        saw(key, *n);
    }
    if first {
        return Err("the first call fails".to_owned());
    }
    Ok(items.len())
}

#[fifo(queue = "loud", retries = 0)]
fn loud(key: String, size: usize) -> Result<(), String> {
    saw(&key, 0);
    Err("x".repeat(size))
}

#[fifo(queue = "same", store_result = false)]
fn same(key: String) {
    saw(&key, 0);
}

#[fifo(queue = "amo")]
fn held(key: String, n: u64) {
    saw(&key, n);
    wait_open(&key);
}

/// A backend on `server` in `ns`, with a short block timeout.
fn on(server: &RedisServer, ns: &Namespace) -> RedisQueueBackend {
    RedisQueueBackend::new(&server.url())
        .unwrap()
        .with_namespace(ns.name())
        .with_block_timeout(Duration::from_millis(200))
}

/// The most arguments any command in `server`'s slow log had (Redis keeps 32 and notes
/// how many more there were), and the longest one's time (µs).
fn largest_calls(server: &RedisServer) -> (usize, u64) {
    let log: Vec<Vec<redis::Value>> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut server.connection())
        .unwrap();
    let (mut most, mut longest) = (0, 0);
    for entry in &log {
        // id, time, duration (µs), arguments, client address, client name.
        let us: u64 = redis::from_redis_value(entry[2].clone()).unwrap();
        let args: Vec<String> = redis::from_redis_value(entry[3].clone()).unwrap();
        let more = args
            .last()
            .and_then(|a| a.strip_prefix("... ("))
            .and_then(|a| a.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok());
        most = most.max(more.map_or(args.len(), |more| args.len() - 1 + more));
        longest = longest.max(us);
    }
    (most, longest)
}

#[test]
fn claims_and_pushes_of_any_size_lose_nothing_and_never_hold_redis_long() {
    // A private server that logs every command, so that its slow log is this test's own.
    let server = RedisServer::builder()
        .config("slowlog-log-slower-than", "0")
        .config("slowlog-max-len", "1000000")
        .start();
    let ns = Namespace::on(server.url());
    let backend = on(&server, &ns);
    let key = ns.name().to_owned();
    // Batches larger than a claim may take, due now and due later.
    big::enqueue_many(&backend, (0..9_000).map(|n| (key.clone(), n))).unwrap();
    big::with(&backend)
        .delay(Duration::from_millis(200))
        .enqueue_many((9_000..18_000).map(|n| (key.clone(), n)))
        .unwrap();
    // A push of many tasks with records.
    let ids = many::enqueue_many(&backend, (0..100_000).map(|n| (key.clone(), n))).unwrap();
    assert_eq!(ids.len(), 100_000);
    let workers = Worker::builder(backend.clone())
        .queues(["big"])
        .batch_wait(Duration::from_millis(200))
        .start()
        .unwrap();
    wait_until(WAIT, "every batch item to run", || {
        seen(&key).len() >= 18_000
    });
    workers.shutdown();
    let items: BTreeSet<u64> = seen(&key).into_iter().collect();
    assert_eq!(items.len(), 18_000, "no item lost");
    // No call grows with its input: a thousand tasks (two keys or values each) at most.
    // (Time would say the same on a quiet machine: a few ms; a loaded one can stretch any
    // call, so the bound on time is only a sanity check.)
    let (most, longest) = largest_calls(&server);
    assert!(most <= 2_100, "a call with {most} arguments");
    assert!(longest < 1_000_000, "a call of {longest} us");
    drop(ns);
}

#[test]
fn a_graceful_shutdown_keeps_the_lease_of_a_running_task() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(Duration::from_millis(300));
    let key = ns.name.clone();
    slow::enqueue(&backend, key.clone()).unwrap();
    let first = Worker::builder(backend.clone())
        .queues(["slow"])
        .start()
        .unwrap();
    wait_until(WAIT, "the task to start", || seen(&key).len() == 1);
    // A second worker (a rolling deploy), then the first stops while the task runs.
    let second = Worker::builder(backend.clone())
        .queues(["slow"])
        .start()
        .unwrap();
    first.shutdown();
    assert_eq!(backend.queue_stats("slow").unwrap().processed, 1);
    second.shutdown();
    assert_eq!(seen(&key).len(), 1, "the running task ran once");
}

#[test]
fn a_task_that_hangs_hands_back_the_tasks_it_took_but_has_not_started() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(Duration::from_millis(400));
    let key = ns.name.clone();
    // Quick tasks first, so that the worker's prefetch grows; then the hanging one and
    // five behind it, all in one push: the worker takes them together.
    hung::enqueue_many(&backend, (1..=20).map(|n| (key.clone(), 100 + n))).unwrap();
    let holder = Worker::builder(backend.clone())
        .queues(["hung"])
        .prefetch(10)
        .start()
        .unwrap();
    wait_until(WAIT, "the warm-up tasks", || seen(&key).len() == 20);
    hung::enqueue_many(&backend, (0..=5).map(|n| (key.clone(), n))).unwrap();
    wait_until(WAIT, "the hanging task to start", || {
        seen(&key).contains(&0)
    });
    let before = backend.queue_stats("hung").unwrap();
    assert_eq!(before.processing, 6, "one worker holds all six: {before:?}");
    let other = Worker::builder(backend.clone())
        .queues(["hung"])
        .start()
        .unwrap();
    // Well before the hanging task gives up (after a minute).
    wait_until(
        Duration::from_secs(15),
        "the five behind it to run elsewhere",
        || (1..=5).all(|n| seen(&key).contains(&n)),
    );
    assert!(!OPEN.lock().unwrap().contains(&key), "while it still hangs");
    open(&key);
    holder.shutdown();
    other.shutdown();
    let ran: Vec<u64> = seen(&key).into_iter().filter(|n| *n <= 5).collect();
    assert_eq!(ran.len(), 6, "each ran once: {ran:?}");
}

#[test]
fn payloads_that_cannot_run_are_dead_letters_in_one_pass_with_reasons_in_words() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::ZERO, Duration::ZERO)
        .with_max_payload(4096);
    let key = ns.name.clone();
    let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
    let name = always_fails::NAME;
    let raw: Vec<(Vec<u8>, &str)> = vec![
        (
            b"[1,2]".to_vec(),
            "payload is a JSON array, expected an object with the task's `name`",
        ),
        (
            b"\"text\"".to_vec(),
            "payload is a JSON string, expected an object with the task's `name`",
        ),
        (
            b"{}".to_vec(),
            "payload has no `name`: it must name the task to run",
        ),
        (vec![0xff, 0xfe, 0xfd], "payload is not valid UTF-8"),
        (
            format!(r#"{{"name":"{name}","args":["{}"]}}"#, "y".repeat(5000)).into_bytes(),
            "payload is 5",
        ),
        (
            format!(r#"{{"id":"deep","name":"{name}","args":["{key}"],"x":{deep}}}"#).into_bytes(),
            "failed after 2 attempt(s): it never works",
        ),
    ];
    for (payload, _) in &raw {
        let _: () = redis::cmd("RPUSH")
            .arg(ns.key("bad", "pending"))
            .arg(payload)
            .query(&mut redisq_test_support::raw())
            .unwrap();
    }
    let workers = Worker::builder(backend.clone())
        .queues(["bad"])
        .start()
        .unwrap();
    wait_until(WAIT, "every payload in the dead letters", || {
        backend.dead_count("bad").unwrap() == raw.len()
    });
    workers.shutdown();
    let letters = ns.dead("bad");
    for ((_, reason), letter) in raw.iter().zip(&letters) {
        assert!(
            letter.reason.starts_with(reason),
            "{:?} for {reason:?}",
            letter.reason
        );
    }
    let stats = backend.queue_stats("bad").unwrap();
    assert_eq!(
        stats.retried, 1,
        "only the task that ran and failed was retried"
    );
    assert_eq!(
        seen(&key).len(),
        2,
        "the deep one ran twice, as its retries allow"
    );
    assert_eq!(letters[5].attempts, 2);
}

#[test]
fn the_items_of_a_batch_that_failed_follow_it_to_the_end() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::ZERO, Duration::ZERO);
    let key = ns.name.clone();
    let ids = flaky_batch::enqueue_many(&backend, (0..3).map(|n| (key.clone(), n))).unwrap();
    let workers = Worker::builder(backend.clone())
        .queues(["items"])
        .start()
        .unwrap();
    for id in &ids {
        let info = backend.wait(id, Duration::from_secs(20)).unwrap().unwrap();
        assert_eq!(info.status, TaskStatus::Done, "{info:?}");
        assert_eq!(info.attempts, 2, "{info:?}");
        assert_eq!(info.result, Some(serde_json::json!(3)));
    }
    workers.shutdown();
}

#[test]
fn dead_letters_are_bounded_in_bytes_with_errors_cut_and_aged_out_by_the_workers() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_dead_letter_max_bytes(40_000)
        .with_dead_letter_max_age(Duration::from_secs(2))
        .with_lease(Duration::from_millis(300));
    let key = ns.name.clone();
    loud::enqueue_many(&backend, (0..60).map(|_| (key.clone(), 100_000))).unwrap();
    let workers = Worker::builder(backend.clone())
        .queues(["loud"])
        .start()
        .unwrap();
    wait_until(WAIT, "every task to die", || seen(&key).len() == 60);
    wait_until(WAIT, "their dead letters to be written", || {
        backend.queue_stats("loud").unwrap().dead_lettered == 60
    });
    let letters = backend.dead_letters("loud", 0, 100).unwrap();
    let bytes: usize = letters
        .iter()
        .map(|l| serde_json::to_vec(l).unwrap().len())
        .sum();
    assert!(bytes <= 40_000, "{bytes} bytes of dead letters");
    assert!(!letters.is_empty());
    for letter in &letters {
        assert!(
            letter.reason.len() < 2_200,
            "{} bytes of reason",
            letter.reason.len()
        );
    }
    // No new dead letter comes, yet the old ones age out: the workers apply the bound.
    wait_until(WAIT, "the dead letters to age out", || {
        backend.dead_count("loud").unwrap() == 0
    });
    workers.shutdown();
}

#[test]
fn an_oversized_task_is_refused_and_nothing_is_written() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_max_payload(2048);
    let err = many::enqueue(&backend, "k".repeat(3000), 1).unwrap_err();
    assert!(
        matches!(err, redisq::Error::TooLarge { max: 2048, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(ns.keys().is_empty());
}

#[test]
fn workers_drain_a_redis_at_its_memory_limit() {
    let server = RedisServer::builder().maxmemory(3 << 20).start();
    let ns = Namespace::on(server.url());
    let backend = on(&server, &ns);
    let key = ns.name().to_owned();
    let mut enqueued = 0u64;
    let refused = loop {
        match many::enqueue(&backend, key.clone(), enqueued) {
            Ok(_) => enqueued += 1,
            Err(err) => break err,
        }
        assert!(enqueued < 1_000_000, "never full");
    };
    assert!(!refused.is_unavailable(), "{refused}");
    assert!(
        refused.to_string().contains("OOM") || refused.to_string().contains("memory"),
        "{refused}"
    );
    let workers = Worker::builder(backend.clone())
        .queues(["many"])
        .start()
        .unwrap();
    wait_until(WAIT, "the full queue to drain", || {
        backend
            .queue_stats("many")
            .map(|s| s.processed)
            .unwrap_or(0)
            == enqueued
    });
    workers.shutdown();
    assert_eq!(seen(&key).len() as u64, enqueued);
    drop(ns);
}

#[test]
fn positions_are_exact_after_blocking_pops_and_hand_backs() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_delivery(redisq::Delivery::AtMostOnce);
    let key = ns.name.clone();
    // An idle at-most-once worker pops the first task with a blocking pop; it holds it.
    let workers = Worker::builder(backend.clone())
        .queues(["amo"])
        .start()
        .unwrap();
    held::enqueue(&backend, key.clone(), 0).unwrap();
    wait_until(WAIT, "the first task to be popped", || seen(&key) == [0]);
    let ids = held::enqueue_many(&backend, (1..=5).map(|n| (key.clone(), n))).unwrap();
    for (position, id) in ids.iter().enumerate() {
        let info = backend.task(id).unwrap().unwrap();
        assert_eq!(info.queue_position, Some(position as u64), "{info:?}");
        assert!(info.estimated_wait_seconds.is_some_and(|w| w >= 0.0));
    }
    open(&key);
    workers.shutdown();
}

#[test]
fn lost_replies_never_acknowledge_a_task_that_did_not_run_even_with_identical_payloads() {
    use redisq_tests::chaos::proxy::{Mode, Proxy};
    const TASKS: usize = 400;
    let ns = TestNs::new();
    let key = ns.name.clone();
    // A foreign producer's identical payloads: nothing tells one from another.
    let payload = format!(r#"{{"name":"{}","args":["{key}"]}}"#, same::NAME);
    let mut pipe = redis::pipe();
    for _ in 0..TASKS {
        pipe.cmd("RPUSH")
            .arg(ns.key("same", "pending"))
            .arg(&payload)
            .ignore();
    }
    pipe.query::<()>(&mut redisq_test_support::raw()).unwrap();
    // The worker reaches Redis through a proxy that swallows one reply in four.
    let upstream = redisq_test_support::redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = Proxy::start(upstream, 7).unwrap();
    proxy.set_mode(Mode::DropReplies { one_in: 4 });
    let through = RedisQueueBackend::new(&proxy.url())
        .unwrap()
        .with_namespace(ns.name.clone())
        .with_block_timeout(Duration::from_millis(200))
        .with_lease(Duration::from_secs(2));
    let workers = Worker::builder(through)
        .queues(["same"])
        .prefetch(10)
        .start()
        .unwrap();
    wait_until(WAIT, "the queue to drain", || {
        let stats = ns.backend.queue_stats("same").unwrap();
        stats.total_pending == 0 && stats.processing == 0
    });
    proxy.set_mode(Mode::Pass);
    workers.shutdown();
    let ran = seen(&key).len();
    assert!(
        ran >= TASKS,
        "{ran} runs of {TASKS} tasks: some were acknowledged without running"
    );
    assert!(
        proxy.counts().dropped_replies > 0,
        "the proxy dropped no reply"
    );
}
