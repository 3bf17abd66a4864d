//! A bad attribute value is one error; the uses of a batch task's items still resolve.
use redisq::{fifo, RedisQueueBackend, TaskId};

#[fifo(queue = "points", batch = 0)]
pub fn insert(points: Vec<u32>) -> usize {
    points.len()
}

fn main() -> redisq::Result<()> {
    let backend = RedisQueueBackend::new("redis://127.0.0.1:1")?;
    let _: TaskId = insert::enqueue(&backend, 7)?;
    let _: Vec<TaskId> = insert(vec![1, 2])?;
    let _: Vec<TaskId> = insert::with(&backend).enqueue_many([3, 4])?;
    let _: usize = insert::run(vec![5]);
    let _: &str = insert::NAME;
    Ok(())
}
