//! Quickstart: enqueue a few tasks, then watch worker threads in this same process run them.
//!
//! ```text
//! cargo run -p redisq-examples --example quickstart
//! ```
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`) and its own namespace, which it
//! cleans up before it exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redisq::{fifo, RedisQueueBackend};

static DONE: AtomicUsize = AtomicUsize::new(0);

/// Pretends to send an e-mail.
#[fifo(queue = "emails", workers = 2)]
fn send_email(to: String, subject: String) -> Result<String, String> {
    if !to.contains('@') {
        return Err(format!("`{to}` is not an e-mail address"));
    }
    println!("  [{}] sending `{subject}` to {to}", thread_name());
    DONE.fetch_add(1, Ordering::SeqCst);
    Ok(format!("sent to {to}"))
}

/// Adds two numbers, on another queue.
#[fifo(queue = "math")]
fn add(a: i64, b: i64) -> i64 {
    println!("  [{}] {a} + {b} = {}", thread_name(), a + b);
    DONE.fetch_add(1, Ordering::SeqCst);
    a + b
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let namespace = format!("quickstart-{}", std::process::id());
    let backend = RedisQueueBackend::new(&url)?.with_namespace(namespace.clone());
    redisq::init(backend.clone())?;

    println!(
        "inline: {:?}",
        send_email::run("me@example.com".into(), "run inline".into())
    );
    DONE.store(0, Ordering::SeqCst);

    println!("enqueueing 5 tasks (nothing runs yet)");
    for n in 1..=3 {
        let id = send_email(format!("user{n}@example.com"), format!("hello #{n}"))?;
        println!("  queued send_email as {id}");
    }
    let id = add::enqueue(&backend, 20, 22)?;
    println!("  queued add as {id}");
    let id = send_email("not-an-address".into(), "oops".into())?;
    println!("  queued a send_email that will fail, as {id}");

    println!("starting workers");
    let workers = redisq::threaded_worker(backend.clone())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.counts().processed + workers.counts().failed < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let counts = workers.counts();
    workers.shutdown();
    println!(
        "done: {} processed, {} failed, {} dead-lettered",
        counts.processed, counts.failed, counts.dead
    );

    // Leave nothing behind in Redis.
    backend.purge_namespace()?;
    if counts.processed != 4 || counts.failed != 1 {
        return Err("unexpected counts".into());
    }
    Ok(())
}
