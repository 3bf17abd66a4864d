//! The example of the attribute's manual (`redisq-macros/src/lib.rs`), which needs Redis
//! to run: here it is only compiled.
#![deny(warnings)]

use redisq::{fifo, RedisQueueBackend};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
}

/// Sends a mail.
#[fifo(queue = "emails", name = "mail::send", workers = 2)]
pub fn send_email(mail: Mail) -> Result<String, std::io::Error> {
    Ok(format!("sent {} to {}", mail.subject, mail.to))
}

/// Resizes an image, with the default wire name and one worker.
#[fifo(queue = "images")]
pub(crate) fn resize(path: String, width: u32) {
    let _ = (path, width);
}

/// Counts a visit; runs here and now when Redis is down.
#[fifo(queue = "stats", fallback = "inline")]
pub fn count_visit(page: String) -> usize {
    page.len()
}

fn example() -> redisq::Result<()> {
    assert_eq!(send_email::NAME, "mail::send");
    assert_eq!(resize::QUEUE, "images");

    // Runs the body here and now, without Redis.
    let mail = Mail { to: "ada@example.com".into(), subject: "hi".into() };
    let _sent: Result<String, std::io::Error> = send_email::run(mail);

    // Enqueues on the global backend; a worker runs it later.
    let backend = RedisQueueBackend::new("redis://127.0.0.1:6379")?;
    redisq::init(backend.clone())?;
    let _id: redisq::TaskId = resize("cat.png".to_owned(), 128)?;

    // Enqueues on an explicit backend.
    let mail = Mail { to: "bob@example.com".into(), subject: "hi".into() };
    let _id = send_email::enqueue(&backend, mail)?;

    // Enqueues on a queue named at run time.
    let mail = Mail { to: "eve@example.eu".into(), subject: "hi".into() };
    let _id = send_email::enqueue_to(&backend, "emails-eu", mail)?;

    // Enqueues many calls in one round trip; one item per call.
    let _ids: Vec<redisq::TaskId> = resize::enqueue_many(
        &backend,
        [("a.png".to_owned(), 64), ("b.png".to_owned(), 64)],
    )?;

    // Enqueues, or runs inline when Redis is unreachable.
    let mail = Mail { to: "ada@example.com".into(), subject: "hi".into() };
    match send_email::enqueue_or_run(&backend, mail)? {
        redisq::Dispatch::Queued(id) => println!("queued {id}"),
        redisq::Dispatch::RanInline(sent) => println!("ran inline: {}", sent.is_ok()),
    }
    // With `fallback = "inline"`, the plain call does the same.
    let _counted: redisq::Dispatch<usize> = count_visit("/".to_owned())?;
    Ok(())
}

fn main() {
    let _compiled_only: fn() -> redisq::Result<()> = example;
    let sent = send_email::run(Mail { to: "a".into(), subject: "b".into() });
    assert_eq!(sent.ok().as_deref(), Some("sent b to a"));
}
