//! TLS and ACL users against a private `redis-server` that speaks TLS only
//! (`scripts/redis-tls.sh`: certificates made by `openssl` — a CA, the server's for
//! 127.0.0.1, a client certificate the server requires — and the minimal ACL user of
//! `scripts/redisq.acl`, the default user off): enqueue, run, retry, dead-letter, read records and statistics as that user over `rediss://`; a
//! user without access to the namespace gets a clear error, not a hang; credentials
//! never show in `Debug` output or errors.

use std::time::{Duration, Instant};

use redisq::{fifo, RedisQueueBackend, TaskStatus, Tls, Worker};
use redisq_test_support::{init_logging, wait_until, RedisTls};

#[fifo(queue = "tls")]
fn double(n: u64) -> Result<u64, String> {
    if n == 13 {
        return Err("unlucky".to_owned());
    }
    Ok(n * 2)
}

fn tls(server: &RedisTls) -> Tls {
    let read = |name: &str| std::fs::read(server.var(name)).unwrap();
    Tls::default()
        .with_root_ca(read("REDIS_TLS_CA_FILE"))
        .with_client_certificate(read("REDIS_TLS_CERT_FILE"), read("REDIS_TLS_KEY_FILE"))
}

#[test]
fn a_minimal_acl_user_over_tls_runs_everything_and_an_outsider_gets_a_clear_error() {
    init_logging();
    let server = RedisTls::start("ns:*");
    let url = server.var("REDIS_URL").to_owned();
    assert!(url.starts_with("rediss://redisq:"));
    let backend = RedisQueueBackend::with_tls(&url, Some(tls(&server)))
        .unwrap()
        .with_namespace("ns")
        .with_block_timeout(Duration::from_millis(200))
        .with_retry_backoff(Duration::ZERO, Duration::ZERO);
    assert!(!format!("{backend:?}").contains("redisq-pw"), "{backend:?}");
    let ids: Vec<_> = (0..20)
        .map(|n| double::enqueue(&backend, n).unwrap())
        .collect();
    let workers = Worker::builder(backend.clone())
        .queues(["tls"])
        .start()
        .unwrap();
    for (n, id) in ids.iter().enumerate() {
        let info = backend.wait(id, Duration::from_secs(20)).unwrap().unwrap();
        if n == 13 {
            assert_eq!(info.status, TaskStatus::Dead);
        } else {
            assert_eq!(double::result(&backend, id).unwrap(), Some(n as u64 * 2));
        }
    }
    wait_until(Duration::from_secs(10), "the dead letter", || {
        backend
            .dead_letters("tls", 0, 10)
            .is_ok_and(|d| d.len() == 1)
    });
    assert_eq!(backend.requeue_all_dead("tls").unwrap(), 1);
    let stats = backend.stats().unwrap();
    assert!(stats.redis_connected && stats.queue_stats.contains_key("tls"));
    let health = backend.health().unwrap();
    assert!(health.reachable, "{health:?}");
    workers.shutdown();
    assert!(backend.purge_namespace().unwrap() > 0);

    // Outside its key pattern: refused at once with the reason, not a hang.
    let outsider = RedisQueueBackend::with_tls(
        &server.url_as("outsider", "outsider-pw"),
        Some(tls(&server)),
    )
    .unwrap()
    .with_namespace("ns");
    let started = Instant::now();
    let err = double::enqueue(&outsider, 1).unwrap_err();
    assert!(matches!(err, redisq::Error::Auth(_)), "{err:?}");
    assert!(
        err.to_string().contains("NOPERM") || err.to_string().contains("permission"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A wrong password: refused, and the password shows nowhere.
    let wrong =
        RedisQueueBackend::with_tls(&server.url_as("redisq", "not-the-pw"), Some(tls(&server)))
            .unwrap();
    let err = wrong.ping().unwrap_err();
    assert!(matches!(err, redisq::Error::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-pw") && !format!("{err:?}").contains("not-the-pw"));
    // Without the client certificate the server refuses the TLS handshake.
    let ca = std::fs::read(server.var("REDIS_TLS_CA_FILE")).unwrap();
    let anonymous = RedisQueueBackend::with_tls(&url, Some(Tls::default().with_root_ca(ca)))
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert!(anonymous.ping().is_err());

    // The same user from the environment: a URL without credentials, the user and password
    // in REDIS_USERNAME and REDIS_PASSWORD, the certificates in the REDIS_TLS_* files. (This
    // binary has one test, so no other thread reads the environment meanwhile.)
    let bare = server.url_as("x", "x").replace("x:x@", "");
    std::env::set_var("REDIS_URL", &bare);
    std::env::set_var("REDIS_USERNAME", "redisq");
    std::env::set_var("REDIS_PASSWORD", "redisq-pw");
    for name in [
        "REDIS_TLS_CA_FILE",
        "REDIS_TLS_CERT_FILE",
        "REDIS_TLS_KEY_FILE",
    ] {
        std::env::set_var(name, server.var(name));
    }
    let from_env = RedisQueueBackend::from_env().unwrap().with_namespace("ns");
    let id = double::enqueue(&from_env, 21).unwrap();
    let workers = Worker::builder(from_env.clone())
        .queues(["tls"])
        .start()
        .unwrap();
    assert_eq!(
        from_env
            .wait(&id, Duration::from_secs(20))
            .unwrap()
            .map(|info| info.status),
        Some(TaskStatus::Done)
    );
    workers.shutdown();
    assert!(!format!("{from_env:?}").contains("redisq-pw"));
    for name in [
        "REDIS_URL",
        "REDIS_USERNAME",
        "REDIS_PASSWORD",
        "REDIS_TLS_CA_FILE",
        "REDIS_TLS_CERT_FILE",
        "REDIS_TLS_KEY_FILE",
    ] {
        std::env::remove_var(name);
    }
    assert!(from_env.purge_namespace().unwrap() > 0);
    drop(server);
}
