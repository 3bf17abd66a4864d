//! TLS and ACL users against a private `redis-server` with a TLS port, certificates made
//! by `openssl` for this test (a CA, the server's certificate for 127.0.0.1, a client
//! certificate the server requires), and the minimal ACL user of the README: enqueue,
//! run, retry, dead-letter, read records and statistics as that user over `rediss://`; a
//! user without access to the namespace gets a clear error, not a hang; credentials
//! never show in `Debug` output or errors.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use redisq::{fifo, RedisQueueBackend, TaskStatus, Tls, Worker};
use redisq_test_support::{init_logging, wait_until, RedisServer};

/// The minimal ACL of a redisq user limited to namespace `ns`: its keys, the commands
/// redisq sends (and its scripts call), nothing else. The README quotes it.
const MINIMAL_ACL: &str = "on >s3cret-pw ~ns:* resetchannels -@all +fcall +function|load \
+rpush +lpush +hincrby +hset +hget +hgetall +hmget +hdel +hexists +hkeys +hlen +sadd \
+smembers +llen +lrange +lindex +lmove +lpop +rpop +lset +ltrim +zadd +zrem +zscore +zcard \
+zrange +zrevrange +zrangebyscore +blpop +ping +time +info +wait +scan +unlink +del +exists \
+expire +persist +pttl +set +get +select +asking +cluster|slots";

#[fifo(queue = "tls")]
fn double(n: u64) -> Result<u64, String> {
    if n == 13 {
        return Err("unlucky".to_owned());
    }
    Ok(n * 2)
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=redisq test CA",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "1",
                "-extfile",
                "san.ext",
            ],
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tls(dir: &Path) -> Tls {
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    Tls::default()
        .with_root_ca(read("ca.crt"))
        .with_client_certificate(read("client.crt"), read("client.key"))
}

#[test]
fn a_minimal_acl_user_over_tls_runs_everything_and_an_outsider_gets_a_clear_error() {
    init_logging();
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let path = |name: &str| certs.path().join(name).display().to_string();
    let tls_port = free_port();
    let server = RedisServer::builder()
        .config("tls-port", &tls_port.to_string())
        .config("tls-cert-file", &path("server.crt"))
        .config("tls-key-file", &path("server.key"))
        .config("tls-ca-cert-file", &path("ca.crt"))
        .config("tls-auth-clients", "yes")
        .start();
    let mut admin = server.connection();
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("redisq");
    for rule in MINIMAL_ACL.split(' ') {
        setuser.arg(rule);
    }
    let _: () = setuser.query(&mut admin).unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("outsider")
        .arg("on")
        .arg(">other-pw")
        .arg("~other:*")
        .arg("+@all")
        .query(&mut admin)
        .unwrap();

    let url = format!("rediss://redisq:s3cret-pw@127.0.0.1:{tls_port}");
    let backend = RedisQueueBackend::with_tls(&url, Some(tls(certs.path())))
        .unwrap()
        .with_namespace("ns")
        .with_block_timeout(Duration::from_millis(200))
        .with_retry_backoff(Duration::ZERO, Duration::ZERO);
    assert!(!format!("{backend:?}").contains("s3cret"), "{backend:?}");
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
        &format!("rediss://outsider:other-pw@127.0.0.1:{tls_port}"),
        Some(tls(certs.path())),
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
    let wrong = RedisQueueBackend::with_tls(
        &format!("rediss://redisq:not-the-pw@127.0.0.1:{tls_port}"),
        Some(tls(certs.path())),
    )
    .unwrap();
    let err = wrong.ping().unwrap_err();
    assert!(matches!(err, redisq::Error::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-pw") && !format!("{err:?}").contains("not-the-pw"));
    // Without the client certificate the server refuses the TLS handshake.
    let anonymous = RedisQueueBackend::with_tls(
        &url,
        Some(Tls::default().with_root_ca(std::fs::read(certs.path().join("ca.crt")).unwrap())),
    )
    .unwrap()
    .with_timeout(Duration::from_secs(2));
    assert!(anonymous.ping().is_err());
    drop(server);
}
