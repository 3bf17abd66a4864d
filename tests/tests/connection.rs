//! Connecting to Redis: every call within `with_timeout` (connect and command together),
//! errors that say what happened (a timeout, refused credentials, a full server), a worker
//! that starts without blocking on an unreachable Redis, and the server settings `health()`
//! reads.

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use redisq::{fifo, Dispatch, RedisQueueBackend};
use support::TestNs;

#[fifo(queue = "conn", name = "conn.noop")]
fn conn_noop(_n: u64) {}

/// A TCP server on a free loopback port that accepts connections and never answers: what
/// a hung Redis (or a wrong port behind a proxy) looks like to a client. It holds every
/// connection open until dropped.
struct SilentServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                    // Read and drop what clients send, so that their writes never block.
                    for stream in &mut held {
                        let _ = stream.set_nonblocking(true);
                        let mut sink = [0u8; 4096];
                        let _ = stream.read(&mut sink);
                    }
                }
            })
        };
        SilentServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `f`, returning its result and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

/// A silent server fails each call within its timeout (connect and command together, with
/// a generous margin: × 1.5), as `Unavailable`, saying that it timed out and after how long.
fn assert_bounded(backend: &RedisQueueBackend, timeout: Duration, said: &str) {
    let bound = timeout.mul_f64(1.5);
    let (out, took) = timed(|| backend.ping());
    let err = out.expect_err("a silent server cannot answer PING");
    assert!(err.is_unavailable(), "{err:?}");
    eprintln!("timeout {timeout:?}: ping failed after {took:?}: {err}");
    assert!(took < bound, "ping took {took:?}, over {bound:?}");
    let message = err.to_string();
    assert!(
        message.contains(said),
        "the error should say `{said}`: {message}"
    );

    let (out, took) = timed(|| conn_noop::enqueue(backend, 1));
    let err = out.expect_err("a silent server cannot take a task");
    assert!(err.is_unavailable(), "{err:?}");
    eprintln!("timeout {timeout:?}: enqueue failed after {took:?}");
    assert!(took < bound, "enqueue took {took:?}, over {bound:?}");
    assert!(err.to_string().contains(said), "{err}");
}

#[test]
fn a_silent_redis_fails_each_call_within_the_timeout() {
    let server = SilentServer::start();
    let backend = RedisQueueBackend::new(&server.url())
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    assert_bounded(&backend, Duration::from_secs(1), "did not answer within 1s");

    // The default is 5 s.
    let backend = RedisQueueBackend::new(&server.url()).unwrap();
    assert_bounded(&backend, Duration::from_secs(5), "did not answer within 5s");
}

#[test]
fn the_inline_fallback_runs_when_redis_is_silent() {
    let server = SilentServer::start();
    let backend = RedisQueueBackend::new(&server.url())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let (out, took) = timed(|| conn_noop::enqueue_or_run(&backend, 2));
    assert_eq!(out.unwrap(), Dispatch::RanInline(()));
    assert!(took < Duration::from_millis(450), "took {took:?}");
}

#[test]
fn a_worker_starts_at_once_on_a_silent_redis() {
    let ns = TestNs::new();
    let server = SilentServer::start();
    let backend = RedisQueueBackend::new(&server.url())
        .unwrap()
        .with_namespace(ns.name.clone())
        .with_timeout(Duration::from_secs(1))
        .with_block_timeout(Duration::from_millis(100));
    let (worker, took) = timed(|| redisq::Worker::builder(backend).queues(["conn"]).start());
    let worker = worker.expect("an unreachable redis does not stop a worker's start");
    // At most one probe, bounded by the timeout.
    assert!(took < Duration::from_millis(1500), "start took {took:?}");
    worker.shutdown();
}
