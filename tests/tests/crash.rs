//! The crash test: worker processes are killed with SIGKILL at random moments, many
//! times, and restarted, while they drain 10,000 tasks; every task must run at least once,
//! and the duplicate runs must stay within what the kills can explain.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redisq_test_support::{raw, redis_url};
use redisq_tests::crash::{done_key, record, runs_key};
use support::TestNs;

const TASKS: u64 = 10_000;
const PROCESSES: usize = 2;
/// Threads per worker process and the most tasks a thread claims at once (crash_worker.rs).
const THREADS: u64 = 2;
const PREFETCH: u64 = 10;

/// Worker processes, killed when the test ends however it ends.
struct Workers {
    ns: String,
    children: Vec<Child>,
}

impl Workers {
    fn spawn(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_crash_worker"))
            .env("REDIS_URL", redis_url())
            .env("REDISQ_NS", &self.ns)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("crash_worker starts")
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn count(key: &str, cmd: &str) -> u64 {
    redis::cmd(cmd)
        .arg(key)
        .query::<Option<u64>>(&mut raw())
        .expect("redis")
        .unwrap_or(0)
}

#[test]
fn every_task_runs_at_least_once_across_killed_workers() {
    let ns = TestNs::new();
    for n in 0..TASKS {
        record::enqueue(&ns.backend, ns.name.clone(), n).expect("enqueue");
    }
    let mut workers = Workers {
        ns: ns.name.clone(),
        children: Vec::new(),
    };
    for _ in 0..PROCESSES {
        let child = workers.spawn();
        workers.children.push(child);
    }

    // Kill a random worker every 30–250 ms, and restart it, while tasks remain.
    let mut seed = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    let mut random = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut kills = 0u64;
    while count(&done_key(&ns.name), "SCARD") < TASKS * 9 / 10 && kills < 40 {
        std::thread::sleep(Duration::from_millis(30 + random(220)));
        let victim = usize::try_from(random(PROCESSES as u64)).unwrap_or(0);
        let child = &mut workers.children[victim];
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
        workers.children[victim] = workers.spawn();
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&done_key(&ns.name), "SCARD") < TASKS {
        assert!(
            Instant::now() < deadline,
            "only {} of {TASKS} tasks ran after {kills} kills",
            count(&done_key(&ns.name), "SCARD")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(workers);

    let runs = count(&runs_key(&ns.name), "GET");
    let duplicates = runs - TASKS;
    // A kill repeats at most what each of the process's threads had claimed and not yet
    // acknowledged: one prefetch per thread.
    let bound = kills * THREADS * PREFETCH;
    println!("crash test: {kills} kills, {runs} runs of {TASKS} tasks, {duplicates} duplicates (bound {bound})");
    assert!(
        kills >= 10,
        "only {kills} kills: the tasks drained too fast to test anything"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed the bound of {bound}"
    );
    assert_eq!(ns.backend.pending("crash").expect("llen"), 0);
    assert_eq!(ns.backend.dead_count("crash").expect("zcard"), 0);
}
