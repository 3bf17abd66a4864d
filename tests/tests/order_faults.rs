//! Order across processes that fail: a worker killed while it holds a key (the key is
//! released when its lease runs out, its task first again), and a worker stopped past its
//! lease while it owns an ordered queue (another takes over, in order; the stopped one,
//! woken, takes nothing more).

mod support;

use std::time::Duration;

use redisq::Worker;
use redisq_test_support::{raw, wait_until};
use redisq_tests::crash::{keyed, order_key, ordered, release_key};
use support::{TestNs, WorkerProcess};

const WAIT: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_millis(400);

/// The order list: `start|done:<key>:<tag>:<pid>` events in the order they happened.
fn events(ns: &str) -> Vec<(String, String, String, String)> {
    let events: Vec<String> = redis::cmd("LRANGE")
        .arg(order_key(ns))
        .arg(0)
        .arg(-1)
        .query(&mut raw())
        .unwrap();
    events
        .iter()
        .map(|e| {
            let mut parts = e.splitn(4, ':').map(str::to_owned);
            let mut next = || parts.next().unwrap_or_default();
            (next(), next(), next(), next())
        })
        .collect()
}

/// The tags of `key` in the order of their first start.
fn first_starts(ns: &str, key: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for (event, k, tag, _) in events(ns) {
        if event == "start" && k == key && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

fn release(ns: &str) {
    let _: () = redis::cmd("SET")
        .arg(release_key(ns))
        .arg(1)
        .query(&mut raw())
        .unwrap();
}

fn started(ns: &str, key: &str, tag: &str) -> bool {
    events(ns)
        .iter()
        .any(|(e, k, t, _)| e == "start" && k == key && t == tag)
}

#[test]
fn a_killed_worker_s_key_is_released_with_its_task_first_again() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(LEASE);
    let task = |key: &str, tag: &str, hold: bool| {
        keyed::enqueue(&backend, ns.name.clone(), key.into(), tag.into(), hold).unwrap()
    };
    task("a", "a1", true);
    task("b", "b1", false);
    for n in 2..6 {
        task("a", &format!("a{n}"), false);
        task("b", &format!("b{n}"), false);
    }
    let worker = WorkerProcess::spawn(&ns.name, "procs-keyed", LEASE);
    wait_until(WAIT, "the worker to run a1", || {
        started(&ns.name, "a", "a1")
    });
    worker.signal("KILL");
    drop(worker);
    // Another worker: b goes on at once; a waits for the dead worker's lease, then a1
    // runs first again.
    release(&ns.name);
    let other = Worker::builder(backend.clone())
        .queues(["procs-keyed"])
        .threads("procs-keyed", 2)
        .start()
        .unwrap();
    wait_until(WAIT, "every task to run", || {
        started(&ns.name, "a", "a5") && started(&ns.name, "b", "b5")
    });
    other.shutdown();
    let tags = |prefix: &str| (1..6).map(|n| format!("{prefix}{n}")).collect::<Vec<_>>();
    assert_eq!(first_starts(&ns.name, "a"), tags("a"));
    assert_eq!(first_starts(&ns.name, "b"), tags("b"));
    let log = events(&ns.name);
    let a1_again = log
        .iter()
        .filter(|(e, k, t, _)| e == "start" && k == "a" && t == "a1")
        .count();
    assert_eq!(a1_again, 2, "a1 ran again after the crash: {log:?}");
    let second_a1 = log
        .iter()
        .rposition(|(e, _, t, _)| e == "start" && t == "a1")
        .unwrap();
    let a2 = log
        .iter()
        .position(|(e, _, t, _)| e == "start" && t == "a2")
        .unwrap();
    assert!(second_a1 < a2, "a2 overtook a1's second run: {log:?}");
    let queue = backend.queue_stats("procs-keyed").unwrap();
    assert_eq!((queue.keyed, queue.keys), (0, 0), "{queue:?}");
}

#[test]
fn a_stopped_owner_of_an_ordered_queue_is_taken_over_in_order_and_takes_nothing_after() {
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(LEASE);
    ordered::enqueue(&backend, ns.name.clone(), "o0".into(), true).unwrap();
    for n in 1..30 {
        ordered::enqueue(&backend, ns.name.clone(), format!("o{n}"), false).unwrap();
    }
    let stopped = WorkerProcess::spawn(&ns.name, "procs-ordered", LEASE);
    wait_until(WAIT, "the owner to run o0", || {
        started(&ns.name, "ordered", "o0")
    });
    stopped.signal("STOP");
    release(&ns.name);
    let other = Worker::builder(backend.clone())
        .queues(["procs-ordered"])
        .start()
        .unwrap();
    wait_until(WAIT, "the new owner to run o10", || {
        started(&ns.name, "ordered", "o10")
    });
    stopped.signal("CONT");
    for n in 30..60 {
        ordered::enqueue(&backend, ns.name.clone(), format!("o{n}"), false).unwrap();
    }
    wait_until(WAIT, "every task to run", || {
        started(&ns.name, "ordered", "o59")
    });
    other.shutdown();
    let expected: Vec<String> = (0..60).map(|n| format!("o{n}")).collect();
    assert_eq!(first_starts(&ns.name, "ordered"), expected);
    // The stopped owner finished o0 when it woke, and started nothing else.
    let by_stopped: Vec<String> = events(&ns.name)
        .into_iter()
        .filter(|(e, _, _, pid)| e == "start" && *pid == stopped.pid())
        .map(|(_, _, tag, _)| tag)
        .collect();
    assert_eq!(by_stopped, ["o0"]);
    // One run at a time: every start follows the previous task's done, but for o0,
    // which the new owner ran while the stopped one was frozen in it.
    let mut running: Option<String> = None;
    for (event, _, tag, pid) in events(&ns.name) {
        if pid == stopped.pid() {
            continue;
        }
        match event.as_str() {
            "start" => assert!(running.replace(tag.clone()).is_none(), "{tag} overlapped"),
            _ => assert_eq!(running.take().as_deref(), Some(tag.as_str())),
        }
    }
}

#[test]
fn a_worker_woken_past_its_lease_starts_none_of_the_tasks_it_had_taken() {
    // Long enough that x1 is not yet running past its lease when the worker is stopped
    // (then the heartbeat would hand back x2..x5 itself).
    const LEASE: Duration = Duration::from_millis(1_500);
    let ns = TestNs::new();
    let backend = ns.backend.clone().with_lease(LEASE);
    let task = |key: &str, hold: bool| {
        keyed::enqueue(&backend, ns.name.clone(), key.into(), key.into(), hold).unwrap()
    };
    let stopped = WorkerProcess::spawn(&ns.name, "procs-keyed", LEASE);
    // Quick tasks first, so that its prefetch grows past one.
    for n in 0..50 {
        task(&format!("w{n}"), false);
    }
    wait_until(WAIT, "the quick tasks to run", || {
        started(&ns.name, "w49", "w49")
    });
    // One push, so that one claim takes every key: x1 holds the worker.
    let item = |key: &str, hold: bool| (ns.name.clone(), key.to_owned(), key.to_owned(), hold);
    let items = [
        ("x1", true),
        ("x2", false),
        ("x3", false),
        ("x4", false),
        ("x5", false),
    ];
    keyed::enqueue_many(&backend, items.map(|(k, hold)| item(k, hold))).unwrap();
    wait_until(WAIT, "the worker to run x1", || {
        started(&ns.name, "x1", "x1")
    });
    let held = backend.queue_stats("procs-keyed").unwrap().processing;
    assert_eq!(held, 5, "it holds x2..x5 too");
    // Frozen past its lease, its tasks go to another worker, which runs them all.
    stopped.signal("STOP");
    release(&ns.name);
    let other = Worker::builder(backend.clone())
        .queues(["procs-keyed"])
        .start()
        .unwrap();
    wait_until(WAIT, "the other worker to run x5", || {
        started(&ns.name, "x5", "x5")
    });
    other.shutdown();
    stopped.signal("CONT");
    // The woken worker, alone now, finishes x1, then must find its lease gone before it
    // starts anything else: the next task it starts is this one.
    task("x9", false);
    wait_until(WAIT, "the woken worker to run x9", || {
        started(&ns.name, "x9", "x9")
    });
    let by_stopped: Vec<String> = events(&ns.name)
        .into_iter()
        .filter(|(e, k, _, pid)| e == "start" && *pid == stopped.pid() && k.starts_with('x'))
        .map(|(_, key, _, _)| key)
        .collect();
    assert_eq!(
        by_stopped,
        ["x1", "x9"],
        "it ran tasks that had gone to another worker"
    );
}
