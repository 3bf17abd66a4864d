//! Failure handling against the real Redis server: retries with backoff, delayed tasks,
//! dead letters (list, requeue, purge, retention), shutdown with tasks in flight, and the
//! recovery of tasks whose lease ran out.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use redisq::{fifo, Worker};
use redisq_test_support::{raw, wait_until};
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

/// When each test's tasks ran, by the test's own key.
static RUNS: Mutex<BTreeMap<String, Vec<Instant>>> = Mutex::new(BTreeMap::new());
/// Keys whose tasks may succeed now.
static ALLOWED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn runs(key: &str) -> Vec<Instant> {
    RUNS.lock().unwrap().get(key).cloned().unwrap_or_default()
}

fn ran(key: &str) {
    RUNS.lock()
        .unwrap()
        .entry(key.to_owned())
        .or_default()
        .push(Instant::now());
}

fn allow(key: &str) {
    ALLOWED.lock().unwrap().push(key.to_owned());
}

fn allowed(key: &str) -> bool {
    ALLOWED.lock().unwrap().iter().any(|k| k == key)
}

/// Fails until it has run `failures` times for `key`.
#[fifo(queue = "flaky", retries = 3)]
fn flaky(key: String, failures: usize) -> Result<(), String> {
    ran(&key);
    if runs(&key).len() <= failures {
        return Err(format!("failure {}", runs(&key).len()));
    }
    Ok(())
}

#[fifo(queue = "flaky", retries = 2)]
fn always_fails(key: String) -> Result<(), String> {
    ran(&key);
    Err("still broken".to_owned())
}

/// Fails (into the dead letters at once) until its key is allowed.
#[fifo(queue = "gate", retries = 0)]
fn gated(key: String) -> Result<(), String> {
    ran(&key);
    if allowed(&key) {
        Ok(())
    } else {
        Err("not yet".to_owned())
    }
}

/// Keys whose `hold` task has returned.
static FINISHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Blocks until its key is allowed (or 30 s pass).
#[fifo(queue = "hold")]
fn hold(key: String) {
    ran(&key);
    let deadline = Instant::now() + WAIT;
    while !allowed(&key) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    FINISHED.lock().unwrap().push(key);
}

#[fifo(queue = "hold")]
fn quick(key: String) {
    ran(&key);
}

#[fifo(queue = "later")]
fn later(key: String) {
    ran(&key);
}

#[test]
fn failed_tasks_are_retried_with_exponential_backoff() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::from_millis(200), Duration::from_secs(2));
    let key = ns.name.clone();
    flaky::enqueue(&backend, key.clone(), 2).unwrap();
    let workers = Worker::builder(backend).queues(["flaky"]).start().unwrap();
    wait_until(WAIT, "the third attempt to succeed", || {
        workers.counts().processed == 1
    });
    let counts = workers.counts();
    workers.shutdown();
    assert_eq!((counts.failed, counts.retried, counts.dead), (2, 2, 0));
    let times = runs(&key);
    assert_eq!(times.len(), 3);
    // Retry n waits between half and all of 200 ms · 2^(n-1), plus up to one block
    // timeout (200 ms in tests) before a consumer moves it from the scheduled set.
    let first = times[1] - times[0];
    let second = times[2] - times[1];
    assert!(
        first >= Duration::from_millis(100),
        "first retry after {first:?}"
    );
    assert!(
        second >= Duration::from_millis(200),
        "second retry after {second:?}"
    );
    assert!(
        first < Duration::from_millis(1500),
        "first retry after {first:?}"
    );
    assert!(
        second < Duration::from_millis(1500),
        "second retry after {second:?}"
    );
    assert_eq!(ns.backend.scheduled("flaky").unwrap(), 0);
    assert_eq!(ns.backend.dead_count("flaky").unwrap(), 0);
}

#[test]
fn a_task_out_of_retries_is_a_dead_letter_with_every_error() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(20));
    let key = ns.name.clone();
    let id = always_fails::enqueue(&backend, key.clone()).unwrap();
    let workers = Worker::builder(backend).queues(["flaky"]).start().unwrap();
    wait_until(WAIT, "the dead letter", || {
        ns.backend.dead_count("flaky").unwrap() == 1
    });
    workers.shutdown();
    assert_eq!(runs(&key).len(), 3, "one attempt and two retries");

    let dead = ns.backend.dead_letters("flaky", 0, 10).unwrap();
    let letter = &dead[0];
    assert_eq!(letter.id, id.as_str());
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.reason, "failed after 3 attempt(s): still broken");
    assert_eq!(letter.name.as_deref(), Some("reliability::always_fails"));
    let payload: serde_json::Value = serde_json::from_str(&letter.payload).unwrap();
    assert_eq!(payload["attempts"], 3);
    let errors = payload["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|e| e["error"] == "still broken"));
    assert_eq!(errors[2]["attempt"], 3);
}

#[test]
fn delayed_tasks_wait_in_the_scheduled_set_until_due() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let past_key = format!("{key}-past");
    let enqueued = Instant::now();
    later::enqueue_in(&ns.backend, Duration::from_millis(800), key.clone()).unwrap();
    later::enqueue_at(
        &ns.backend,
        SystemTime::now() - Duration::from_secs(5),
        past_key.clone(),
    )
    .unwrap();
    assert_eq!(ns.backend.scheduled("later").unwrap(), 2);
    assert_eq!(ns.backend.pending("later").unwrap(), 0);

    let workers = Worker::builder(ns.backend.clone())
        .queues(["later"])
        .start()
        .unwrap();
    wait_until(WAIT, "the overdue task", || runs(&past_key).len() == 1);
    assert!(runs(&key).is_empty() || runs(&key)[0] - enqueued >= Duration::from_millis(790));
    wait_until(WAIT, "the delayed task", || runs(&key).len() == 1);
    workers.shutdown();
    let waited = runs(&key)[0] - enqueued;
    assert!(waited >= Duration::from_millis(790), "ran after {waited:?}");
    assert!(waited < Duration::from_secs(3), "ran after {waited:?}");
    assert_eq!(ns.backend.scheduled("later").unwrap(), 0);
}

#[test]
fn dead_letters_can_be_listed_requeued_and_purged() {
    let ns = TestNs::new();
    let keys: Vec<String> = (0..5).map(|n| format!("{}-{n}", ns.name)).collect();
    let mut ids = Vec::new();
    for key in &keys {
        ids.push(gated::enqueue(&ns.backend, key.clone()).unwrap());
    }
    let workers = Worker::builder(ns.backend.clone())
        .queues(["gate"])
        .threads("gate", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "five dead letters", || {
        ns.backend.dead_count("gate").unwrap() == 5
    });

    // Paged, newest first.
    let first = ns.backend.dead_letters("gate", 0, 2).unwrap();
    let second = ns.backend.dead_letters("gate", 2, 2).unwrap();
    let third = ns.backend.dead_letters("gate", 4, 2).unwrap();
    let pages: Vec<&redisq::DeadLetter> = first.iter().chain(&second).chain(&third).collect();
    assert!(
        pages.windows(2).all(|w| w[0].failed_at >= w[1].failed_at),
        "newest first"
    );
    let mut listed: Vec<&str> = pages.iter().map(|d| d.id.as_str()).collect();
    let mut expected: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected, "each dead letter on exactly one page");
    assert!(ns.backend.dead_letters("gate", 5, 2).unwrap().is_empty());

    // Requeue one: it runs again, with its attempts reset.
    allow(&keys[0]);
    assert!(ns.backend.requeue_dead("gate", ids[0].as_str()).unwrap());
    assert!(
        !ns.backend.requeue_dead("gate", ids[0].as_str()).unwrap(),
        "only once"
    );
    assert!(!ns.backend.requeue_dead("gate", "no-such-id").unwrap());
    wait_until(WAIT, "the requeued task to succeed", || {
        workers.counts().processed == 1
    });
    assert_eq!(ns.backend.dead_count("gate").unwrap(), 4);

    // Requeue all: two now succeed, two die again.
    allow(&keys[1]);
    allow(&keys[2]);
    assert_eq!(ns.backend.requeue_all_dead("gate").unwrap(), 4);
    wait_until(WAIT, "the requeued tasks to run", || {
        workers.counts().processed == 3 && ns.backend.dead_count("gate").unwrap() == 2
    });
    let again = ns.backend.dead_letters("gate", 0, 10).unwrap();
    assert!(again.iter().all(|d| d.attempts == 1), "attempts were reset");
    assert_eq!(runs(&keys[3]).len(), 2);

    assert_eq!(ns.backend.purge_dead("gate").unwrap(), 2);
    assert_eq!(ns.backend.dead_count("gate").unwrap(), 0);
    workers.shutdown();
}

#[test]
fn dead_letters_are_bounded_by_count() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_dead_letter_limit(3);
    for n in 0..6 {
        ns.rpush(
            "gate",
            &format!(r#"{{"id":"d{n}","name":"nobody::knows"}}"#),
        );
    }
    let workers = Worker::builder(backend)
        .queues(["gate"])
        .threads("gate", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "all six to be dead-lettered", || {
        workers.counts().dead == 6
    });
    workers.shutdown();
    let ids: Vec<String> = ns.dead("gate").into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["d3", "d4", "d5"], "the newest three are kept");
}

#[test]
fn shutdown_finishes_the_running_task_and_hands_back_the_unstarted() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let quick_key = format!("{key}-quick");
    // Quick tasks grow the prefetch, so the held task is claimed with others behind it.
    for _ in 0..200 {
        quick::enqueue(&ns.backend, quick_key.clone()).unwrap();
    }
    hold::enqueue(&ns.backend, key.clone()).unwrap();
    for _ in 0..200 {
        quick::enqueue(&ns.backend, quick_key.clone()).unwrap();
    }
    let workers = Worker::builder(ns.backend.clone())
        .queues(["hold"])
        .threads("hold", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "the held task to start", || runs(&key).len() == 1);
    let claimed_key = ns.key("hold", &format!("claimed:{}-0", workers.id()));
    let claimed: usize = redis::cmd("LLEN")
        .arg(&claimed_key)
        .query(&mut raw())
        .unwrap();
    assert!(
        claimed > 1,
        "the held task was claimed with {claimed} task(s) in all"
    );

    let stopper = std::thread::spawn(move || workers.shutdown());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !stopper.is_finished(),
        "shutdown waits for the running task"
    );
    allow(&key);
    stopper.join().unwrap();

    let ran = runs(&quick_key).len();
    let pending = ns.llen("hold", "pending");
    assert_eq!(
        ran + pending,
        400,
        "every quick task ran or is back in the queue"
    );
    assert!(
        pending >= claimed - 1,
        "unstarted claimed tasks are back ({pending})"
    );
    assert_eq!(ns.llen("hold", &format!("claimed:{}-0", "x")), 0);
    let leftover: usize = redis::cmd("LLEN")
        .arg(&claimed_key)
        .query(&mut raw())
        .unwrap();
    assert_eq!(leftover, 0);
    let leases: usize = redis::cmd("ZCARD")
        .arg(ns.key("hold", "leases"))
        .query(&mut raw())
        .unwrap();
    assert_eq!(leases, 0, "leases are dropped at shutdown");
}

#[test]
fn shutdown_deadline_hands_back_the_leases_of_busy_threads() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let id = hold::enqueue(&ns.backend, key.clone()).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["hold"])
        .threads("hold", 1)
        .start()
        .unwrap();
    wait_until(WAIT, "the held task to start", || runs(&key).len() == 1);
    assert_eq!(ns.llen("hold", "pending"), 0);

    let started = Instant::now();
    assert!(!workers.shutdown_timeout(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Handed back at once, not after the lease (30 s).
    let pending: Vec<String> = redis::cmd("LRANGE")
        .arg(ns.key("hold", "pending"))
        .arg(0)
        .arg(-1)
        .query(&mut raw())
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].contains(id.as_str()));
    let back = ns.backend.task(&id).unwrap().unwrap();
    assert_eq!(back.status, redisq::TaskStatus::Queued, "{back:?}");

    // The detached thread finishes its task; its settle is refused (its lease was handed
    // back), so the only result recorded is that of the worker that runs the task again.
    allow(&key);
    wait_until(WAIT, "the detached thread's task to return", || {
        FINISHED.lock().unwrap().contains(&key)
    });
    let again = Worker::builder(ns.backend.clone())
        .queues(["hold"])
        .start()
        .unwrap();
    let done = ns.backend.wait(&id, WAIT).unwrap().unwrap();
    assert_eq!(done.status, redisq::TaskStatus::Done);
    assert!(
        done.worker
            .as_deref()
            .is_some_and(|w| w.starts_with(again.id())),
        "{done:?}"
    );
    // A window for a late settle of the detached thread, which must not land.
    let window = Instant::now() + Duration::from_millis(500);
    while Instant::now() < window {
        assert_eq!(ns.backend.queue_stats("hold").unwrap().processed, 1);
        std::thread::sleep(Duration::from_millis(20));
    }
    again.shutdown();
}

#[test]
fn expired_leases_are_recovered_to_the_head_of_the_queue_in_order() {
    let ns = TestNs::new();
    let mut con = raw();
    let _: () = redis::cmd("RPUSH")
        .arg(ns.key("later", "pending"))
        .arg("c")
        .query(&mut con)
        .unwrap();
    // A consumer that died holding two tasks, its lease long past.
    let _: () = redis::cmd("RPUSH")
        .arg(ns.key("later", "claimed:ghost"))
        .arg("a")
        .arg("b")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(ns.key("later", "leases"))
        .arg(1)
        .arg("ghost")
        .query(&mut con)
        .unwrap();
    // And a live one, whose lease is current: untouched.
    let _: () = redis::cmd("RPUSH")
        .arg(ns.key("later", "claimed:alive"))
        .arg("z")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(ns.key("later", "leases"))
        .arg(u64::MAX / 2)
        .arg("alive")
        .query(&mut con)
        .unwrap();

    assert_eq!(ns.backend.recover_stale("later").unwrap(), 2);
    let pending: Vec<String> = redis::cmd("LRANGE")
        .arg(ns.key("later", "pending"))
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(pending, ["a", "b", "c"]);
    assert_eq!(ns.llen("later", "claimed:alive"), 1);
    assert_eq!(ns.backend.recover_stale("later").unwrap(), 0);
}

#[test]
fn a_worker_recovers_expired_leases_of_queues_nobody_serves() {
    let ns = TestNs::new();
    let mut con = raw();
    // A dead consumer's tasks on a queue no live worker serves, the queue known.
    let _: () = redis::cmd("RPUSH")
        .arg(ns.key("orphan", "claimed:ghost"))
        .arg("a")
        .arg("b")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(ns.key("orphan", "leases"))
        .arg(1)
        .arg("ghost")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(format!("{}:queues", ns.name))
        .arg("orphan")
        .query(&mut con)
        .unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["later"])
        .start()
        .unwrap();
    wait_until(WAIT, "a worker of another queue to hand them back", || {
        ns.llen("orphan", "pending") == 2
    });
    assert_eq!(ns.llen("orphan", "claimed:ghost"), 0);
    workers.shutdown();
}

#[test]
fn a_running_worker_recovers_a_dead_consumer_s_tasks_by_itself() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(Duration::from_millis(600));
    let key = ns.name.clone();
    // A task held by a consumer that died: its lease has run out.
    let id = later::enqueue(&backend, key.clone()).unwrap();
    let mut con = raw();
    let _: () = redis::cmd("LMOVE")
        .arg(ns.key("later", "pending"))
        .arg(ns.key("later", "claimed:dead-consumer"))
        .arg("LEFT")
        .arg("RIGHT")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(ns.key("later", "leases"))
        .arg(1)
        .arg("dead-consumer")
        .query(&mut con)
        .unwrap();
    let workers = Worker::builder(backend).queues(["later"]).start().unwrap();
    wait_until(WAIT, "the recovered task to run", || runs(&key).len() == 1);
    workers.shutdown();
    assert_eq!(ns.llen("later", "claimed:dead-consumer"), 0);
    let _ = id;
}
