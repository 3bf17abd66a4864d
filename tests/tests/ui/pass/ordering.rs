//! Ordered queues and keys: `ordered = true`, `key` (a parameter, or a batch item's
//! field) with `on_failure`, and one call's key through `with(..).key(..)`.
#![deny(warnings)]

use redisq::{fifo, RedisQueueBackend, TaskId};
use serde::{Deserialize, Serialize};

/// Posts a ledger entry; entries start in enqueue order, one at a time.
#[fifo(queue = "ledger", ordered = true)]
pub fn post(entry: String) {
    let _ = entry;
}

/// Records a reading; one device's readings run one at a time, in enqueue order.
#[fifo(queue = "readings", key = "device_id", on_failure = "dead_letter")]
pub fn record(device_id: u32, reading: f64) -> f64 {
    let _ = device_id;
    reading
}

/// One device's point.
#[derive(Serialize, Deserialize)]
pub struct Point {
    pub device_id: u32,
    pub x: f64,
}

/// Inserts points; a batch holds at most one point of a device.
#[fifo(queue = "points", batch = 100, key = "device_id", ordered = false)]
pub fn insert(points: Vec<Point>) -> usize {
    points.len()
}

fn main() {
    assert!(post::DEF.ordered);
    assert_eq!(post::DEF.key, None);
    assert!(post::DEF.ordered_retries);
    assert!(!record::DEF.ordered);
    assert_eq!(record::DEF.key, Some("device_id"));
    assert!(!record::DEF.ordered_retries);
    assert_eq!(insert::DEF.key, Some("device_id"));
    assert!(!insert::DEF.ordered);
    assert!(insert::DEF.ordered_retries);
    assert_eq!(record::run(7, 1.5), 1.5);

    // A closed port: nothing here may reach a real Redis.
    let backend = RedisQueueBackend::new("redis://127.0.0.1:1").unwrap();
    let _: redisq::Result<TaskId> = record::with(&backend).key("k").enqueue(7, 1.5);
    let _: redisq::Result<TaskId> = post::with(&backend).key("k").enqueue("e".into());
    let _: redisq::Result<Vec<TaskId>> = insert::with(&backend)
        .key("k")
        .enqueue_many([Point { device_id: 1, x: 0.5 }]);
}
