//! The chaos harness, bounded: three worker processes behind a fault-injecting proxy in
//! front of a private Redis server, 50 seconds of faults from a seed (`CHAOS_SEED`, else
//! random; printed), then the drain and every check of `redisq_tests::chaos::checker`,
//! the order check of the ordered queue and of the keyed queue's 40 keys among them.
//! A failure prints the report, the seed to replay it with, and the kept run directory.
//!
//! The same against a Redis Cluster of three masters (each node with its append-only file
//! and a proxy of its own, the nodes announcing the proxies, so that every client goes
//! through them), 40 seconds of faults; a Redis restart kills and restarts every node.
//!
//! And the order check's negative control: the same workload with the order streams on
//! plain queues (`--unordered`), 15 seconds of faults, which the order check must fail.
//!
//! The two runs take turns (each starts its own Redis, proxy and worker processes, and
//! both together would starve each other of CPU on a small machine).
//!
//! Replay: `CHAOS_SEED=<seed> cargo test -p redisq-tests --test chaos`, or the binary:
//! `cargo run -p redisq-tests --bin chaos -- --seed <seed> --duration 45s`.

use std::sync::Mutex;
use std::time::Duration;

use redisq_tests::chaos::checker::Check;
use redisq_tests::chaos::run::{run, Config};

/// One run at a time.
static TURN: Mutex<()> = Mutex::new(());

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// One seeded run, on one server or a cluster, for `duration` of faults: no violation,
/// and enough faults and order to have tested something.
fn seeded_run(cluster: bool, duration: Duration, min_faults: usize) {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    redisq_test_support::init_logging();
    let seed = seed();
    println!(
        "chaos seed {seed}{}",
        if cluster { " (cluster)" } else { "" }
    );
    let mut config = Config::new(vec![env!("CARGO_BIN_EXE_chaos_worker").into()]);
    config.seed = seed;
    config.duration = duration;
    config.drain_timeout = Duration::from_secs(30);
    config.cluster = cluster;
    let outcome = run(&config).unwrap_or_else(|e| panic!("the harness failed (seed {seed}): {e}"));
    println!("{}", outcome.report);
    assert!(
        outcome.report.is_ok(),
        "violations (seed {seed}; run directory {:?}):\n{}",
        outcome.kept,
        outcome.report
    );
    let s = &outcome.report.summary;
    assert!(
        s.faults.values().sum::<usize>() >= min_faults,
        "too few faults to test anything:\n{}",
        outcome.report
    );
    assert!(
        s.order_queue_checked >= 100 && s.order_keyed_checked >= 1000 && s.held_retries >= 20,
        "too little order to check:\n{}",
        outcome.report
    );
}

#[test]
fn a_seeded_fault_schedule_breaks_no_delivery_promise() {
    seeded_run(false, Duration::from_secs(50), 10);
}

#[test]
fn a_seeded_fault_schedule_on_a_cluster_breaks_no_delivery_promise() {
    seeded_run(true, Duration::from_secs(40), 8);
}

#[test]
fn the_order_check_fails_when_the_order_streams_go_to_plain_queues() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    redisq_test_support::init_logging();
    let seed = seed();
    println!("chaos seed {seed} (negative control)");
    let mut config = Config::new(vec![env!("CARGO_BIN_EXE_chaos_worker").into()]);
    config.seed = seed;
    config.duration = Duration::from_secs(15);
    config.drain_timeout = Duration::from_secs(20);
    config.unordered = true;
    let outcome = run(&config).unwrap_or_else(|e| panic!("the harness failed (seed {seed}): {e}"));
    println!("{}", outcome.report);
    let report = &outcome.report;
    let order: Vec<&str> = report
        .violations
        .iter()
        .filter(|v| v.check == Check::Order)
        .map(|v| v.what.as_str())
        .collect();
    let found = |what: &str| order.iter().any(|w| w.contains(what));
    assert!(
        found("ordered workload on a plain queue") && found("key k"),
        "the order check did not fail on both streams (seed {seed}):\n{report}"
    );
    assert!(
        found("(overtaken)") && found("(held retry overtaken)") && found("(not one at a time)"),
        "the order check missed a kind of violation (seed {seed}):\n{report}"
    );
    // Nothing else broke: the control changes only the order.
    let others: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.check != Check::Order)
        .collect();
    assert!(
        others.is_empty(),
        "violations besides order (seed {seed}; run directory {:?}):\n{report}",
        outcome.kept
    );
    // The run directory was kept because the order check failed, as it should.
    if let Some(dir) = &outcome.kept {
        let _ = std::fs::remove_dir_all(dir);
    }
}
