//! An argument without a name is one error; the generated items still take it, by position.
use redisq::{fifo, RedisQueueBackend, TaskId};

#[fifo(queue = "emails")]
pub fn send_email((to, subject): (String, String), _: u8) -> Result<String, String> {
    Ok(format!("{subject} to {to}"))
}

fn main() -> redisq::Result<()> {
    let backend = RedisQueueBackend::new("redis://127.0.0.1:1")?;
    let mail = ("ada@example.com".to_owned(), "hi".to_owned());
    let _: TaskId = send_email::enqueue(&backend, mail.clone(), 1)?;
    let _: TaskId = send_email(mail.clone(), 2)?;
    let _: Result<String, String> = send_email::run(mail, 3);
    let _: &str = send_email::QUEUE;
    Ok(())
}
