#![deny(warnings)]

use std::time::Duration;

use redisq::{fifo, Dispatch, Priority, TaskId};

#[fifo(queue = "emails", priority = "low")]
pub fn send_email(to: String) {
    let _ = to;
}

#[fifo(queue = "points", batch = 500, priority = "high")]
pub fn insert(points: Vec<u32>) -> Result<usize, String> {
    Ok(points.len())
}

#[fifo(queue = "points", batch = 10, fallback = "inline")]
pub fn insert_or_run(item: Vec<String>) -> usize {
    item.len()
}

fn main() {
    // A closed port: nothing here may reach a real Redis, not even the plain calls.
    let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:1").unwrap();
    redisq::init(backend.clone()).unwrap();
    assert_eq!(send_email::DEF.priority, Priority::Low);
    assert_eq!(insert::DEF.batch, 500);
    let _: redisq::Result<TaskId> = send_email::with(&backend)
        .priority(Priority::High)
        .queue("emails-eu")
        .delay(Duration::from_secs(1))
        .enqueue("a@b.c".into());
    // A batch task enqueues items; the body takes them all.
    let _: redisq::Result<TaskId> = insert::enqueue(&backend, 7);
    let _: redisq::Result<Vec<TaskId>> = insert::enqueue_many(&backend, [1, 2, 3]);
    let _: redisq::Result<Vec<TaskId>> = insert(vec![1, 2]);
    let _: redisq::Result<Dispatch<Result<usize, String>, Vec<TaskId>>> =
        insert::enqueue_or_run(&backend, vec![1, 2]);
    let _: redisq::Result<Dispatch<usize, Vec<TaskId>>> = insert_or_run(vec!["a".into()]);
    assert_eq!(insert::run(vec![1, 2, 3]), Ok(3));
}

#[fifo(queue = "pings", store_result = false)]
pub fn ping() {}

#[fifo(queue = "pings")]
pub fn typed() -> Result<Vec<u8>, std::io::Error> {
    Ok(vec![1])
}

#[allow(dead_code)]
fn typed_results(backend: &redisq::RedisQueueBackend, id: &TaskId) {
    assert!(!ping::DEF.store_result);
    let _: redisq::Result<Option<()>> = ping::result(backend, id);
    let _: redisq::Result<Option<Vec<u8>>> = typed::result(backend, id);
}
