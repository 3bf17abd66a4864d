//! The `redisq` binary as a user runs it, against the real Redis server: state is set up
//! with the library (tasks enqueued and run, dead letters made, leases planted) in a
//! namespace of each test's own, removed at the end, and the binary's output and exit
//! code are checked.

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use redisq::{fifo, RedisQueueBackend, TaskId, Worker};
use redisq_test_support::{raw, redis_url, wait_until, Namespace, RedisServer};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

#[fifo(queue = "cli")]
fn double(n: u64) -> u64 {
    n * 2
}

#[fifo(queue = "cli-keyed", key = "device")]
fn point(device: String, n: u64) -> String {
    format!("{device}{n}")
}

/// A namespace of one test's own (`test-cli-<id>`), its keys deleted on drop, with a
/// backend in it. It derefs to the [`Namespace`] for `name`, `key` and `rpush`.
struct Ns {
    backend: RedisQueueBackend,
    namespace: Namespace,
}

impl Ns {
    fn new() -> Ns {
        let namespace = Namespace::new().with_label("cli");
        Ns {
            backend: namespace.backend(),
            namespace,
        }
    }

    /// `redisq --url … --namespace <ns> ARGS`, its standard input closed.
    fn redisq(&self, args: &[&str]) -> Output {
        redisq(
            &[
                &["--url", &redis_url(), "--namespace", self.name()][..],
                args,
            ]
            .concat(),
        )
    }

    /// Runs a worker on `queue` until `done` holds.
    fn work_until(&self, queue: &str, what: &str, mut done: impl FnMut() -> bool) {
        let worker = Worker::builder(self.backend.clone())
            .queues([queue])
            .start()
            .expect("worker starts");
        wait_until(WAIT, what, &mut done);
        worker.shutdown();
    }

    fn dead_count(&self, queue: &str) -> usize {
        self.backend.dead_count(queue).expect("dead count")
    }

    /// `count` more dead letters in `queue`: payloads naming a task no binary has.
    fn make_dead(&self, queue: &str, count: usize) {
        let before = self.dead_count(queue);
        for _ in 0..count {
            self.rpush(queue, r#"{"name":"nobody"}"#);
        }
        self.work_until(queue, "dead letters", || {
            self.dead_count(queue) == before + count
        });
    }
}

impl Deref for Ns {
    type Target = Namespace;

    fn deref(&self) -> &Namespace {
        &self.namespace
    }
}

/// The binary with `args`, its standard input closed.
fn redisq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redisq"))
        .args(args)
        .env_remove("REDISQ_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

fn json(output: &Output) -> Value {
    assert_exit(output, 0);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(output)))
}

#[test]
fn info_and_task_show_processed_tasks() {
    let ns = Ns::new();
    let ids: Vec<TaskId> = (1..=3)
        .map(|n| double::enqueue(&ns.backend, n).expect("enqueue"))
        .collect();
    ns.work_until("cli", "three tasks done", || {
        ids.iter().all(|id| {
            ns.backend
                .task(id)
                .ok()
                .flatten()
                .is_some_and(|t| t.status.is_finished())
        })
    });

    let stats = json(&ns.redisq(&["info", "--json"]));
    assert_eq!(stats["queue_stats"]["cli"]["processed"], 3, "{stats:#}");
    assert_eq!(stats["redis_connected"], true);

    let table = ns.redisq(&["info"]);
    assert_exit(&table, 0);
    let text = stdout(&table);
    assert!(text.contains("PROCESSED"), "{text}");
    let row = text
        .lines()
        .find(|line| line.starts_with("cli "))
        .unwrap_or_else(|| panic!("no row for the queue:\n{text}"));
    assert_eq!(
        row.split_whitespace().nth(7),
        Some("3"),
        "processed column: {row}"
    );

    let task = json(&ns.redisq(&["task", ids[1].as_str(), "--json"]));
    assert_eq!(task["status"], "done", "{task:#}");
    assert_eq!(task["result"], 4, "{task:#}");
    assert_eq!(task["queue"], "cli");

    let human = ns.redisq(&["task", ids[1].as_str()]);
    assert_exit(&human, 0);
    let text = stdout(&human);
    assert!(text.contains("status:") && text.contains("done"), "{text}");
    assert!(text.contains("result:") && text.contains('4'), "{text}");

    let unknown = ns.redisq(&["task", "no-such-task"]);
    assert_exit(&unknown, 1);
    assert!(
        stderr(&unknown).contains("task no-such-task not found (unknown or expired)"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn info_shows_ordering_keys_and_task_its_key() {
    let ns = Ns::new();
    let mut ids = Vec::new();
    for (device, n) in [("a", 1), ("a", 2), ("b", 1), ("a", 3)] {
        ids.push(point::enqueue(&ns.backend, device.to_owned(), n).expect("enqueue"));
    }
    let table = ns.redisq(&["info"]);
    assert_exit(&table, 0);
    let text = stdout(&table);
    assert!(
        text.contains("cli-keyed: 4 tasks over 2 keys, 0 held for a retry; busiest: a (3), b (1)"),
        "{text}"
    );
    let stats = json(&ns.redisq(&["info", "--json"]));
    let queue = &stats["queue_stats"]["cli-keyed"];
    assert_eq!(queue["keyed"], 4, "{stats:#}");
    assert_eq!(queue["busiest_keys"][0]["key"], "a", "{stats:#}");
    let task = ns.redisq(&["task", ids[2].as_str()]);
    let text = stdout(&task);
    assert!(
        text.lines()
            .any(|l| l.starts_with("key:") && l.ends_with(" b")),
        "{text}"
    );
}

#[test]
fn info_watch_prints_one_json_object_a_line() {
    let ns = Ns::new();
    double::enqueue(&ns.backend, 1).expect("enqueue");
    let mut child = Command::new(env!("CARGO_BIN_EXE_redisq"))
        .args(["--url", &redis_url(), "--namespace", ns.name()])
        .args(["info", "--json", "--watch", "0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for _ in 0..2 {
        let line = lines.next().expect("a line").expect("readable");
        let stats: Value = serde_json::from_str(&line).expect("one JSON object a line");
        assert_eq!(stats["queue_stats"]["cli"]["queue_size"], 1, "{stats:#}");
    }
    child.kill().expect("kill");
    let _ = child.wait();
}

#[test]
fn dead_letters_list_requeue_and_purge() {
    let ns = Ns::new();
    ns.make_dead("dq", 2);

    let list = ns.redisq(&["dead", "list", "dq"]);
    assert_exit(&list, 0);
    let text = stdout(&list);
    assert!(
        text.contains("task `nobody` is not registered in this binary"),
        "{text}"
    );
    assert!(text.contains("1-2 of 2 dead letters"), "{text}");

    let records = json(&ns.redisq(&["dead", "list", "dq", "--json", "--limit", "1"]));
    let records = records.as_array().expect("an array");
    assert_eq!(records.len(), 1);
    let id = records[0]["id"].as_str().expect("an id").to_owned();
    assert_eq!(records[0]["name"], "nobody");

    let one = ns.redisq(&["dead", "requeue", "dq", &id]);
    assert_exit(&one, 0);
    assert!(
        stdout(&one).contains("requeued 1 dead letter"),
        "{}",
        stdout(&one)
    );
    assert_eq!(ns.dead_count("dq"), 1);
    let again = ns.redisq(&["dead", "requeue", "dq", &id]);
    assert_exit(&again, 1);

    let all = ns.redisq(&["dead", "requeue", "dq", "--all"]);
    assert_exit(&all, 0);
    assert!(
        stdout(&all).contains("requeued 1 dead letters"),
        "{}",
        stdout(&all)
    );
    assert_eq!(ns.dead_count("dq"), 0);
    assert_eq!(ns.backend.pending("dq").expect("pending"), 2);

    // Back to the dead letters, then purged.
    ns.work_until("dq", "dead again", || ns.dead_count("dq") == 2);
    let refused = ns.redisq(&["dead", "purge", "dq"]);
    assert_exit(&refused, 2);
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert_eq!(ns.dead_count("dq"), 2);

    let purge = ns.redisq(&["dead", "purge", "dq", "--yes"]);
    assert_exit(&purge, 0);
    assert!(
        stdout(&purge).contains("purged 2 dead letters"),
        "{}",
        stdout(&purge)
    );
    assert_eq!(ns.dead_count("dq"), 0);

    let empty = ns.redisq(&["dead", "list", "dq"]);
    assert_exit(&empty, 0);
    assert!(
        stdout(&empty).contains("no dead letters"),
        "{}",
        stdout(&empty)
    );
}

#[test]
fn recover_moves_the_tasks_of_an_expired_lease() {
    let ns = Ns::new();
    // A consumer that died holding one task, its lease long run out (the documented keys).
    let mut con = raw();
    let _: () = redis::cmd("RPUSH")
        .arg(ns.key("rq", "claimed:dead-worker-0"))
        .arg(r#"{"id":"t1","name":"nobody"}"#)
        .query(&mut con)
        .expect("rpush");
    let _: () = redis::cmd("ZADD")
        .arg(ns.key("rq", "leases"))
        .arg(1)
        .arg("dead-worker-0")
        .query(&mut con)
        .expect("zadd");

    let one = ns.redisq(&["recover", "rq"]);
    assert_exit(&one, 0);
    assert!(
        stdout(&one).contains("recovered 1 tasks"),
        "{}",
        stdout(&one)
    );
    assert_eq!(ns.backend.pending("rq").expect("pending"), 1);

    let all = ns.redisq(&["recover"]);
    assert_exit(&all, 0);
    assert!(
        stdout(&all).contains("recovered 0 tasks"),
        "{}",
        stdout(&all)
    );
}

#[test]
fn health_reports_a_reachable_server() {
    let ns = Ns::new();
    let text = ns.redisq(&["health"]);
    assert_exit(&text, 0);
    assert!(
        stdout(&text).contains("reachable:  yes"),
        "{}",
        stdout(&text)
    );
    let report = json(&ns.redisq(&["health", "--json"]));
    assert_eq!(report["reachable"], true, "{report:#}");
    assert!(report["version"].is_string(), "{report:#}");
}

#[test]
fn health_prints_the_settings_what_an_enqueue_survives_and_warnings() {
    let server = RedisServer::builder()
        .aof()
        .maxmemory(64 << 20)
        .config("maxmemory-policy", "allkeys-lru")
        .start();
    let output = redisq(&["--url", &server.url(), "health"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    let line = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{label}:")))
            .map(|l| l.split_once(':').map_or("", |(_, v)| v.trim()).to_owned())
    };
    assert_eq!(line("maxmemory").as_deref(), Some("64.0 MiB"), "{text}");
    assert_eq!(
        line("maxmemory-policy").as_deref(),
        Some("allkeys-lru"),
        "{text}"
    );
    assert_eq!(line("appendonly").as_deref(), Some("yes"), "{text}");
    assert_eq!(line("appendfsync").as_deref(), Some("always"), "{text}");
    assert_eq!(
        line("role").as_deref(),
        Some("master, 0 replica(s) connected"),
        "{text}"
    );
    assert!(text.contains("an acknowledged enqueue survives"), "{text}");
    assert_eq!(
        line("a worker crash").as_deref(),
        Some("survives"),
        "{text}"
    );
    assert_eq!(
        line("a redis restart").as_deref(),
        Some("survives"),
        "{text}"
    );
    assert!(
        line("a failover").is_some_and(|v| v.starts_with("not guaranteed")),
        "{text}"
    );
    assert!(
        text.contains("warning: maxmemory-policy is allkeys-lru: at maxmemory"),
        "{text}"
    );

    let report = json(&redisq(&["--url", &server.url(), "health", "--json"]));
    assert_eq!(
        report["durability"]["redis_restart"], "survives",
        "{report:#}"
    );
    assert_eq!(report["settings"]["maxmemory_policy"], "allkeys-lru");
    assert_eq!(report["warnings"].as_array().map(Vec::len), Some(1));
}

#[test]
fn refused_credentials_are_a_clear_error() {
    let server = RedisServer::builder().requirepass("s3cret").start();
    for url in [
        server.url_as(None, "typo"),
        format!("redis://127.0.0.1:{}", server.port()),
    ] {
        for args in [&["health"][..], &["info"]] {
            let output = redisq(&[&["--url", url.as_str()][..], args].concat());
            assert_exit(&output, 1);
            let err = stderr(&output);
            assert!(
                err.starts_with("error: redis refused the credentials")
                    || err.starts_with("error: redis requires a password"),
                "{args:?}: {err}"
            );
            assert!(!err.contains("unavailable"), "{err}");
        }
    }
}

#[test]
fn unreachable_redis_is_a_clear_error_within_seconds() {
    for args in [&["info"][..], &["health"], &["dead", "list", "q"]] {
        let started = Instant::now();
        let output = redisq(
            &[
                &["--url", "redis://127.0.0.1:1", "--timeout", "2"][..],
                args,
            ]
            .concat(),
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains("error: redis is unavailable at redis://127.0.0.1:1"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["dead", "requeue", "q"],
        &["dead", "requeue", "q", "id", "--all"],
        &["info", "--watch", "0"],
        &["--timeout", "soon", "health"],
        &["--url", "not a url", "health"],
    ] {
        let output = redisq(args);
        assert_exit(&output, 2);
        assert!(!stderr(&output).is_empty(), "{args:?}");
    }
}
