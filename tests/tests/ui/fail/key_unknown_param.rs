//! A key naming no parameter is one error at it, even though the generated items are used.
use redisq::{fifo, RedisQueueBackend, TaskId};

#[fifo(queue = "points", key = "device")]
pub fn record(device_id: u32, reading: f64) {
    let _ = (device_id, reading);
}

fn main() -> redisq::Result<()> {
    let backend = RedisQueueBackend::new("redis://127.0.0.1:1")?;
    let _: TaskId = record::enqueue(&backend, 7, 1.5)?;
    let _: TaskId = record::with(&backend).key("k").enqueue(7, 1.5)?;
    let _: TaskId = record(7, 1.5)?;
    Ok(())
}
