//! Task status records, results, waiting, queue positions, statistics shared across
//! processes, the worker registry and health, against the real Redis server.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redisq::{fifo, Priority, TaskId, TaskStatus, Worker};
use redisq_test_support::{raw, redis_url, wait_until};
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

/// Keys whose tasks may finish, and how many times each key's tasks ran.
static ALLOWED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static RUNS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

fn allow(key: &str) {
    ALLOWED.lock().unwrap().push(key.to_owned());
}

fn ran(key: &str) -> u32 {
    RUNS.lock().unwrap().get(key).copied().unwrap_or(0)
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Report {
    key: String,
    doubled: u32,
}

/// Waits until its key is allowed, then returns a report.
#[fifo(queue = "status")]
fn held(key: String, value: u32) -> Result<Report, String> {
    *RUNS.lock().unwrap().entry(key.clone()).or_default() += 1;
    let deadline = Instant::now() + WAIT;
    while !ALLOWED.lock().unwrap().contains(&key) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(Report {
        key,
        doubled: value * 2,
    })
}

/// Fails on its first run, succeeds on the next.
#[fifo(queue = "status", retries = 2)]
fn fails_once(key: String) -> Result<u32, String> {
    let runs = {
        let mut all = RUNS.lock().unwrap();
        let runs = all.entry(key).or_default();
        *runs += 1;
        *runs
    };
    if runs == 1 {
        Err("first attempt fails".to_owned())
    } else {
        Ok(runs)
    }
}

#[fifo(queue = "status", retries = 0)]
fn always_fails(key: String) -> Result<(), String> {
    *RUNS.lock().unwrap().entry(key).or_default() += 1;
    Err("broken for good".to_owned())
}

#[fifo(queue = "status", store_result = false)]
fn fire_and_forget(key: String) {
    *RUNS.lock().unwrap().entry(key).or_default() += 1;
}

#[fifo(queue = "positions")]
fn positioned(n: u32) -> u32 {
    n
}

fn status(ns: &TestNs, id: &TaskId) -> Option<TaskStatus> {
    ns.backend.task(id).unwrap().map(|info| info.status)
}

/// The TTL of a task's record, in its queue's slot (`<ns>:{status}:task:<id>`).
fn ttl(ns: &TestNs, id: &TaskId) -> i64 {
    redis::cmd("TTL")
        .arg(ns.key("status", &format!("task:{id}")))
        .query(&mut raw())
        .unwrap()
}

#[test]
fn a_successful_task_goes_queued_processing_done_with_its_result() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let id = held::enqueue(&ns.backend, key.clone(), 21).unwrap();
    let info = ns.backend.task(&id).unwrap().unwrap();
    assert_eq!(info.status, TaskStatus::Queued);
    assert_eq!(
        (info.queue.as_str(), info.name.as_str()),
        ("status", "status::held")
    );
    assert_eq!(info.queue_position, Some(0));
    assert!(info.created_at > 0 && info.started_at.is_none());
    assert_eq!(ttl(&ns, &id), -1, "a queued record does not expire");
    assert_eq!(held::result(&ns.backend, &id).unwrap(), None);

    let workers = Worker::builder(ns.backend.clone())
        .queues(["status"])
        .start()
        .unwrap();
    wait_until(WAIT, "processing", || {
        status(&ns, &id) == Some(TaskStatus::Processing)
    });
    let info = ns.backend.task(&id).unwrap().unwrap();
    assert!(info.started_at.is_some());
    assert!(info.worker.as_deref().unwrap().starts_with(workers.id()));

    // `wait` with a short timeout returns the record as it is, not finished.
    let started = Instant::now();
    let waited = ns
        .backend
        .wait(&id, Duration::from_millis(300))
        .unwrap()
        .unwrap();
    assert_eq!(waited.status, TaskStatus::Processing);
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Blocking on Redis, `wait` returns as soon as the worker finishes it.
    let waiter = {
        let backend = ns.backend.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let info = backend.wait(&id, Duration::from_secs(20)).unwrap();
            (info, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    allow(&key);
    let (info, took) = waiter.join().unwrap();
    let info = info.unwrap();
    assert_eq!(info.status, TaskStatus::Done);
    assert!(
        took < Duration::from_secs(5),
        "wait returned after {took:?}"
    );
    assert_eq!(
        info.result,
        Some(serde_json::json!({"key": key, "doubled": 42}))
    );
    assert_eq!(info.attempts, 1);
    assert!(info.finished_at >= info.started_at);
    let typed: Option<Report> = held::result(&ns.backend, &id).unwrap();
    assert_eq!(
        typed,
        Some(Report {
            key: key.clone(),
            doubled: 42
        })
    );
    let left = ttl(&ns, &id);
    assert!(
        left > 3500 && left <= 3600,
        "a done record expires after an hour ({left})"
    );
    workers.shutdown();
}

#[test]
fn a_failed_attempt_shows_failed_then_done() {
    let ns = TestNs::new();
    let backend = ns
        .backend
        .clone()
        .with_retry_backoff(Duration::from_millis(1500), Duration::from_secs(3));
    let key = ns.name.clone();
    let id = fails_once::enqueue(&backend, key.clone()).unwrap();
    let workers = Worker::builder(backend.clone())
        .queues(["status"])
        .start()
        .unwrap();
    wait_until(WAIT, "the failed attempt", || {
        status(&ns, &id) == Some(TaskStatus::Failed)
    });
    let info = ns.backend.task(&id).unwrap().unwrap();
    assert_eq!(info.error.as_deref(), Some("first attempt fails"));
    assert_eq!(info.attempts, 1);
    let info = backend.wait(&id, Duration::from_secs(20)).unwrap().unwrap();
    assert_eq!(info.status, TaskStatus::Done);
    assert_eq!(info.attempts, 2);
    assert_eq!(fails_once::result(&backend, &id).unwrap(), Some(2));
    workers.shutdown();
}

#[test]
fn a_dead_task_shows_dead_with_its_error_and_a_longer_ttl() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let id = always_fails::enqueue(&ns.backend, key.clone()).unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["status"])
        .start()
        .unwrap();
    let info = ns
        .backend
        .wait(&id, Duration::from_secs(20))
        .unwrap()
        .unwrap();
    workers.shutdown();
    assert_eq!(info.status, TaskStatus::Dead);
    assert_eq!(
        info.error.as_deref(),
        Some("failed after 1 attempt(s): broken for good")
    );
    match always_fails::result(&ns.backend, &id) {
        Err(redisq::Error::TaskFailed { error, .. }) => assert!(error.contains("broken for good")),
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    assert!(
        ttl(&ns, &id) > 3600,
        "dead records are kept longer than done ones"
    );
}

#[test]
fn finished_records_expire_after_the_configured_ttl() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_result_ttl(Duration::from_secs(1));
    let key = ns.name.clone();
    allow(&key);
    let id = held::enqueue(&backend, key, 1).unwrap();
    let workers = Worker::builder(backend.clone())
        .queues(["status"])
        .start()
        .unwrap();
    let info = backend.wait(&id, Duration::from_secs(20)).unwrap().unwrap();
    assert_eq!(info.status, TaskStatus::Done);
    workers.shutdown();
    wait_until(Duration::from_secs(10), "the record to expire", || {
        ns.backend.task(&id).unwrap().is_none()
    });
    assert_eq!(
        ns.backend.wait(&id, Duration::from_millis(10)).unwrap(),
        None
    );
}

#[test]
fn fire_and_forget_tasks_keep_no_record() {
    let ns = TestNs::new();
    let key = ns.name.clone();
    let id = fire_and_forget::enqueue(&ns.backend, key.clone()).unwrap();
    assert!(ns.backend.task(&id).unwrap().is_none());
    let workers = Worker::builder(ns.backend.clone())
        .queues(["status"])
        .start()
        .unwrap();
    wait_until(WAIT, "the task to run", || ran(&key) == 1);
    workers.shutdown();
    assert!(ns.backend.task(&id).unwrap().is_none());
    assert!(
        ns.keys().iter().all(|k| !k.contains(":task:")),
        "no record key at all"
    );
}

#[test]
fn queued_tasks_know_their_position_and_estimated_wait() {
    let ns = TestNs::new();
    // Nothing observed yet: a position, and an estimate of 0.
    let ids = positioned::enqueue_many(&ns.backend, 0..10).unwrap();
    for (n, id) in ids.iter().enumerate() {
        let info = ns.backend.task(id).unwrap().unwrap();
        assert_eq!(info.queue_position, Some(n as u64));
        assert_eq!(info.estimated_wait_seconds, Some(0.0));
    }
    // A high-priority task goes before all of them, and they all move back one.
    let urgent = positioned::with(&ns.backend)
        .priority(Priority::High)
        .enqueue(99)
        .unwrap();
    assert_eq!(
        ns.backend.task(&urgent).unwrap().unwrap().queue_position,
        Some(0)
    );
    assert_eq!(
        ns.backend.task(&ids[0]).unwrap().unwrap().queue_position,
        Some(1)
    );

    // Once tasks ran, the rate gives an estimate; positions count what was taken.
    let workers = Worker::builder(ns.backend.clone())
        .queues(["positions"])
        .start()
        .unwrap();
    wait_until(WAIT, "every task to run", || {
        workers.counts().processed == 11
    });
    workers.shutdown();
    let later = positioned::enqueue_many(&ns.backend, 0..5).unwrap();
    let info = ns.backend.task(&later[3]).unwrap().unwrap();
    assert_eq!(info.queue_position, Some(3));
    let estimate = info
        .estimated_wait_seconds
        .expect("an estimate once a rate is measured");
    assert!(estimate > 0.0);
    assert!(
        ns.backend
            .task(&ids[0])
            .unwrap()
            .unwrap()
            .queue_position
            .is_none(),
        "done"
    );
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn stats_add_up_across_two_worker_processes_and_workers_beat() {
    let ns = TestNs::new();
    let tasks = redisq_tests::crash::record::enqueue_many(
        &ns.backend,
        (0..600).map(|n| (ns.name.clone(), n)),
    )
    .unwrap();
    assert_eq!(tasks.len(), 600);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_crash_worker"))
            .env("REDIS_URL", redis_url())
            .env("REDISQ_NS", &ns.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut children = Children(vec![spawn(), spawn()]);
    let done_key = redisq_tests::crash::done_key(&ns.name);
    wait_until(WAIT, "all 600 tasks", || {
        redis::cmd("SCARD")
            .arg(&done_key)
            .query::<u64>(&mut raw())
            .unwrap()
            == 600
    });
    wait_until(WAIT, "both workers in the registry", || {
        ns.backend
            .workers()
            .unwrap()
            .iter()
            .filter(|w| w.alive)
            .count()
            == 2
    });
    let workers = ns.backend.workers().unwrap();
    let pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    assert!(workers
        .iter()
        .all(|w| pids.contains(&w.pid) && w.threads == 2));
    assert!(workers.iter().all(|w| w.queues == ["crash"]));

    // Both processes' counts land in one place; the last settle of each may still be due.
    wait_until(WAIT, "the counts to add up", || {
        ns.backend.queue_stats("crash").unwrap().processed == 600
    });
    let stats = ns.backend.stats().unwrap();
    let crash = &stats.queue_stats["crash"];
    assert_eq!((crash.total_pending, crash.failed, crash.dead), (0, 0, 0));
    assert!(crash.throughput_per_second > 0.0);
    assert!(crash.last_processed.is_some());
    assert!(
        crash.run_ms.samples > 0 && crash.run_ms.p50 >= 1.0,
        "{:?}",
        crash.run_ms
    );
    assert!(crash.wait_ms.samples > 0);
    assert_eq!(stats.processor_stats.processed, 600);
    assert_eq!(stats.processor_stats.workers_alive, 2);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["queue_stats"]["crash"]["total_pending"], 0);
    assert_eq!(json["processor_stats"]["processed"], 600);
    assert_eq!(json["redis_connected"], true);

    // Killed, a worker stops beating and shows as gone after its lease (1 s).
    let mut first = children.0.remove(0);
    first.kill().unwrap();
    first.wait().unwrap();
    wait_until(WAIT, "the killed worker to show as gone", || {
        let workers = ns.backend.workers().unwrap();
        workers.len() == 2 && workers.iter().filter(|w| w.alive).count() == 1
    });
    drop(children);
}

#[test]
fn workers_silent_for_ten_leases_are_pruned() {
    let ns = TestNs::new();
    let stale = serde_json::json!({
        "id": "ghost", "host": "h", "pid": 1, "queues": ["q"], "threads": 1,
        "started_at": 1, "last_beat": 1, "in_flight": 0, "lease_ms": 1000, "alive": true
    });
    let _: () = redis::cmd("HSET")
        .arg(format!("{}:workers", ns.name))
        .arg("ghost")
        .arg(stale.to_string())
        .query(&mut raw())
        .unwrap();
    let workers = Worker::builder(ns.backend.clone())
        .queues(["status"])
        .start()
        .unwrap();
    // Nobody reads the registry: the live worker's heartbeat prunes it by itself.
    wait_until(
        WAIT,
        "the live worker's heartbeat to prune the stale entry",
        || {
            !redis::cmd("HEXISTS")
                .arg(format!("{}:workers", ns.name))
                .arg("ghost")
                .query::<bool>(&mut raw())
                .unwrap()
        },
    );
    let listed = ns.backend.workers().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, workers.id());
    assert!(listed[0].alive);
    workers.shutdown();
    assert!(
        ns.backend.workers().unwrap().is_empty(),
        "a worker leaves at shutdown"
    );
}

#[test]
fn health_reports_a_reachable_server_and_an_unreachable_one() {
    let ns = TestNs::new();
    let health = ns.backend.health().unwrap();
    assert!(health.reachable);
    assert!(health.version.unwrap().starts_with(char::is_numeric));
    assert!(health.used_memory.unwrap() > 0);
    let down = redisq::RedisQueueBackend::new("redis://127.0.0.1:1")
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let health = down.health().unwrap();
    assert!(!health.reachable);
    assert!(health.error.is_some());
}
