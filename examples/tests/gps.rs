//! End-to-end tests of the GPS ingestion server through HTTP, against the real Redis
//! (`REDIS_URL`, default loopback) and PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) servers.
//!
//! Each test starts its servers in this process on a port of its own, with a Redis
//! namespace (`test-gps-<uuid>`) and a database schema (`gps_test_<uuid>`) of its own,
//! both removed when the test ends ([`Env`]'s `Drop`, and its [`Namespace`]'s). Waits have deadlines; none sleeps.

mod support;

use std::time::{Duration, Instant};

use redisq::RedisQueueBackend;
use redisq_examples::gps::{self, Config, Database, Kind, Table};
use redisq_test_support::{init_logging, redis_url, Namespace};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::spawn_blocking;

const DEADLINE: Duration = Duration::from_secs(20);

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A test's own Redis namespace and database schema, with a handle on its tables.
struct Env {
    namespace: Namespace,
    schema: String,
    db: Database,
    backend: RedisQueueBackend,
    http: reqwest::Client,
}

impl Env {
    async fn new() -> Env {
        init_logging();
        let namespace = Namespace::new().with_label("gps");
        let schema = format!("gps_test_{}", namespace.id());
        let db = {
            let schema = schema.clone();
            spawn_blocking(move || Database::connect(&database_url(), &schema, 2, 1000))
                .await
                .expect("join")
                .expect("PostgreSQL is running (scripts/ensure-postgres.sh starts it)")
        };
        let backend = namespace.backend();
        Env {
            namespace,
            schema,
            db,
            backend,
            http: reqwest::Client::new(),
        }
    }

    /// A server configuration for this test's namespace and schema.
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.database_url = database_url();
        config.db_schema = self.schema.clone();
        config.redis_url = Some(redis_url());
        config.namespace = self.namespace.name().to_owned();
        config.worker_threads = 2;
        config
    }

    async fn count(&self, table: Table) -> u64 {
        let db = self.db.clone();
        spawn_blocking(move || db.count(table))
            .await
            .expect("join")
            .expect("count")
    }

    /// Waits until `table` holds `expected` rows, then checks it holds no more.
    async fn wait_rows(&self, table: Table, expected: u64) {
        let started = Instant::now();
        let mut rows = self.count(table).await;
        while rows < expected && started.elapsed() < DEADLINE {
            tokio::time::sleep(Duration::from_millis(20)).await;
            rows = self.count(table).await;
        }
        assert_eq!(rows, expected, "rows of {}", table.name());
    }

    async fn queue_stats(&self, queue: &'static str) -> redisq::QueueStats {
        let backend = self.backend.clone();
        spawn_blocking(move || backend.queue_stats(queue))
            .await
            .expect("join")
            .expect("queue stats")
    }

    /// `(first, last)` insert time of `table`'s rows, as µs since the epoch.
    async fn insert_span(&self, table: Table) -> (i64, i64) {
        let db = self.db.clone();
        spawn_blocking(move || {
            let sql = format!(
                "SELECT (extract(epoch FROM min(inserted_at)) * 1e6)::int8, \
                        (extract(epoch FROM max(inserted_at)) * 1e6)::int8 FROM {}",
                db.qualified(table)
            );
            let row = db.client()?.query_one(sql.as_str(), &[])?;
            Ok::<_, gps::DbError>((row.get(0), row.get(1)))
        })
        .await
        .expect("join")
        .expect("insert span")
    }

    async fn post(&self, server: &Server, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(server.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn post_raw(&self, server: &Server, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .http
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn get(&self, server: &Server, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(server.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A blocking client, on a thread of its own: this may run on the test's runtime.
        // The namespace's keys go when it drops, after this.
        let schema = self.schema.clone();
        let cleanup = std::thread::spawn(move || {
            match postgres::Client::connect(&database_url(), postgres::NoTls) {
                Ok(mut client) => {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    if let Err(err) = client.batch_execute(&drop) {
                        eprintln!("could not drop schema {schema}: {err}");
                    }
                }
                Err(err) => eprintln!("could not drop schema {schema}: {err}"),
            }
        });
        let _ = cleanup.join();
    }
}

type Server = support::Server<gps::Error>;

/// Starts the example's server on a free port, in this process.
async fn start(config: Config) -> Server {
    Server::start(|listener, shutdown| gps::serve_on(listener, config, shutdown)).await
}

/// `n` distinct points of track (or device) `id`, one per second from `start` s.
fn points(id_field: &str, id: &str, start: usize, n: usize) -> Vec<Value> {
    (start..start + n)
        .map(|i| {
            json!({
                id_field: id,
                "timestamp": format!("2025-06-08T{:02}:{:02}:{:02}Z", i / 3600, (i / 60) % 60, i % 60),
                "lat": 45.0 + i as f64 * 1e-4,
                "lon": 6.0 + i as f64 * 1e-4,
                "altitude": 1000.0 + i as f64,
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_stores_the_unique_points_it_was_sent() {
    let env = Env::new().await;
    let server = start(env.config()).await;
    for kind in Kind::ALL {
        let id_field = if kind == Kind::Flymaster {
            "device_id"
        } else {
            "track_id"
        };
        let batch = points(id_field, "t1", 0, 250);
        let (status, body) = env
            .post(&server, kind.path(), &Value::Array(batch.clone()))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            body,
            json!({"status": "queued", "points": 250, "queue": kind.queue()})
        );
        // One point alone, then a request repeating 50 points sent already, one of them twice.
        let (status, body) = env
            .post(&server, kind.path(), &points(id_field, "t2", 0, 1)[0])
            .await;
        assert_eq!((status, &body["points"]), (StatusCode::ACCEPTED, &json!(1)));
        let mut again = batch[..50].to_vec();
        again.push(batch[7].clone());
        let (status, body) = env.post(&server, kind.path(), &Value::Array(again)).await;
        assert_eq!(
            (status, &body["points"]),
            (StatusCode::ACCEPTED, &json!(51))
        );
    }
    for kind in Kind::ALL {
        env.wait_rows(kind.table(), 251).await;
    }
    // What was sent is what is stored.
    let db = env.db.clone();
    let row = spawn_blocking(move || {
        let sql = format!(
            "SELECT device_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             lat, lon, altitude FROM {} WHERE device_id = 't1' ORDER BY ts LIMIT 1 OFFSET 61",
            db.qualified(Table::Flymaster)
        );
        db.client()
            .expect("client")
            .query_one(sql.as_str(), &[])
            .expect("row")
    })
    .await
    .expect("join");
    let stored = (
        row.get::<_, String>(0),
        row.get::<_, String>(1),
        row.get::<_, f64>(2),
        row.get::<_, f64>(3),
        row.get::<_, f64>(4),
    );
    let sent = &points("device_id", "t1", 61, 1)[0];
    assert_eq!(stored.0, "t1");
    assert_eq!(stored.1, sent["timestamp"]);
    assert_eq!(
        (stored.2, stored.3, stored.4),
        (
            sent["lat"].as_f64().expect("lat"),
            sent["lon"].as_f64().expect("lon"),
            sent["altitude"].as_f64().expect("altitude")
        )
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_points_go_first_when_every_queue_has_a_backlog() {
    let env = Env::new().await;
    // A server without workers takes the requests: the points wait in Redis.
    let mut config = env.config();
    config.worker_threads = 0;
    let server = start(config).await;
    // Sent lowest priority first, so that the order taken is not the order sent.
    for kind in Kind::ALL.into_iter().rev() {
        for k in 0..3 {
            let batch = Value::Array(points("track_id", &format!("t{k}"), 0, 200));
            let (status, body) = env.post(&server, kind.path(), &batch).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    }
    server.stop().await;
    for queue in gps::QUEUES {
        assert_eq!(env.queue_stats(queue).await.total_pending, 600, "{queue}");
    }
    // One worker thread serves the four queues in priority order.
    let mut config = env.config();
    config.worker_threads = 1;
    let server = start(config).await;
    for kind in Kind::ALL {
        env.wait_rows(kind.table(), 600).await;
    }
    server.stop().await;
    let mut spans = Vec::new();
    for kind in Kind::ALL {
        spans.push((kind, env.insert_span(kind.table()).await));
    }
    for pair in spans.windows(2) {
        let ((first, (_, first_end)), (second, (second_start, _))) = (pair[0], pair[1]);
        assert!(
            first_end < second_start,
            "every {first:?} point is stored before any {second:?} point: {spans:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_points_are_refused_whole_with_422_naming_index_and_field() {
    let env = Env::new().await;
    // One worker thread: anything queued before the last, valid request is stored before it.
    let mut config = env.config();
    config.worker_threads = 1;
    let server = start(config).await;
    let good = || points("track_id", "bad-batch", 0, 1).remove(0);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("missing field", json!({"altitude": null}), "altitude"),
        ("missing id", json!({"track_id": null}), "track_id"),
        (
            "bad timestamp",
            json!({"timestamp": "2025-13-01T00:00:00Z"}),
            "timestamp",
        ),
        (
            "timestamp without zone",
            json!({"timestamp": "2025-06-08 10:30:00"}),
            "timestamp",
        ),
        ("latitude out of range", json!({"lat": 90.001}), "lat"),
        ("longitude out of range", json!({"lon": -180.5}), "lon"),
        (
            "altitude out of range",
            json!({"altitude": 20001}),
            "altitude",
        ),
        ("wrong type", json!({"lat": "45.1"}), "lat"),
        ("wrong id type", json!({"track_id": [1]}), "track_id"),
    ];
    for (what, change, field) in cases {
        let mut bad = good();
        for (key, value) in change.as_object().expect("object") {
            if value.is_null() {
                bad.as_object_mut().expect("object").remove(key);
            } else {
                bad[key] = value.clone();
            }
        }
        let body = json!([
            points("track_id", "ok", 0, 1)[0],
            bad,
            points("track_id", "ok", 1, 1)[0]
        ]);
        let (status, reply) = env.post(&server, "/live", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {reply}");
        assert_eq!(reply["status"], 422, "{what}");
        assert!(reply["error"].is_string(), "{what}: {reply}");
        assert_eq!(reply["error_count"], 1, "{what}: {reply}");
        assert_eq!(reply["errors"][0]["index"], 1, "{what}: {reply}");
        assert_eq!(reply["errors"][0]["field"], field, "{what}: {reply}");
        assert!(reply["errors"][0]["message"].is_string(), "{what}: {reply}");
    }
    // Several bad points and fields at once: each is named.
    let mut two = points("track_id", "x", 0, 4);
    two[1]["lat"] = json!(-91);
    two[3]["lon"] = json!(true);
    two[3].as_object_mut().expect("object").remove("altitude");
    let (status, reply) = env.post(&server, "/upload", &Value::Array(two)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let named: Vec<(u64, &str)> = reply["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().expect("index"),
                e["field"].as_str().expect("field"),
            )
        })
        .collect();
    assert_eq!(named, [(1, "lat"), (3, "lon"), (3, "altitude")]);
    // Valid JSON that holds no points.
    for body in [json!([]), json!(42), json!([1, 2])] {
        let (status, reply) = env.post(&server, "/live", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
    }
    // Nothing of it was queued: the one valid point sent last is the only one stored.
    let (status, _) = env.post(&server, "/live", &good()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    env.wait_rows(Table::LiveTrackPoints, 1).await;
    assert_eq!(env.count(Table::UploadedTrackPoints).await, 0);
    let live = env.queue_stats("live_points").await;
    assert_eq!((live.processed, live.total_pending), (1, 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_and_an_oversized_body_413() {
    let env = Env::new().await;
    let mut config = env.config();
    config.max_body_bytes = 16 * 1024;
    let server = start(config).await;
    for body in [&b"{\"track_id\": \"t1\", "[..], b"not json", b""] {
        let (status, reply) = env.post_raw(&server, "/scoring", body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["status"], 400);
        assert!(reply["error"]
            .as_str()
            .expect("error")
            .contains("malformed JSON"));
    }
    let big = serde_json::to_vec(&points("track_id", "big", 0, 200)).expect("json");
    assert!(big.len() > 16 * 1024);
    let (status, reply) = env.post_raw(&server, "/flymaster", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    assert_eq!(reply["status"], 413);
    assert!(reply["error"]
        .as_str()
        .expect("error")
        .contains("MAX_BODY_BYTES"));
    // Just under the limit is fine.
    let fits = Value::Array(points("track_id", "fits", 0, 50));
    let (status, _) = env.post(&server, "/scoring", &fits).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    env.wait_rows(Table::ScoringTracks, 50).await;
    assert_eq!(env.count(Table::Flymaster).await, 0);
    // An unknown path is a JSON 404.
    let (status, reply) = env.get(&server, "/nowhere").await;
    assert_eq!(
        (status, reply["status"].as_u64()),
        (StatusCode::NOT_FOUND, Some(404))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_points_are_stored_before_the_201() {
    let env = Env::new().await;
    let mut config = env.config();
    config.redis_url = Some("redis://127.0.0.1:1".to_owned());
    config.redis_timeout = Duration::from_millis(500);
    config.worker_threads = 1;
    let server = start(config).await;
    let mut sent = points("track_id", "down", 0, 100);
    sent.extend_from_within(..5);
    let (status, reply) = env
        .post(&server, "/upload", &Value::Array(sent.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(
        reply,
        json!({"status": "stored", "points": 105, "inserted": 100, "fallback": true,
               "table": "uploaded_track_points"})
    );
    assert_eq!(env.count(Table::UploadedTrackPoints).await, 100);
    // Sent again: stored already, nothing new.
    let (status, reply) = env.post(&server, "/upload", &Value::Array(sent)).await;
    assert_eq!(
        (status, &reply["inserted"]),
        (StatusCode::CREATED, &json!(0))
    );
    assert_eq!(env.count(Table::UploadedTrackPoints).await, 100);

    let (status, health) = env.get(&server, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["mode"], "fallback");
    assert_eq!(health["database"]["connected"], true);
    assert_eq!(health["redis"]["reachable"], false);
    let reasons = health["reasons"].as_array().expect("reasons");
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.starts_with("redis"))),
        "{health}"
    );
    let (status, queues) = env.get(&server, "/queue/status").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{queues}");
    assert_eq!(queues["redis_connected"], false);
    assert!(queues["error"].is_string());
    let metrics = env
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::SERVICE_UNAVAILABLE);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_queue_status_and_metrics_have_their_shapes() {
    let env = Env::new().await;
    let server = start(env.config()).await;
    let (status, _) = env
        .post(
            &server,
            "/live",
            &Value::Array(points("track_id", "h", 0, 20)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    env.wait_rows(Table::LiveTrackPoints, 20).await;

    let (status, health) = env.get(&server, "/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["mode"], "queue");
    assert_eq!(health["database"]["connected"], true);
    assert!(health["database"]["latency_ms"].is_f64());
    assert_eq!(health["database"]["schema"], env.schema.as_str());
    assert!(["postgresql", "timescaledb"]
        .contains(&health["database"]["storage"].as_str().expect("storage")));
    assert_eq!(health["redis"]["reachable"], true);
    assert!(health["redis"]["latency_ms"].is_f64());
    assert!(health["redis"]["version"].is_string());
    assert_eq!(health["reasons"], json!([]));
    for queue in gps::QUEUES {
        let q = &health["queues"][queue];
        for field in [
            "pending",
            "processing",
            "scheduled",
            "dead",
            "processed",
            "failed",
        ] {
            assert!(q[field].is_u64(), "{queue}.{field}: {health}");
        }
    }
    assert_eq!(health["queues"]["live_points"]["processed"], 20);

    let (status, stats) = env.get(&server, "/queue/status").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["redis_connected"], true);
    assert!(stats["timestamp"].is_u64());
    for queue in gps::QUEUES {
        let q = &stats["queue_stats"][queue];
        for field in [
            "queue_size",
            "priority_queue_size",
            "total_pending",
            "processing",
            "processed",
            "failed",
            "dead",
        ] {
            assert!(q[field].is_u64(), "{queue}.{field}: {stats}");
        }
        assert!(q["throughput_per_second"].is_number(), "{stats}");
        assert!(
            q["wait_ms"]["p50"].is_number() && q["run_ms"]["p99"].is_number(),
            "{stats}"
        );
    }
    assert_eq!(stats["queue_stats"]["live_points"]["processed"], 20);
    let processors = &stats["processor_stats"];
    assert!(processors["processed"].as_u64().expect("processed") >= 20);
    assert!(processors["failed"].is_u64());
    assert_eq!(processors["workers_alive"], 1);
    let worker = &processors["workers"][0];
    assert_eq!(worker["threads"], 2);
    assert_eq!(worker["queues"].as_array().map(Vec::len), Some(4));

    let metrics = env
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    let content_type = metrics.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("redisq_processed_total{queue=\"live_points\"} 20"),
        "{text}"
    );
    assert!(text.contains("redisq_redis_connected 1"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stores_or_hands_back_every_accepted_point() {
    let env = Env::new().await;
    let mut config = env.config();
    config.worker_threads = 1;
    config.batch_size = 100; // ten statements a batch: slower, so the shutdown finds work left
    let server = start(config.clone()).await;
    const REQUESTS: usize = 20;
    const PER_REQUEST: usize = 500;
    for r in 0..REQUESTS {
        let batch = Value::Array(points("track_id", &format!("s{r}"), 0, PER_REQUEST));
        let (status, reply) = env.post(&server, "/live", &batch).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    }
    server.stop().await;
    let sent = (REQUESTS * PER_REQUEST) as u64;
    let stored = env.count(Table::LiveTrackPoints).await;
    let live = env.queue_stats("live_points").await;
    eprintln!(
        "at shutdown: {stored} stored, {} still queued",
        live.total_pending
    );
    assert_eq!(live.processing, 0, "nothing is left taken");
    assert_eq!(
        stored + live.total_pending,
        sent,
        "every point is stored or queued"
    );
    // The next start takes the rest.
    let server = start(config).await;
    env.wait_rows(Table::LiveTrackPoints, sent).await;
    server.stop().await;
    assert_eq!(env.queue_stats("live_points").await.total_pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_of_the_same_points_do_not_deadlock() {
    let env = Env::new().await;
    // Two batches of the same 1,000 points, in opposite orders, wait in Redis...
    let mut config = env.config();
    config.worker_threads = 0;
    let server = start(config).await;
    let ascending = points("track_id", "d", 0, 1000);
    let descending: Vec<Value> = ascending.iter().rev().cloned().collect();
    for batch in [ascending, descending] {
        let (status, reply) = env.post(&server, "/live", &Value::Array(batch)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    }
    server.stop().await;
    // ...then two worker threads take one each and insert them at the same time.
    let mut config = env.config();
    config.worker_threads = 2;
    let server = start(config).await;
    env.wait_rows(Table::LiveTrackPoints, 1000).await;
    let started = Instant::now();
    let mut live = env.queue_stats("live_points").await;
    while live.processed < 2000 && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        live = env.queue_stats("live_points").await;
    }
    server.stop().await;
    assert_eq!(
        (live.processed, live.failed),
        (2000, 0),
        "both batches stored at the first attempt"
    );
}
