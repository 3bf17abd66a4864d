//! End-to-end tests of the job API through HTTP, against the real Redis (`REDIS_URL`,
//! default loopback).
//!
//! Each test starts its servers in this process on a port of its own, with a Redis
//! namespace (`test-jobs-<uuid>`) of its own whose keys are deleted when the test ends
//! (its [`Namespace`] drops with the [`Env`]). The processing delay is process-wide: every test of this binary runs
//! with 0.05 s ([`Env::new`] sets it first). The last test runs two `jobs_worker` processes,
//! which it builds with cargo. Waits have deadlines.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redisq::RedisQueueBackend;
use redisq_examples::jobs::{self, task, Config};
use redisq_test_support::{init_logging, redis_url, Namespace, RedisServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::spawn_blocking;

const DEADLINE: Duration = Duration::from_secs(30);

/// A test's own Redis namespace.
struct Env {
    namespace: Namespace,
    backend: RedisQueueBackend,
    http: reqwest::Client,
}

impl Env {
    fn new() -> Env {
        init_logging();
        task::set_processing_delay(Duration::from_millis(50));
        let namespace = Namespace::new().with_label("jobs");
        let backend = namespace.backend();
        Env {
            namespace,
            backend,
            http: reqwest::Client::new(),
        }
    }

    fn config(&self, embedded_workers: usize) -> Config {
        let mut config = Config::default();
        config.redis_url = Some(redis_url());
        config.namespace = self.namespace.name().to_owned();
        config.embedded_workers = embedded_workers;
        config
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn post(&self, server: &Server, body: &Value) -> (StatusCode, Value) {
        self.send(self.http.post(server.url("/jobs")).json(body))
            .await
    }

    async fn post_raw(&self, server: &Server, body: Vec<u8>) -> (StatusCode, Value) {
        let request = self
            .http
            .post(server.url("/jobs"))
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await
    }

    async fn get(&self, server: &Server, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(server.url(path))).await
    }

    /// Submits a job and returns its id.
    async fn submit(&self, server: &Server, name: &str, value: i64) -> String {
        let (status, body) = self
            .post(
                server,
                &json!({"name": name, "value": value, "message": "hi"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "accepted");
        body["job_id"].as_str().expect("job_id").to_owned()
    }

    /// Polls the job until its status is `done` or `failed`.
    async fn finished(&self, server: &Server, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get(server, &format!("/jobs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["status"] == "done" || body["status"] == "failed" {
                return body;
            }
            assert!(started.elapsed() < DEADLINE, "job {id} still {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Server = support::Server<jobs::Error>;

/// Starts the example's server on a free port, in this process.
async fn start(config: Config) -> Server {
    Server::start(|listener, shutdown| jobs::serve(config, listener, shutdown)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_accepted_then_done_with_its_result() {
    let env = Env::new();
    let server = start(env.config(2)).await;
    let started = Instant::now();
    let (status, body) = env
        .post(
            &server,
            &json!({"name": "demo", "value": 21, "message": "hello", "metadata": {"k": "v"}}),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["message"],
        "Job queued successfully. Poll GET /jobs/{job_id} for status."
    );
    let id = body["job_id"].as_str().expect("job_id").to_owned();
    let done = env.finished(&server, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["job_id"], id.as_str());
    let result = &done["result"];
    assert_eq!(result["message"], "Demo processing complete for 'demo'");
    assert_eq!(
        result["input_echo"],
        json!({"name": "demo", "value": 21, "message": "hello", "metadata": {"k": "v"},
               "processed_value": 42})
    );
    assert!(done["processing_duration_ms"].as_u64().expect("duration") >= 50);
    for field in ["started_at", "completed_at"] {
        let at = done[field].as_str().expect(field);
        chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    }

    let (status, stats) = env.get(&server, "/queue/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["counts"]["processed"], 1, "{stats}");
    assert_eq!(stats["queue_length"], 0);
    let (status, health) = env.get(&server, "/health").await;
    assert_eq!(
        (status, &health["status"]),
        (StatusCode::OK, &json!("healthy"))
    );
    assert_eq!(health["queue_connected"], true);
    let (status, cleanup) = env.send(env.http.post(server.url("/queue/cleanup"))).await;
    assert_eq!((status, cleanup), (StatusCode::OK, json!({"recovered": 0})));
    let metrics = env
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.expect("text").contains("redisq_"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_report_their_position() {
    let env = Env::new();
    let server = start(env.config(0)).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(env.submit(&server, "queued", i).await);
    }
    for (position, id) in ids.iter().enumerate() {
        let (status, body) = env.get(&server, &format!("/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "queued", "{body}");
        assert_eq!(body["queue_position"], position, "{body}");
        // Null until the queue has processed something in the last minute (no rate yet).
        let wait = &body["estimated_wait_seconds"];
        assert!(wait.is_null() || wait.is_number(), "{body}");
    }
    let (_, stats) = env.get(&server, "/queue/stats").await;
    assert_eq!(
        (&stats["queue_length"], &stats["processing"]),
        (&json!(3), &json!(0))
    );
    // A worker started now takes them all.
    let worker = {
        let backend = env.config(0).backend().expect("backend");
        spawn_blocking(move || jobs::start_workers(backend, 1))
            .await
            .expect("join")
            .expect("worker")
            .expect("one thread")
    };
    for id in &ids {
        assert_eq!(env.finished(&server, id).await["status"], "done");
    }
    spawn_blocking(move || worker.shutdown())
        .await
        .expect("join");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_reports_failed_without_retry() {
    let env = Env::new();
    let server = start(env.config(1)).await;
    let id = env.submit(&server, "fail", 1).await;
    let body = env.finished(&server, &id).await;
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["will_retry"], false);
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("failed on purpose"));
    let (_, stats) = env.get(&server, "/queue/stats").await;
    assert_eq!(stats["counts"]["dead"], 1, "{stats}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_unknown_ids_are_4xx_with_json_errors() {
    let env = Env::new();
    let server = start(env.config(0)).await;
    for path in [
        "/jobs/0123456789abcdef0123456789abcdef".to_owned(),
        "/jobs/nope".to_owned(),
        format!("/jobs/{}", "a".repeat(500)),
        "/jobs/a%2Fb".to_owned(),
        "/nowhere".to_owned(),
    ] {
        let (status, body) = env.get(&server, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string(), "{body}");
    }
    let cases: [(&[u8], StatusCode); 6] = [
        (b"{\"name\": \"a\", ", StatusCode::BAD_REQUEST),
        (b"not json", StatusCode::BAD_REQUEST),
        (b"", StatusCode::BAD_REQUEST),
        (
            b"{\"name\": \"a\", \"message\": \"m\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            b"{\"name\": \"a\", \"value\": \"x\", \"message\": \"m\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (b"[1, 2]", StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, expected) in cases {
        let (status, answer) = env.post_raw(&server, body.to_vec()).await;
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(body));
        assert_eq!(answer["status"], expected.as_u16());
        assert!(answer["error"].is_string());
    }
    let message = "x".repeat(70 * 1024);
    let big =
        serde_json::to_vec(&json!({"name": "a", "value": 1, "message": message})).expect("json");
    let (status, answer) = env.post_raw(&server, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].is_string());
    // Nothing was queued.
    let (_, stats) = env.get(&server, "/queue/stats").await;
    assert_eq!(stats["queue_length"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_is_503_with_retry_after() {
    let env = Env::new();
    let mut config = env.config(0);
    config.redis_url = Some("redis://127.0.0.1:1".to_owned());
    let server = start(config).await;
    let requests = [
        env.http
            .post(server.url("/jobs"))
            .json(&json!({"name": "a", "value": 1, "message": "m"})),
        env.http.get(server.url("/jobs/0123456789abcdef")),
        env.http.get(server.url("/queue/stats")),
        env.http.get(server.url("/health")),
        env.http.post(server.url("/queue/cleanup")),
        env.http.get(server.url("/metrics")),
    ];
    for request in requests {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let body: Value = response.json().await.expect("JSON");
        assert!(
            body["error"].is_string() || body["status"] == "degraded",
            "{body}"
        );
    }
    // Bad input is still told apart.
    let (status, _) = env.post_raw(&server, b"{".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

/// A `jobs_worker` process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(binary: &PathBuf, namespace: &str, delay: &str) -> WorkerProcess {
        let child = Command::new(binary)
            .env("REDIS_URL", redis_url())
            .env("REDISQ_NAMESPACE", namespace)
            .env("REDISQ_LEASE_MS", "1500")
            .env("WORKER_THREADS", "1")
            .env("WORKER_PROCESSING_DELAY", delay)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("jobs_worker starts");
        WorkerProcess(child)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_worker_killed_mid_job() {
    let binary = spawn_blocking(|| support::example_binary("jobs_worker"))
        .await
        .expect("join");
    let env = Env::new();
    let server = start(env.config(0)).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(env.submit(&server, "spread", i).await);
    }
    // The victim alone first, with slow jobs; once it holds one, the survivor starts.
    let victim = WorkerProcess::spawn(&binary, env.namespace.name(), "5");
    let started = Instant::now();
    loop {
        let backend = env.backend.clone();
        let stats = spawn_blocking(move || backend.queue_stats(jobs::QUEUE))
            .await
            .expect("join")
            .expect("stats");
        if stats.processing > 0 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the victim never took a job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let survivor = WorkerProcess::spawn(&binary, env.namespace.name(), "0.2");
    let survivor_pid = survivor.0.id();
    loop {
        let backend = env.backend.clone();
        let workers = spawn_blocking(move || backend.workers())
            .await
            .expect("join")
            .expect("workers");
        if workers.iter().any(|w| w.pid == survivor_pid && w.alive) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the survivor never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The victim is still in its first 5 s job: kill it (SIGKILL).
    drop(victim);
    let mut workers_seen = std::collections::BTreeSet::new();
    for id in &ids {
        let body = env.finished(&server, id).await;
        assert_eq!(body["status"], "done", "{body}");
        let backend = env.backend.clone();
        let task_id = redisq::TaskId::from(id.as_str());
        let info = spawn_blocking(move || backend.task(&task_id))
            .await
            .expect("join")
            .expect("task")
            .expect("record");
        workers_seen.insert(info.worker);
    }
    let (_, stats) = env.get(&server, "/queue/stats").await;
    assert_eq!(stats["counts"]["processed"], 8, "{stats}");
    assert_eq!(
        (&stats["queue_length"], &stats["processing"]),
        (&json!(0), &json!(0))
    );
    // The victim held a 5 s job when killed: that it is done means the survivor took it
    // again once the victim's lease ran out.
    eprintln!("jobs done by {} consumer(s)", workers_seen.len());
    drop(survivor);
    server.stop().await;
}

/// A private server with a 4 MiB `maxmemory` and `noeviction`, filled until it refuses a
/// tiny write, and the connection that filled it (client buffers count as used memory:
/// keep it open, and fill with small values last).
fn full_redis() -> (RedisServer, redis::Connection) {
    let server = RedisServer::builder()
        .maxmemory(4 << 20)
        .config("maxmemory-policy", "noeviction")
        .start();
    let mut con = server.connection();
    for size in [64 << 10, 1 << 10, 8] {
        let value = vec![b'x'; size];
        for i in 0.. {
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("fill:{size}:{i}"))
                .arg(&value)
                .query(&mut con);
            if let Err(err) = set {
                assert_eq!(err.code(), Some("OOM"), "{err}");
                break;
            }
            assert!(i < 100_000, "4 MiB should be full by now");
        }
    }
    (server, con)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_out_of_memory_is_503_with_retry_after() {
    let env = Env::new();
    let (redis, filler) = spawn_blocking(full_redis).await.expect("fill");
    let mut config = env.config(0);
    config.redis_url = Some(redis.url());
    let server = start(config).await;
    let response = env
        .http
        .post(server.url("/jobs"))
        .json(&json!({"name": "a", "value": 1, "message": "m"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: Value = response.json().await.expect("JSON");
    let message = body["error"].as_str().expect("an error");
    assert!(
        message.starts_with("queue full, nothing was queued: redis is out of memory"),
        "{body}"
    );
    // Reads still work.
    let (status, body) = env.get(&server, "/queue/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queue_length"], 0);
    server.stop().await;
    drop(filler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_500_and_stop_the_workers_start() {
    let env = Env::new();
    let redis = RedisServer::builder().requirepass("s3cret").start();
    let mut config = env.config(0);
    config.redis_url = Some(redis.url_as(None, "typo"));
    let server = start(config.clone()).await;
    let (status, body) = env
        .post(&server, &json!({"name": "a", "value": 1, "message": "m"}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let message = body["error"].as_str().expect("an error");
    assert!(
        message.starts_with("queue misconfigured: redis refused the credentials"),
        "{body}"
    );
    server.stop().await;

    // With embedded workers, the server does not start.
    config.embedded_workers = 1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let served = jobs::serve(config, listener, std::future::pending()).await;
    assert!(served.is_err(), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_503_while_redis_is_down_and_recovers_by_itself() {
    let env = Env::new();
    let mut redis = RedisServer::start();
    let mut config = env.config(0);
    config.redis_url = Some(redis.url());
    let server = start(config).await;
    let submit = || {
        env.http
            .post(server.url("/jobs"))
            .json(&json!({"name": "a", "value": 1, "message": "m"}))
            .send()
    };
    assert_eq!(
        submit().await.expect("request").status(),
        StatusCode::ACCEPTED
    );

    redis.kill();
    let response = submit().await.expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    let health = env
        .http
        .get(server.url("/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Redis returns on the same port: the same server accepts again, without a restart.
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = submit().await.expect("request").status();
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            std::time::Instant::now() < deadline,
            "the API did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = env
        .http
        .get(server.url("/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), StatusCode::OK);
}
