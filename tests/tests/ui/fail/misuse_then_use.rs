//! A misuse (a borrowed argument) is one error, even though the generated items are used.
use redisq::{fifo, RedisQueueBackend, TaskId};

#[fifo(queue = "emails")]
pub fn send_email(to: &str) -> usize {
    to.len()
}

fn main() -> redisq::Result<()> {
    let backend = RedisQueueBackend::new("redis://127.0.0.1:1")?;
    let _: TaskId = send_email::enqueue(&backend, "ada@example.com")?;
    let _: TaskId = send_email("bob@example.com")?;
    let _: usize = send_email::run("eve@example.com");
    let _: Vec<TaskId> = send_email::enqueue_many(&backend, ["a@b.c", "d@e.f"])?;
    assert_eq!(send_email::NAME, concat!(module_path!(), "::send_email"));
    Ok(())
}
