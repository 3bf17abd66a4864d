//! Redis Cluster faults, each test on a cluster of its own (`scripts/redis-cluster.sh`:
//! three masters, three replicas, on free loopback ports): a master SIGKILLed mid-run
//! (its replica takes over), and the queue's slot migrated to another master mid-run.
//! Each checks the history: every task whose enqueue was acknowledged ran, and nothing
//! ran that was never enqueued. The core, reliability, priority and batch suites run on
//! a cluster too, from `scripts/test.sh`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use redisq::{fifo, Partitions, Worker};
use redisq_test_support::{init_logging, wait_until, Namespace, RedisCluster};

/// What ran, by the test's own namespace: task numbers, duplicates included.
static RAN: Mutex<Option<HashMap<String, Vec<u64>>>> = Mutex::new(None);

fn ran(ns: &str) -> Vec<u64> {
    RAN.lock()
        .unwrap()
        .as_ref()
        .and_then(|ran| ran.get(ns).cloned())
        .unwrap_or_default()
}

#[fifo(queue = "failover")]
fn on_failover(ns: String, n: u64) {
    RAN.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(ns)
        .or_default()
        .push(n);
}

#[fifo(queue = "reshard")]
fn on_reshard(ns: String, n: u64) {
    RAN.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(ns)
        .or_default()
        .push(n);
}

/// The partitioned queue `parts-0` … `parts-7`.
static PARTS: Partitions = Partitions::new("parts", 8);

/// Runs on the partitions: (user or "", number, the queue it ran on).
type PartRuns = Vec<(String, u64, String)>;

/// What ran on the partitions, by namespace.
static PART_RAN: Mutex<Option<HashMap<String, PartRuns>>> = Mutex::new(None);

fn part_ran(ns: &str) -> PartRuns {
    PART_RAN
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|ran| ran.get(ns).cloned())
        .unwrap_or_default()
}

fn record_part(ns: String, user: String, n: u64) {
    let queue = redisq::TaskContext::current()
        .map(|c| c.queue.clone())
        .unwrap_or_default();
    PART_RAN
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(ns)
        .or_default()
        .push((user, n, queue));
}

#[fifo(queue = "parts", key = "user")]
fn per_user(ns: String, user: String, n: u64) {
    record_part(ns, user, n);
}

#[fifo(queue = "parts")]
fn spread(ns: String, n: u64) {
    record_part(ns, String::new(), n);
}

/// What a producer was told of each enqueue.
#[derive(Default)]
struct History {
    acknowledged: BTreeSet<u64>,
    failed: BTreeSet<u64>,
}

/// Enqueues task after task with `enqueue` until `stop`, recording each answer.
fn produce(
    stop: Arc<AtomicBool>,
    enqueue: impl Fn(u64) -> redisq::Result<redisq::TaskId> + Send + 'static,
) -> thread::JoinHandle<History> {
    thread::spawn(move || {
        let mut history = History::default();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            match enqueue(n) {
                Ok(_) => history.acknowledged.insert(n),
                Err(_) => history.failed.insert(n),
            };
            n += 1;
            thread::sleep(Duration::from_millis(1));
        }
        history
    })
}

/// Every acknowledged task ran (within the deadline), and nothing ran that was not
/// enqueued.
fn check(ns: &str, history: &History) {
    wait_until(
        Duration::from_secs(60),
        "every acknowledged task ran",
        || {
            let ran: BTreeSet<u64> = ran(ns).into_iter().collect();
            history.acknowledged.is_subset(&ran)
        },
    );
    let ran: BTreeSet<u64> = ran(ns).into_iter().collect();
    let enqueued: BTreeSet<u64> = history
        .acknowledged
        .union(&history.failed)
        .copied()
        .collect();
    assert!(
        ran.is_subset(&enqueued),
        "a task ran that was never enqueued"
    );
    let lost: Vec<&u64> = history.acknowledged.difference(&ran).collect();
    assert!(lost.is_empty(), "acknowledged but never ran: {lost:?}");
}

/// Runs `queue` with two worker threads while a producer enqueues with `enqueue`: waits
/// until `around` tasks ran, strikes with `fault`, waits until `around` more ran, then
/// stops the producer and checks the history ([`check`]); returns it.
fn around_a_fault(
    ns: &Namespace,
    backend: &redisq::RedisQueueBackend,
    queue: &str,
    around: usize,
    enqueue: impl Fn(u64) -> redisq::Result<redisq::TaskId> + Send + 'static,
    fault: impl FnOnce(),
) -> History {
    let workers = Worker::builder(backend.clone())
        .queues([queue])
        .threads(queue, 2)
        .start()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = produce(stop.clone(), enqueue);
    wait_until(
        Duration::from_secs(30),
        "tasks running before the fault",
        || ran(ns.name()).len() >= around,
    );
    fault();
    let before = ran(ns.name()).len();
    wait_until(
        Duration::from_secs(30),
        "tasks running after the fault",
        || ran(ns.name()).len() >= before + around,
    );
    stop.store(true, Ordering::Relaxed);
    let history = producer.join().unwrap();
    check(ns.name(), &history);
    workers.shutdown();
    history
}

#[test]
fn a_master_killed_mid_run_loses_no_acknowledged_task_with_replica_acks() {
    init_logging();
    let cluster = RedisCluster::start();
    let ns = Namespace::on(cluster.url());
    let backend = ns
        .backend()
        .with_lease(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(4))
        .with_replica_acks(1, Duration::from_millis(200));
    let slot = cluster.slot(&ns.key("failover", "pending"));
    let master = cluster
        .master_of(slot, None)
        .expect("a master for the queue");
    let (producer, name) = (backend.clone(), ns.name().to_owned());
    let history = around_a_fault(
        &ns,
        &backend,
        "failover",
        200,
        move |n| on_failover::enqueue(&producer, name.clone(), n),
        || {
            cluster.kill(master);
            let promoted =
                cluster.wait_for_master(slot, Some(master), Duration::from_secs(30).into());
            assert_ne!(promoted, master);
            // Until the old master rejoins as its replica, the new one has none: enqueues
            // fail with NotReplicated (recorded as failed; they are queued all the same).
            cluster.restart(master);
            wait_until(
                Duration::from_secs(30),
                "the old master rejoined as a replica",
                || cluster.replicas(promoted) >= 1,
            );
        },
    );
    assert!(
        history.acknowledged.len() >= 300,
        "{} acknowledged",
        history.acknowledged.len()
    );
}

#[test]
fn a_slot_migrated_mid_run_loses_no_acknowledged_task() {
    init_logging();
    let cluster = RedisCluster::start();
    let ns = Namespace::on(cluster.url());
    let backend = ns.backend().with_timeout(Duration::from_secs(10));
    let slot = cluster.slot(&ns.key("reshard", "pending"));
    let from = cluster
        .master_of(slot, None)
        .expect("a master for the queue");
    let to = cluster
        .nodes(None)
        .into_iter()
        .find(|n| n.master && n.port != from)
        .expect("another master")
        .port;
    let (producer, name) = (backend.clone(), ns.name().to_owned());
    around_a_fault(
        &ns,
        &backend,
        "reshard",
        300,
        move |n| on_reshard::enqueue(&producer, name.clone(), n),
        || {
            // A few keys a step, with a pause between, so that clients meet the slot half
            // moved.
            cluster.migrate_slot(slot, from, to, 3, || {
                thread::sleep(Duration::from_millis(20))
            });
            assert_eq!(cluster.master_of(slot, None), Some(to));
        },
    );
}

#[test]
fn a_partitioned_queue_spreads_over_masters_and_keeps_each_key_in_order() {
    init_logging();
    let cluster = RedisCluster::start();
    let ns = Namespace::on(cluster.url());
    let backend = ns.backend();
    let masters: BTreeSet<u16> = PARTS
        .names()
        .iter()
        .filter_map(|queue| cluster.master_of(cluster.slot(&ns.key(queue, "pending")), None))
        .collect();
    assert!(masters.len() >= 2, "the partitions are on {masters:?}");
    let name = ns.name().to_owned();
    let users: Vec<String> = (0..40).map(|u| format!("user-{u}")).collect();
    for n in 0..25 {
        for user in &users {
            per_user::with(&backend)
                .queue(&PARTS.for_key(user))
                .enqueue(name.clone(), user.clone(), n)
                .unwrap();
        }
    }
    for n in 0..160 {
        spread::with(&backend)
            .queue(&PARTS.next())
            .enqueue(name.clone(), n)
            .unwrap();
    }
    let workers = Worker::builder(backend.clone())
        .queues(PARTS.names())
        .start()
        .unwrap();
    wait_until(Duration::from_secs(60), "every task ran", || {
        part_ran(ns.name()).len() >= 40 * 25 + 160
    });
    workers.shutdown();
    let ran = part_ran(ns.name());
    assert_eq!(ran.len(), 40 * 25 + 160, "no task ran twice");
    for user in &users {
        let runs: Vec<&(String, u64, String)> = ran.iter().filter(|(u, _, _)| u == user).collect();
        let order: Vec<u64> = runs.iter().map(|(_, n, _)| *n).collect();
        assert_eq!(
            order,
            (0..25).collect::<Vec<_>>(),
            "{user} ran out of order"
        );
        let queues: BTreeSet<&String> = runs.iter().map(|(_, _, q)| q).collect();
        assert_eq!(queues.len(), 1, "{user} ran on {queues:?}");
        assert!(queues.contains(&PARTS.for_key(user)));
    }
    let spread_on: BTreeSet<&String> = ran
        .iter()
        .filter(|(u, _, _)| u.is_empty())
        .map(|(_, _, q)| q)
        .collect();
    assert_eq!(spread_on.len(), 8, "round robin reached every partition");
}

#[test]
fn an_idle_pool_over_several_slots_wakes_for_a_task_in_any_of_them() {
    init_logging();
    let cluster = RedisCluster::start();
    let ns = Namespace::on(cluster.url());
    // A block timeout far longer than the waits below: waiting on the eight slots in turn
    // would leave each later one unheard for seconds.
    let backend = ns.backend().with_block_timeout(Duration::from_secs(40));
    let workers = Worker::builder(backend.clone())
        .pool(PARTS.names(), 1)
        .start()
        .unwrap();
    let name = ns.name().to_owned();
    // Let the pool find every queue empty and block (were it not blocked yet, it would
    // only find the first task sooner).
    thread::sleep(Duration::from_millis(300));
    for (n, queue) in PARTS.names().iter().enumerate().rev() {
        spread::with(&backend)
            .queue(queue)
            .enqueue(name.clone(), n as u64)
            .unwrap();
        wait_until(
            Duration::from_secs(10),
            "the idle pool woke for the task",
            || part_ran(ns.name()).len() > 7 - n,
        );
    }
    // The idle pool stops within its block timeout; no need to wait for it here.
    let _ = workers.shutdown_timeout(Duration::from_millis(100));
}
