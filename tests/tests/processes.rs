//! Faults that take other processes: a task that kills its worker (quarantined after
//! three deliveries), a worker killed holding tasks of several lanes (they go back to
//! their own lanes, in order), a worker stopped for longer than its lease (fenced: it
//! records nothing of the tasks that went back), and a producer whose clock is an hour
//! off (due times follow the Redis server's clock).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use redisq::{Priority, TaskStatus, Worker};
use redisq_test_support::{raw, redis_url, wait_until};
use redisq_tests::crash::{abort, done_key, hold_batch, mark, order_key, record, release_key};
use support::{TestNs, WorkerProcess};

const WAIT: Duration = Duration::from_secs(60);

fn order(ns: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(order_key(ns))
        .arg(0)
        .arg(-1)
        .query(&mut raw())
        .unwrap()
}

/// The tags of the payloads in a lane of queue `procs-batch`, head first.
fn lane(ns: &TestNs, suffix: &str) -> Vec<String> {
    let payloads: Vec<String> = redis::cmd("LRANGE")
        .arg(ns.key("procs-batch", suffix))
        .arg(0)
        .arg(-1)
        .query(&mut raw())
        .unwrap();
    payloads
        .iter()
        .map(|p| {
            let task: serde_json::Value = serde_json::from_str(p).unwrap();
            task["args"][0][1].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn a_task_that_kills_its_worker_is_quarantined_after_three_deliveries() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(Duration::from_millis(300));
    abort::enqueue(&backend, ns.name.clone()).unwrap();
    let after = mark::enqueue(&backend, ns.name.clone(), "after".to_owned(), false).unwrap();
    // Each worker dies running the poison task; the next recovers it once its lease ran
    // out, claims it alone, and dies again, until it is set aside.
    let deadline = Instant::now() + WAIT;
    let mut worker = WorkerProcess::spawn(&ns.name, "procs", Duration::from_millis(300));
    let mut spawned = 1;
    while backend.dead_count("procs").unwrap() == 0 {
        assert!(
            Instant::now() < deadline,
            "never quarantined after {spawned} workers"
        );
        if worker.exited() {
            worker = WorkerProcess::spawn(&ns.name, "procs", Duration::from_millis(300));
            spawned += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = backend.wait(&after, WAIT).unwrap().unwrap();
    assert_eq!(
        done.status,
        TaskStatus::Done,
        "the task behind it runs: {done:?}"
    );
    drop(worker);
    let starts = order(&ns.name)
        .iter()
        .filter(|t| *t == "start:abort")
        .count();
    assert_eq!(starts, 3, "it ran three times, then never again");
    let letters = ns.dead("procs");
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]
            .reason
            .starts_with("worker died 3 times running it"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].name.as_deref(), Some(abort::NAME));
}

#[test]
fn a_killed_worker_s_tasks_go_back_to_their_own_lanes_in_order() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(Duration::from_millis(300));
    let item = |tag: &str| (ns.name.clone(), tag.to_owned());
    let tagged = |lane: Priority, tags: &[&str]| {
        hold_batch::with(&backend)
            .priority(lane)
            .enqueue_many(tags.iter().map(|t| item(t)))
            .unwrap()
    };
    let high = tagged(Priority::High, &["h1", "h2"]);
    let normal = tagged(Priority::Normal, &["n1", "n2"]);
    let low = tagged(Priority::Low, &["l1"]);
    // Queued behind them, in each lane.
    tagged(Priority::High, &["h3"]);
    tagged(Priority::Normal, &["n3"]);

    let mut worker = WorkerProcess::spawn(&ns.name, "procs-batch", Duration::from_millis(300));
    wait_until(WAIT, "the worker to take a batch", || {
        !order(&ns.name).is_empty()
    });
    worker.signal("KILL");
    wait_until(WAIT, "the worker to die", || worker.exited());
    let taken: Vec<String> = order(&ns.name);
    let expected: Vec<String> = ["h1", "h2", "h3", "n1", "n2", "n3", "l1"]
        .iter()
        .take(taken.len())
        .map(|t| format!("start:{t}"))
        .collect();
    assert_eq!(taken, expected, "one batch, high lane first");
    assert_eq!(taken.len(), 7, "the batch took every task");

    // Its lease runs out; recovery puts each task back at the head of its own lane.
    wait_until(
        WAIT,
        "the lease to run out and the tasks to go back",
        || backend.recover_stale("procs-batch").unwrap() > 0,
    );
    assert_eq!(lane(&ns, "pending:high"), ["h1", "h2", "h3"]);
    assert_eq!(lane(&ns, "pending"), ["n1", "n2", "n3"]);
    assert_eq!(lane(&ns, "pending:low"), ["l1"]);
    // With their exact places.
    for (id, position) in high
        .iter()
        .zip(0..)
        .chain(normal.iter().zip(3..))
        .chain(low.iter().zip(6..))
    {
        let info = backend.task(id).unwrap().unwrap();
        assert_eq!(info.status, TaskStatus::Queued, "{info:?}");
        assert_eq!(info.queue_position, Some(position), "{info:?}");
    }
    let _: () = redis::cmd("SET")
        .arg(release_key(&ns.name))
        .arg(1)
        .query(&mut raw())
        .unwrap();
}

#[test]
fn a_worker_stopped_past_its_lease_records_nothing_of_the_tasks_that_went_back() {
    const TASKS: u64 = 2_000;
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(Duration::from_millis(500));
    record::enqueue_many(&backend, (0..TASKS).map(|n| (ns.name.clone(), n))).unwrap();
    let stopped = WorkerProcess::spawn(&ns.name, "crash", Duration::from_millis(500));
    let done = || -> u64 {
        redis::cmd("SCARD")
            .arg(done_key(&ns.name))
            .query(&mut raw())
            .unwrap()
    };
    wait_until(WAIT, "the first worker to be under way", || done() >= 100);
    stopped.signal("STOP");
    // Its lease runs out; another worker recovers what it held and runs everything.
    let other = Worker::builder(backend.clone())
        .queues(["crash"])
        .start()
        .unwrap();
    wait_until(WAIT, "every task to run", || done() == TASKS);
    wait_until(WAIT, "every task to be acknowledged", || {
        backend.queue_stats("crash").unwrap().processed >= TASKS
    });
    stopped.signal("CONT");
    // The stopped worker wakes with finished tasks to settle: refused, they went back.
    // A window for its late settles, which must not land.
    let window = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < window {
        let processed = backend.queue_stats("crash").unwrap().processed;
        assert_eq!(processed, TASKS, "a stale settle was recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    other.shutdown();
}

#[test]
fn a_delay_follows_the_redis_clock_whatever_the_producer_s_clock_says() {
    let ns = TestNs::new();
    // A producer whose clock runs an hour ahead of this machine's and Redis's.
    let queued = Instant::now();
    let out = Command::new("faketime")
        .arg("-f")
        .arg("+3600s")
        .arg(env!("CARGO_BIN_EXE_enqueue_later"))
        .env("REDIS_URL", redis_url())
        .env("REDISQ_NS", &ns.name)
        .env("DELAY_MS", "2000")
        .output()
        .expect("faketime runs (scripts/ensure-redis.sh installs Debian's faketime)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = redisq::TaskId::from(String::from_utf8(out.stdout).unwrap().trim());
    let workers = Worker::builder(ns.backend.clone())
        .queues(["procs"])
        .start()
        .unwrap();
    let info = ns
        .backend
        .wait(&id, Duration::from_secs(20))
        .unwrap()
        .unwrap();
    assert_eq!(
        info.status,
        TaskStatus::Done,
        "due 2 s after it was sent: {info:?}"
    );
    let took = queued.elapsed();
    assert!(
        took >= Duration::from_millis(1_800),
        "it ran after {took:?}, before it was due"
    );
    workers.shutdown();
}
