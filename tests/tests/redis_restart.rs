//! Redis itself dies: a private `redis-server` with `appendonly yes` and `appendfsync
//! always`, on a spare loopback port, is killed with SIGKILL and restarted while a producer
//! and workers run. Every enqueue that returned Ok must run; producers must get clear
//! errors while it is down; workers must recover by themselves.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redisq::{fifo, RedisQueueBackend, Worker};
use redisq_test_support::{raw, redis_url, wait_until, RedisServer};
use support::TestNs;

/// The main Redis key where the tasks record what ran; it survives the private server.
static EFFECTS: Mutex<String> = Mutex::new(String::new());

#[fifo(queue = "restart", name = "restart.record")]
fn restart_record(n: u64) -> Result<(), String> {
    let key = EFFECTS.lock().map_err(|e| e.to_string())?.clone();
    let mut con = redis::Client::open(redis_url())
        .and_then(|c| c.get_connection())
        .map_err(|e| e.to_string())?;
    redis::cmd("SADD")
        .arg(key)
        .arg(n)
        .query::<()>(&mut con)
        .map_err(|e| e.to_string())
}

#[test]
fn acknowledged_tasks_survive_a_redis_crash_and_everyone_recovers() {
    let ns = TestNs::new();
    let effects = format!("{}:effects", ns.name);
    *EFFECTS.lock().unwrap() = effects.clone();
    // Every write persisted before the reply.
    let mut server = RedisServer::builder().aof().start();
    let backend = RedisQueueBackend::new(&server.url())
        .unwrap()
        .with_namespace(ns.name.clone())
        .with_timeout(Duration::from_millis(300))
        .with_block_timeout(Duration::from_millis(200))
        .with_lease(Duration::from_secs(3));
    let workers = Worker::builder(backend.clone())
        .queues(["restart"])
        .threads("restart", 2)
        .start()
        .unwrap();

    let accepted = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (accepted, errors, stop) = (accepted.clone(), errors.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                match restart_record::enqueue(&backend, n) {
                    Ok(_) => accepted.lock().unwrap().push(n),
                    Err(err) => errors.lock().unwrap().push((
                        err.is_unavailable(),
                        started.elapsed(),
                        err.to_string(),
                    )),
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    std::thread::sleep(Duration::from_millis(500));
    server.kill();
    std::thread::sleep(Duration::from_millis(800));
    server.restart();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    producer.join().unwrap();

    let accepted: BTreeSet<u64> = accepted.lock().unwrap().iter().copied().collect();
    let errors = errors.lock().unwrap().clone();
    assert!(
        accepted.len() > 100,
        "only {} enqueues succeeded",
        accepted.len()
    );
    assert!(
        !errors.is_empty(),
        "the producer saw no error while redis was down"
    );
    for (unavailable, took, message) in &errors {
        assert!(unavailable, "not an unavailability error: {message}");
        assert!(
            *took < Duration::from_secs(2),
            "an enqueue took {took:?} to fail"
        );
    }

    wait_until(
        Duration::from_secs(60),
        "every accepted task to run",
        || {
            let done: BTreeSet<u64> = redis::cmd("SMEMBERS")
                .arg(&effects)
                .query(&mut raw())
                .unwrap();
            accepted.is_subset(&done)
        },
    );
    println!(
        "redis restart: {} enqueues accepted and all ran; {} failed while redis was down",
        accepted.len(),
        errors.len()
    );
    workers.shutdown();
}
