//! The chaos harness, bounded: three worker processes behind a fault-injecting proxy in
//! front of a private Redis server, 50 seconds of faults from a seed (`CHAOS_SEED`, else
//! random; printed), then the drain and every check of `redisq_tests::chaos::checker`.
//! A failure prints the report, the seed to replay it with, and the kept run directory.
//!
//! Replay: `CHAOS_SEED=<seed> cargo test -p redisq-tests --test chaos`, or the binary:
//! `cargo run -p redisq-tests --bin chaos -- --seed <seed> --duration 45s`.

use std::time::Duration;

use redisq_tests::chaos::run::{run, Config};

#[test]
fn a_seeded_fault_schedule_breaks_no_delivery_promise() {
    redisq_test_support::init_logging();
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("chaos seed {seed}");
    let mut config = Config::new(vec![env!("CARGO_BIN_EXE_chaos_worker").into()]);
    config.seed = seed;
    config.duration = Duration::from_secs(50);
    config.drain_timeout = Duration::from_secs(30);
    let outcome = run(&config).unwrap_or_else(|e| panic!("the harness failed (seed {seed}): {e}"));
    println!("{}", outcome.report);
    assert!(
        outcome.report.is_ok(),
        "violations (seed {seed}; run directory {:?}):\n{}",
        outcome.kept,
        outcome.report
    );
    assert!(
        outcome.report.summary.faults.values().sum::<usize>() >= 10,
        "too few faults to test anything:\n{}",
        outcome.report
    );
}
