//! Connecting to Redis: every call within `with_timeout` (connect and command together),
//! errors that say what happened (a timeout, refused credentials, a full server), a worker
//! that starts without blocking on an unreachable Redis, and the server settings `health()`
//! reads.

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use redisq::{fifo, Dispatch, RedisQueueBackend, Survival};
use redisq_test_support::RedisServer;
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
    eprintln!("a worker started on a silent redis in {took:?} (timeout 1s)");
    assert!(took < Duration::from_millis(1500), "start took {took:?}");
    worker.shutdown();
}

#[test]
fn a_worker_started_while_redis_is_down_registers_its_queues_once_it_is_back() {
    let mut server = RedisServer::start();
    let backend = backend_at(&server.url()).with_lease(Duration::from_millis(300));
    server.kill();
    let (worker, took) = timed(|| {
        redisq::Worker::builder(backend.clone())
            .queues(["conn-late"])
            .start()
    });
    let worker = worker.expect("a refused connection does not stop a worker's start");
    eprintln!("a worker started on a refused port in {took:?}");
    assert!(took < Duration::from_secs(1), "start took {took:?}");
    server.restart();
    // Its heartbeat registers the queue.
    redisq_test_support::wait_until(Duration::from_secs(20), "the queue registered", || {
        backend
            .queues()
            .is_ok_and(|queues| queues.contains(&"conn-late".to_owned()))
    });
    worker.shutdown();
}

#[test]
fn the_database_of_the_url_is_selected() {
    let server = RedisServer::start();
    let backend = backend_at(&format!("{}/3", server.url()));
    conn_noop::enqueue(&backend, 1).unwrap();
    assert_eq!(backend.pending("conn").unwrap(), 1);
    let lane = format!("{}:{{conn}}:pending", backend.namespace());
    let mut db0 = server.connection();
    let in_db0: usize = redis::cmd("LLEN").arg(&lane).query(&mut db0).unwrap();
    assert_eq!(in_db0, 0);
    let _: () = redis::cmd("SELECT").arg(3).query(&mut db0).unwrap();
    let in_db3: usize = redis::cmd("LLEN").arg(&lane).query(&mut db0).unwrap();
    assert_eq!(in_db3, 1);
}

/// How many times `conn_counted` ran, in this process.
static RAN: AtomicUsize = AtomicUsize::new(0);

#[fifo(queue = "conn", name = "conn.counted")]
fn conn_counted(_n: u64) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[fifo(queue = "conn", name = "conn.unrecorded", store_result = false)]
fn conn_unrecorded(_n: u64) {}

/// A backend on `url`, in a namespace of its own, failing fast.
fn backend_at(url: &str) -> RedisQueueBackend {
    RedisQueueBackend::new(url)
        .unwrap()
        .with_namespace(format!("test-conn-{}", redisq::TaskId::generate()))
        .with_timeout(Duration::from_secs(2))
        .with_block_timeout(Duration::from_millis(100))
}

/// `err` is an [`redisq::Error::Auth`] that starts with `says`, and neither unavailable nor
/// retryable.
fn assert_auth(err: &redisq::Error, says: &str) {
    assert!(matches!(err, redisq::Error::Auth(_)), "{err:?}");
    assert!(!err.is_unavailable(), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(err.to_string().starts_with(says), "{err}");
}

#[test]
fn refused_credentials_are_auth_errors_and_never_run_inline() {
    let server = RedisServer::builder().requirepass("s3cret").start();
    let anonymous = backend_at(&format!("redis://127.0.0.1:{}", server.port()));
    let wrong = backend_at(&server.url_as(None, "typo"));

    assert_auth(
        &anonymous.ping().unwrap_err(),
        "redis requires a password and none was given",
    );
    assert_auth(
        &wrong.ping().unwrap_err(),
        "redis refused the credentials: ",
    );
    assert_auth(
        &conn_noop::enqueue(&wrong, 1).unwrap_err(),
        "redis refused the credentials: ",
    );
    let before = RAN.load(Ordering::SeqCst);
    let err = conn_counted::enqueue_or_run(&wrong, 2).unwrap_err();
    assert_auth(&err, "redis refused the credentials: ");
    assert_eq!(RAN.load(Ordering::SeqCst), before, "not run inline");
    let err = conn_counted::enqueue_or_run(&anonymous, 3).unwrap_err();
    assert_auth(&err, "redis requires a password");
    assert_eq!(RAN.load(Ordering::SeqCst), before, "not run inline");
    assert_auth(
        &anonymous.health().unwrap_err(),
        "redis requires a password",
    );

    // A worker does not start with them.
    for backend in [&wrong, &anonymous] {
        let err = redisq::Worker::builder(backend.clone())
            .queues(["conn"])
            .start()
            .map(|worker| worker.shutdown())
            .expect_err("refused credentials stop a worker's start");
        assert!(matches!(err, redisq::Error::Auth(_)), "{err:?}");
    }

    // The right password works.
    let right = backend_at(&server.url());
    right.ping().unwrap();
    assert!(conn_noop::enqueue(&right, 4).is_ok());
}

/// Runs `ACL SETUSER <name> on ><password> <rules…>` on `server`.
fn acl_user(server: &RedisServer, name: &str, rules: &[&str]) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(name)
        .arg("on")
        .arg(">pw")
        .arg(rules)
        .query(&mut server.connection())
        .expect("acl setuser");
}

#[test]
fn an_acl_user_without_permissions_gets_auth_errors() {
    let server = RedisServer::builder().requirepass("s3cret").start();
    // No command at all.
    acl_user(&server, "nobody", &[]);
    let nobody = backend_at(&server.url_as(Some("nobody"), "pw"));
    assert_auth(
        &nobody.ping().unwrap_err(),
        "redis refused a command to this user (acl)",
    );
    assert_auth(
        &conn_noop::enqueue(&nobody, 1).unwrap_err(),
        "redis refused a command to this user (acl)",
    );
    assert_auth(
        &conn_unrecorded::enqueue(&nobody, 1).unwrap_err(),
        "redis refused a command to this user (acl)",
    );
    let before = RAN.load(Ordering::SeqCst);
    assert!(conn_counted::enqueue_or_run(&nobody, 2).is_err());
    assert_eq!(RAN.load(Ordering::SeqCst), before, "not run inline");

    // Reads only: the worker's probe answers, but registering its queues is a write.
    acl_user(
        &server,
        "reader",
        &["~*", "+@read", "+ping", "+info", "+config|get"],
    );
    let reader = backend_at(&server.url_as(Some("reader"), "pw"));
    reader.ping().unwrap();
    let err = redisq::Worker::builder(reader)
        .queues(["conn"])
        .start()
        .map(|worker| worker.shutdown())
        .expect_err("a user who may not write stops the start");
    assert_auth(&err, "redis refused a command to this user (acl)");
}

#[test]
fn settings_refused_to_an_acl_user_are_unknown() {
    let server = RedisServer::builder().requirepass("s3cret").start();
    acl_user(&server, "app", &["~*", "&*", "+@all", "-config"]);
    let app = backend_at(&server.url_as(Some("app"), "pw"));
    let health = app.health().unwrap();
    assert!(health.reachable, "{health:?}");
    assert_eq!(health.settings.maxmemory_policy, None, "{health:?}");
    assert_eq!(health.settings.appendonly, None, "{health:?}");
    assert_eq!(
        health.settings.role.as_deref(),
        Some("master"),
        "INFO is allowed"
    );
    assert_eq!(health.durability.redis_restart, Survival::Unknown);
    assert_eq!(health.durability.worker_crash, Survival::Survives);
    // The worker starts all the same.
    let worker = redisq::Worker::builder(app)
        .queues(["conn"])
        .start()
        .unwrap();
    worker.shutdown();
}

#[test]
fn health_says_what_an_acknowledged_enqueue_survives() {
    // appendonly yes, appendfsync always, no eviction: only a failover can lose it.
    let aof = RedisServer::builder().aof().start();
    let health = backend_at(&aof.url()).health().unwrap();
    assert!(health.reachable, "{health:?}");
    assert_eq!(health.settings.appendonly, Some(true));
    assert_eq!(health.settings.appendfsync.as_deref(), Some("always"));
    assert_eq!(
        health.settings.maxmemory_policy.as_deref(),
        Some("noeviction")
    );
    assert_eq!(health.settings.role.as_deref(), Some("master"));
    assert_eq!(health.settings.connected_replicas, Some(0));
    assert_eq!(health.durability.worker_crash, Survival::Survives);
    assert_eq!(health.durability.redis_restart, Survival::Survives);
    assert_eq!(health.durability.failover, Survival::NotGuaranteed);
    assert!(health.warnings.is_empty(), "{:?}", health.warnings);

    // everysec, and a policy that evicts any key at the limit.
    let evicting = RedisServer::builder()
        .aof()
        .config("appendfsync", "everysec")
        .maxmemory(64 << 20)
        .config("maxmemory-policy", "allkeys-lru")
        .start();
    let health = backend_at(&evicting.url()).health().unwrap();
    assert_eq!(health.durability.redis_restart, Survival::LosesLastSecond);
    assert_eq!(health.settings.maxmemory, Some(64 << 20));
    assert_eq!(health.warnings.len(), 1, "{:?}", health.warnings);
    assert!(
        health.warnings[0].starts_with("maxmemory-policy is allkeys-lru: at maxmemory"),
        "{:?}",
        health.warnings
    );
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["durability"]["redis_restart"], "loses_last_second");
    assert_eq!(json["settings"]["maxmemory_policy"], "allkeys-lru");

    // No persistence at all (the test servers' default).
    let volatile = RedisServer::builder()
        .config("maxmemory-policy", "volatile-lru")
        .start();
    let health = backend_at(&volatile.url()).health().unwrap();
    assert_eq!(health.durability.redis_restart, Survival::Lost);
    assert_eq!(health.warnings.len(), 2, "{:?}", health.warnings);
    assert!(health.warnings[0].contains("evicts keys that have a ttl; redisq's queues"));
    assert!(health.warnings[1].starts_with("redis persists nothing"));
}

/// A private server with a 4 MiB `maxmemory` and `noeviction`, filled until it refuses
/// even a tiny write, and the connection that filled it. It fills with 64 KiB values, then,
/// on a new connection, with small ones: client buffers count as used memory, so a refused
/// large write, or the large writer leaving, would leave room for small ones. Keep the
/// connection until the test ends, for the same reason.
fn full_server() -> (RedisServer, redis::Connection) {
    let server = RedisServer::builder()
        .maxmemory(4 << 20)
        .config("maxmemory-policy", "noeviction")
        .start();
    fill(&mut server.connection(), &[64 << 10]);
    let mut con = server.connection();
    fill(&mut con, &[1 << 10, 8]);
    (server, con)
}

/// Writes values of each size in turn until Redis refuses one (`OOM`).
fn fill(con: &mut redis::Connection, sizes: &[usize]) {
    for &size in sizes {
        let value = vec![b'x'; size];
        for i in 0.. {
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("fill:{size}:{i}"))
                .arg(&value)
                .query(con);
            if let Err(err) = set {
                assert_eq!(err.code(), Some("OOM"), "{err}");
                break;
            }
            assert!(i < 100_000, "4 MiB should be full by now");
        }
    }
}

#[test]
fn a_full_redis_is_out_of_memory_for_producers() {
    let (server, _filler) = full_server();
    let backend = backend_at(&server.url());
    for err in [
        conn_noop::enqueue(&backend, 1).unwrap_err(),
        conn_unrecorded::enqueue(&backend, 1).unwrap_err(),
        conn_noop::enqueue_in(&backend, Duration::from_secs(60), 1).unwrap_err(),
    ] {
        assert!(matches!(err, redisq::Error::OutOfMemory(_)), "{err:?}");
        assert!(err.is_retryable() && !err.is_unavailable(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("redis is out of memory (maxmemory reached) and refused the write"),
            "{err}"
        );
    }
    // Redis is up: the inline fallback does not run.
    let before = RAN.load(Ordering::SeqCst);
    let err = conn_counted::enqueue_or_run(&backend, 2).unwrap_err();
    assert!(matches!(err, redisq::Error::OutOfMemory(_)), "{err:?}");
    assert_eq!(RAN.load(Ordering::SeqCst), before, "not run inline");
    assert_eq!(backend.pending("conn").unwrap(), 0, "nothing was enqueued");

    let health = backend.health().unwrap();
    assert!(
        health
            .warnings
            .iter()
            .any(|w| w.starts_with("redis uses ") && w.contains("of its maxmemory")),
        "{:?}",
        health.warnings
    );
}

/// Workers drain a queue while Redis is at its memory limit (the scripts that only move
/// tasks may run there: `#!lua flags=allow-oom`).
#[test]
fn workers_drain_a_full_redis() {
    let server = RedisServer::builder()
        .maxmemory(4 << 20)
        .config("maxmemory-policy", "noeviction")
        .start();
    let backend = backend_at(&server.url());
    let mut queued = 0;
    loop {
        match conn_counted::enqueue(&backend, queued) {
            Ok(_) => queued += 1,
            Err(redisq::Error::OutOfMemory(_)) => break,
            Err(err) => panic!("{err}"),
        }
    }
    let before = RAN.load(Ordering::SeqCst);
    let worker = redisq::Worker::builder(backend.clone())
        .queues(["conn"])
        .start()
        .unwrap();
    redisq_test_support::wait_until(Duration::from_secs(20), "the queue to drain", || {
        RAN.load(Ordering::SeqCst) >= before + queued as usize
    });
    worker.shutdown();
}
