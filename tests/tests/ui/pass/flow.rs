#![deny(warnings)]

use std::time::Duration;

use redisq::{fifo, Dispatch, RedisQueueBackend, TaskId};

#[fifo(queue = "emails")]
pub fn send(to: String, subject: String) -> Result<String, String> {
    Ok(format!("{subject} to {to}"))
}

#[fifo(queue = "emails", fallback = "inline")]
pub fn send_or_run(to: String) -> usize {
    to.len()
}

#[fifo(queue = "pings", fallback = "inline")]
fn ping() {}

// Parameters named like the generated ones do not clash.
#[fifo(queue = "clash")]
pub fn clash(backend: String, queue: String, items: Vec<u8>, run: u8) {
    let _ = (backend, queue, items, run);
}

fn main() {
    let backend = RedisQueueBackend::new("redis://127.0.0.1:1")
        .unwrap()
        .with_timeout(Duration::from_millis(300));

    let routed: redisq::Result<TaskId> =
        send::enqueue_to(&backend, "emails-eu", "a".into(), "b".into());
    assert!(routed.unwrap_err().is_unavailable());
    let many: redisq::Result<Vec<TaskId>> =
        send::enqueue_many(&backend, vec![("a".to_owned(), "b".to_owned())]);
    assert!(many.unwrap_err().is_unavailable());
    assert!(send::enqueue_many(&backend, Vec::new()).unwrap().is_empty());
    let one: Vec<String> = Vec::new();
    assert!(send_or_run::enqueue_many(&backend, one).unwrap().is_empty());
    assert!(ping::enqueue_many(&backend, [(), ()])
        .unwrap_err()
        .is_unavailable());

    let out: Dispatch<Result<String, String>> =
        send::enqueue_or_run(&backend, "a".into(), "hi".into()).unwrap();
    assert_eq!(out, Dispatch::RanInline(Ok("hi to a".to_owned())));
    let out: Dispatch<()> = ping::enqueue_or_run(&backend).unwrap();
    assert!(!out.is_queued());

    redisq::init(backend.clone()).unwrap();
    let out: redisq::Result<Dispatch<usize>> = send_or_run("abc".into());
    assert_eq!(out.unwrap().into_inline(), Some(3));
    assert_eq!(ping().unwrap(), Dispatch::RanInline(()));

    let _ = clash::enqueue_to(&backend, "other", "b".into(), "q".into(), vec![1], 2);
    let _ = clash::enqueue_many(&backend, [("b".to_owned(), "q".to_owned(), vec![1], 2)]);
    let _ = clash::enqueue_or_run(&backend, "b".into(), "q".into(), vec![1], 2);
    clash::run("b".into(), "q".into(), vec![1], 2);
}
