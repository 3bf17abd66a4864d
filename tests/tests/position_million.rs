//! Queue position stays cheap with 1,000,000 tasks queued: it reads two counters and the
//! lengths of the higher lanes, never the list. Ignored by default (it writes ~350 MB to
//! Redis); run it with `cargo test --release -p redisq-tests --test position_million --
//! --ignored --nocapture`. Its figure is in the README.

mod support;

use std::time::{Duration, Instant};

use redisq::fifo;
use support::TestNs;

#[fifo(queue = "million")]
fn numbered(n: u32) -> u32 {
    n
}

#[test]
#[ignore = "writes a million tasks; run on demand for the README figure"]
fn position_of_the_last_of_a_million_queued_tasks() {
    const N: u32 = 1_000_000;
    let ns = TestNs::new();
    let started = Instant::now();
    let mut last = None;
    for chunk in (0..N).collect::<Vec<_>>().chunks(10_000) {
        last = numbered::enqueue_many(&ns.backend, chunk.iter().copied())
            .unwrap()
            .pop();
    }
    let enqueued = started.elapsed();
    let last = last.unwrap();
    let mut times = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let info = ns.backend.task(&last).unwrap().unwrap();
        times.push(started.elapsed());
        assert_eq!(info.queue_position, Some(u64::from(N) - 1));
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "position_million: enqueued {N} in {enqueued:?}; task() with position: median {median:?}, max {:?} (client time, loopback round trips included)",
        times[times.len() - 1]
    );
    assert!(median < Duration::from_millis(5));
}
