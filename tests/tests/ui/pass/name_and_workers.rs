//! `name` and `workers`, a trailing comma, a suffixed integer, and an `io::Result` return.
#![deny(warnings)]

use redisq::fifo;

/// Sends a mail under a stable wire name.
#[fifo(queue = "emails", name = "mail::send", workers = 4usize,)]
pub fn send_email(to: String) -> std::io::Result<usize> {
    Ok(to.len())
}

/// Keys in any order.
#[fifo(workers = 1, name = "other", queue = "q")]
pub fn other() {}

fn main() {
    assert_eq!(send_email::run("abc".to_owned()).ok(), Some(3));
    assert_eq!(send_email::NAME, "mail::send");
    assert_eq!(send_email::QUEUE, "emails");
    assert_eq!(send_email::DEF.workers, 4);
    assert_eq!(other::NAME, "other");
    assert_eq!(other::DEF.workers, 1);
    other::run();
    let _ = send_email;
    let _ = other;
}
