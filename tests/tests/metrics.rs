//! `Stats::to_prometheus` over figures a real worker produced: the text parses back, and
//! the counters hold what ran.
//!
//! prometheus-client writes OpenMetrics: a counter family is named without `_total`
//! (`# TYPE redisq_processed counter`) and its samples with it
//! (`redisq_processed_total{queue="q"} 3`); gauges keep their name.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use redisq::{fifo, Worker};
use redisq_test_support::wait_until;
use support::TestNs;

const WAIT: Duration = Duration::from_secs(30);

#[fifo(queue = "q")]
fn square(n: u64) -> u64 {
    n * n
}

/// The samples of an exposition, by `name{labels}` as written.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn processed_tasks_are_counted_in_the_exposition() {
    let ns = TestNs::new();
    let ids: Vec<_> = (1..=4)
        .map(|n| square::enqueue(&ns.backend, n).expect("enqueue"))
        .collect();
    let worker = Worker::builder(ns.backend.clone())
        .queues(["q"])
        .start()
        .expect("worker");
    wait_until(WAIT, "four tasks done", || {
        ids.iter().all(|id| {
            ns.backend
                .task(id)
                .ok()
                .flatten()
                .is_some_and(|t| t.status.is_finished())
        })
    });
    worker.shutdown();

    let text = ns.backend.stats().expect("stats").to_prometheus();
    let samples = samples(&text);
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(get(r#"redisq_processed_total{queue="q"}"#), 4.0);
    assert_eq!(get(r#"redisq_failed_total{queue="q"}"#), 0.0);
    assert_eq!(get(r#"redisq_dead_lettered_total{queue="q"}"#), 0.0);
    assert_eq!(get(r#"redisq_pending{queue="q",lane="normal"}"#), 0.0);
    assert_eq!(get(r#"redisq_dead{queue="q"}"#), 0.0);
    assert_eq!(get("redisq_redis_connected"), 1.0);
    assert!(get(r#"redisq_last_processed_timestamp_seconds{queue="q"}"#) > 1.0e9);
    assert!(get(r#"redisq_run_milliseconds{queue="q",quantile="0.99"}"#) >= 0.0);
    assert!(text.contains("# TYPE redisq_processed counter\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}
