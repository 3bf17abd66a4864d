//! A task returning `Result`, with `workers`: the shape of the manual's example.
#![deny(warnings)]

use redisq::fifo;

/// Why a mail was not sent.
#[derive(Debug)]
pub struct MailError;

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mail not sent")
    }
}

/// Sends a mail.
#[fifo(queue = "emails", workers = 2)]
pub fn send_email(to: String, subject: String) -> Result<String, MailError> {
    if to.is_empty() {
        return Err(MailError);
    }
    Ok(format!("sent {subject} to {to}"))
}

fn main() {
    let sent: Result<String, MailError> = send_email::run("a@b.c".to_owned(), "hi".to_owned());
    assert_eq!(sent.ok().as_deref(), Some("sent hi to a@b.c"));
    assert_eq!(send_email::NAME, concat!(module_path!(), "::send_email"));
    assert_eq!(send_email::QUEUE, "emails");
    assert_eq!(send_email::DEF.workers, 2);
    assert_eq!(send_email::DEF.params, &["to", "subject"]);
    let _enqueue: fn(String, String) -> redisq::Result<redisq::TaskId> = send_email;
    let _explicit: fn(&redisq::RedisQueueBackend, String, String) -> redisq::Result<redisq::TaskId> =
        send_email::enqueue;
}
