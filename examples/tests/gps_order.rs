//! The GPS pipeline keeps each track's points in time order: points posted over HTTP (a
//! server in this process with no workers) are stored by two `gps_server` processes, one
//! of which is killed mid-way; every track's rows, read in the order they were inserted,
//! are in timestamp order, and every point is stored once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redisq_examples::gps::{self, Config, Database};
use redisq_test_support::{init_logging, redis_url, Namespace};
use serde_json::{json, Value};
use tokio::task::spawn_blocking;

mod support;

const DEADLINE: Duration = Duration::from_secs(60);
const TRACKS: usize = 3;
const PER_TRACK: usize = 3_000;
const PER_REQUEST: usize = 250;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A `gps_server` process serving only as a worker (its HTTP side on a free port, unused),
/// killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(binary: &PathBuf, namespace: &str, schema: &str) -> WorkerProcess {
        let child = Command::new(binary)
            .env("REDIS_URL", redis_url())
            .env("REDISQ_NAMESPACE", namespace)
            .env("DATABASE_URL", database_url())
            .env("DB_SCHEMA", schema)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("WORKER_THREADS", "2")
            .env("BATCH_SIZE", "100")
            .env("REDISQ_LEASE_MS", "1000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("gps_server starts");
        WorkerProcess(child)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Server = support::Server<gps::Error>;

/// Runs `sql` on `db` and returns the first column of each row, as text.
async fn column(db: &Database, sql: String) -> Vec<String> {
    let db = db.clone();
    spawn_blocking(move || {
        let rows = db.client()?.query(sql.as_str(), &[])?;
        Ok::<_, gps::DbError>(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    })
    .await
    .expect("join")
    .expect("query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_s_points_are_stored_in_time_order_across_workers_and_a_crash() {
    init_logging();
    let namespace = Namespace::new().with_label("gps");
    let schema = format!("gps_test_{}", namespace.id());
    let _cleanup = DropSchema(schema.clone());
    let db = {
        let schema = schema.clone();
        spawn_blocking(move || Database::connect(&database_url(), &schema, 2, 1000))
            .await
            .expect("join")
            .expect("PostgreSQL is running (scripts/ensure-postgres.sh starts it)")
    };
    let binary = spawn_blocking(|| support::example_binary("gps_server"))
        .await
        .expect("join");
    let mut config = Config::default();
    config.database_url = database_url();
    config.db_schema = schema.clone();
    config.redis_url = Some(redis_url());
    config.namespace = namespace.name().to_owned();
    config.worker_threads = 0;
    let server =
        Server::start(|listener, shutdown| gps::serve_on(listener, config, shutdown)).await;
    let http = reqwest::Client::new();
    // Each track's points in time order, the tracks' requests interleaved.
    for chunk in 0..PER_TRACK / PER_REQUEST {
        for track in 0..TRACKS {
            let body: Vec<Value> = (chunk * PER_REQUEST..(chunk + 1) * PER_REQUEST)
                .map(|i| {
                    json!({
                        "track_id": format!("t{track}"),
                        "timestamp": format!("2025-06-08T{:02}:{:02}:{:02}Z", i / 3600, (i / 60) % 60, i % 60),
                        "lat": 45.0, "lon": 6.0, "altitude": 1000.0,
                    })
                })
                .collect();
            let reply = http
                .post(server.url("/live"))
                .json(&body)
                .send()
                .await
                .expect("POST");
            assert!(reply.status().is_success(), "{}", reply.status());
        }
    }
    let count = |db: Database| async move {
        let sql = format!(
            "SELECT count(*)::text FROM {}",
            db.qualified(gps::Table::LiveTrackPoints)
        );
        column(&db, sql).await[0].parse::<usize>().unwrap_or(0)
    };
    let first = WorkerProcess::spawn(&binary, namespace.name(), &schema);
    let second = WorkerProcess::spawn(&binary, namespace.name(), &schema);
    let deadline = Instant::now() + DEADLINE;
    while count(db.clone()).await < PER_TRACK {
        assert!(Instant::now() < deadline, "the workers never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first); // SIGKILL, mid-way: its lease runs out, the other takes its tracks.
    let total = TRACKS * PER_TRACK;
    while count(db.clone()).await < total {
        if Instant::now() > deadline {
            let backend = namespace.backend();
            let stats = spawn_blocking(move || backend.queue_stats("live_points")).await;
            let mut con = namespace.connection();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", namespace.name()))
                .query(&mut con)
                .unwrap();
            let busy: Vec<String> = redis::cmd("HGETALL")
                .arg(namespace.key("live_points", "busy"))
                .query(&mut con)
                .unwrap();
            let ready: Vec<String> = redis::cmd("LRANGE")
                .arg(namespace.key("live_points", "ready"))
                .arg(0)
                .arg(-1)
                .query(&mut con)
                .unwrap();
            let leases: Vec<String> = redis::cmd("ZRANGE")
                .arg(namespace.key("live_points", "leases"))
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut con)
                .unwrap();
            panic!("not every point was stored: {} of {total}; {stats:?}; keys {keys:?}; busy {busy:?}; ready {ready:?}; leases {leases:?}", count(db.clone()).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(second);
    for track in 0..TRACKS {
        let sql = format!(
            "SELECT to_char(ts, 'HH24:MI:SS') FROM {} WHERE track_id = 't{track}' \
             ORDER BY inserted_at, ts",
            db.qualified(gps::Table::LiveTrackPoints)
        );
        let stored = column(&db, sql).await;
        assert_eq!(stored.len(), PER_TRACK, "t{track}: each point once");
        let mut sorted = stored.clone();
        sorted.sort();
        let first_out = stored.iter().zip(&sorted).position(|(a, b)| a != b);
        assert_eq!(first_out, None, "t{track} was stored out of time order");
    }
    server.stop().await;
}

/// Drops a test's schema when the test ends, however it ends.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        // A blocking client, on a thread of its own: this runs on the test's runtime.
        let schema = self.0.clone();
        let cleanup = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&database_url(), postgres::NoTls) {
                let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                if let Err(err) = client.batch_execute(&drop) {
                    eprintln!("could not drop schema {schema}: {err}");
                }
            }
        });
        let _ = cleanup.join();
    }
}
