//! The support crate's own tests: private servers start, answer, die and come back with
//! what their append-only file holds; namespaces leave nothing behind; waits time out.

use std::path::Path;
use std::time::{Duration, Instant};

use redisq_test_support::{raw, wait_until, Namespace, RedisServer};

fn ping(con: &mut redis::Connection) -> redis::RedisResult<String> {
    redis::cmd("PING").query(con)
}

/// Whether anything accepts a Redis connection at `url` now.
fn reachable(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut c| ping(&mut c))
        .is_ok()
}

#[test]
fn a_server_starts_answers_and_is_killed() {
    let mut server = RedisServer::start();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_ne!(server.port(), 6379);
    assert_eq!(ping(&mut server.connection()).expect("ping"), "PONG");
    let pid = server.pid().expect("running");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut server.connection())
        .expect("info");
    assert!(info.contains(&format!("process_id:{pid}")), "{info}");

    server.kill();
    assert_eq!(server.pid(), None);
    assert!(!reachable(&server.url()), "still answers after the kill");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "not reaped");
    server.kill(); // a second kill does nothing
}

#[test]
fn an_aof_server_restarts_on_its_port_with_its_data() {
    let mut server = RedisServer::builder().aof().start();
    let (port, dir) = (server.port(), server.dir().to_owned());
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query(&mut server.connection())
        .expect("config get");
    assert_eq!(config, ["appendfsync", "always"]);
    let _: () = redis::cmd("SET")
        .arg("kept")
        .arg("yes")
        .query(&mut server.connection())
        .expect("set");
    let first = server.pid();

    server.kill();
    assert!(!reachable(&server.url()));
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.dir(), dir);
    assert_ne!(server.pid(), first);
    let kept: Option<String> = redis::cmd("GET")
        .arg("kept")
        .query(&mut server.connection())
        .expect("get");
    assert_eq!(kept.as_deref(), Some("yes"));

    // A restart of a running server kills it first.
    server.restart();
    assert_eq!(server.port(), port);
}

#[test]
fn without_persistence_a_restart_starts_empty() {
    let mut server = RedisServer::builder().maxmemory(64 << 20).start();
    let maxmemory: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut server.connection())
        .expect("config get");
    assert_eq!(maxmemory, ["maxmemory", (64u64 << 20).to_string().as_str()]);
    let _: () = redis::cmd("SET")
        .arg("lost")
        .arg("yes")
        .query(&mut server.connection())
        .expect("set");
    server.kill();
    server.restart();
    let lost: Option<String> = redis::cmd("GET")
        .arg("lost")
        .query(&mut server.connection())
        .expect("get");
    assert_eq!(lost, None);
}

#[test]
fn dropping_a_server_stops_it_and_removes_its_directory() {
    let server = RedisServer::builder().aof().start();
    let (url, dir, pid) = (
        server.url(),
        server.dir().to_owned(),
        server.pid().expect("running"),
    );
    assert!(dir.join("redis.log").exists());
    drop(server);
    assert!(!reachable(&url));
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn servers_started_together_get_ports_of_their_own() {
    let servers: Vec<RedisServer> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..4).map(|_| scope.spawn(RedisServer::start)).collect();
        starts
            .into_iter()
            .map(|s| s.join().expect("start"))
            .collect()
    });
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(ping(&mut server.connection()).expect("ping"), "PONG");
    }
}

/// Writes `count` keys under the namespace, and one beside it.
fn fill(con: &mut dyn redis::ConnectionLike, ns: &Namespace, count: usize) -> String {
    let mut pipe = redis::pipe();
    for n in 0..count {
        pipe.cmd("SET")
            .arg(format!("{}:k{n}", ns.name()))
            .arg(n)
            .ignore();
    }
    pipe.cmd("RPUSH")
        .arg(ns.key("q", "pending"))
        .arg("x")
        .ignore();
    let beside = format!("{}-beside", ns.name());
    pipe.cmd("SET").arg(&beside).arg(1).ignore();
    pipe.query::<()>(con).expect("fill");
    beside
}

#[test]
fn a_namespace_removes_its_keys_on_drop() {
    let ns = Namespace::new();
    let name = ns.name().to_owned();
    let mut con = raw();
    let beside = fill(&mut con, &ns, 2500);
    assert_eq!(ns.keys().len(), 2501);
    assert_eq!(ns.llen("q", "pending"), 1);
    drop(ns);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{name}:*"))
        .query(&mut con)
        .expect("keys");
    assert!(left.is_empty(), "{} keys left", left.len());
    let kept: bool = redis::cmd("EXISTS")
        .arg(&beside)
        .query(&mut con)
        .expect("exists");
    assert!(kept, "a key outside the namespace was deleted");
    let _: () = redis::cmd("DEL").arg(&beside).query(&mut con).expect("del");
}

#[test]
fn a_namespace_on_a_private_server_and_its_backend() {
    let server = RedisServer::start();
    let ns = Namespace::on(server.url()).with_label("support");
    assert!(ns.name().starts_with("test-support-"));
    let backend = ns.backend();
    assert_eq!(backend.namespace(), ns.name());
    ns.rpush("q", r#"{"name":"nobody"}"#);
    assert_eq!(backend.pending("q").expect("pending"), 1);
    let beside = fill(&mut server.connection(), &ns, 10);
    assert_eq!(ns.delete_keys().expect("delete"), 11);
    assert!(ns.keys().is_empty());
    let kept: bool = redis::cmd("EXISTS")
        .arg(&beside)
        .query(&mut server.connection())
        .expect("exists");
    assert!(kept);
}

#[test]
fn wait_until_returns_once_the_condition_holds() {
    let start = Instant::now();
    let mut calls = 0;
    wait_until(Duration::from_secs(10), "the third call", || {
        calls += 1;
        calls == 3
    });
    assert_eq!(calls, 3);
    wait_until(start + Duration::from_secs(10), "a shared deadline", || {
        true
    });
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_until_panics_past_its_deadline() {
    wait_until(Duration::from_millis(50), "the impossible", || false);
}
