//! A GPS point ingestion server: HTTP → redisq → PostgreSQL.
//!
//! `POST /live`, `/upload`, `/scoring` and `/flymaster` take one point or an array of
//! points (`{"track_id" | "device_id", "timestamp" (RFC 3339), "lat", "lon", "altitude"}`),
//! check every field ([`points`]), and queue them on `live_points`, `upload_points`,
//! `scoring_points` or `flymaster_points` in one round trip (202 Accepted). Worker threads
//! in the same process, one pool serving the four queues in that priority order, take up to
//! 1,000 points per call of a batch task ([`tasks`]) and insert them with one statement
//! ([`db`]), ignoring points already stored. When Redis cannot be reached the request
//! stores its points itself and answers 201 Created. `GET /health`, `/queue/status` and
//! `/metrics` report on the database, Redis and the queues ([`http`]).
//!
//! ```text
//! cargo run --release -p redisq-examples --example gps_server
//! curl -X POST localhost:8000/live -d '{"track_id":"t1","timestamp":"2025-06-08T10:30:00Z",
//!      "lat":45.9,"lon":6.1,"altitude":1200}'
//! {"points":1,"queue":"live_points","status":"queued"}
//! ```
//!
//! Settings ([`Config::from_env`]):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BIND_ADDR` | `127.0.0.1:8000` | where to listen |
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/test` | the database |
//! | `DB_SCHEMA` | `public` | schema of the four tables (created if missing) |
//! | `REDIS_URL` | — | the Redis server; else `REDIS_HOST` (127.0.0.1), `REDIS_PORT` (6379), `REDIS_DB` (0), `REDIS_PASSWORD` |
//! | `REDISQ_NAMESPACE` | `gps` | prefix of every Redis key |
//! | `REDIS_TIMEOUT_MS` | 2000 | bound on each Redis call: how soon a request falls back to the database |
//! | `REDIS_MAX_CONNECTIONS` | 20 | Redis calls of request handlers at once (so the producer connections they hold); workers hold one more each |
//! | `BATCH_SIZE` | 1000 | rows per `INSERT` (1 to 1,000); a worker call takes at most 1,000 points, fixed by the tasks' `batch = 1000` |
//! | `BATCH_WAIT_MS` | 50 | how long a worker waits for a partial batch to fill |
//! | `WORKER_THREADS` | 4 | threads of the worker pool; 0 runs none |
//! | `MAX_BODY_BYTES` | 1048576 | largest request body (413 beyond) |
//! | `REDISQ_LEASE_MS` | 30000 | a worker's lease: a crashed worker's points (and tracks) go to another once it runs out |

mod config;
pub mod db;
pub mod http;
pub mod points;
pub mod tasks;

use std::future::Future;

use redisq::{RedisQueueBackend, Worker};
use tokio::net::TcpListener;
use tokio::task::spawn_blocking;

pub use config::Config;
pub use db::{Database, DbError, Storage, Table};
pub use http::{router, AppState};
pub use points::Point;
pub use tasks::{Kind, QUEUES};

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting does not parse or is out of range.
    #[error("invalid setting {name}=`{value}`: {reason}")]
    Config {
        /// The environment variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached or set up.
    #[error("database: {0}")]
    Database(#[from] DbError),
    /// The Redis backend or its workers could not be set up.
    #[error(transparent)]
    Redis(#[from] redisq::Error),
    /// The listener failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    /// A start-up or shutdown step panicked.
    #[error("a blocking step failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Binds `config.bind_addr` and serves until `shutdown` completes: see [`serve_on`].
///
/// # Errors
/// As [`serve_on`], and when the address cannot be bound.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(config.bind_addr).await?;
    serve_on(listener, config, shutdown).await
}

/// Serves on `listener` until `shutdown` completes.
///
/// Starting: connects to the database and creates the schema and tables unless they exist
/// (hypertables when TimescaleDB is available; the log says which), registers the database
/// for the namespace's task bodies, and starts the worker pool. Stopping: stops accepting
/// and lets the requests in flight finish, then shuts the workers down (they finish the
/// batches they run and hand back what they had taken but not started), and returns.
///
/// # Errors
/// [`Error::Database`] when the database cannot be reached at start-up;
/// [`Error::Redis`] for an invalid Redis URL; [`Error::Io`] when the listener fails.
/// Redis being down is no error: requests then store their points directly, and the
/// workers wait for it.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    let db = {
        let (url, schema) = (config.database_url.clone(), config.db_schema.clone());
        let pool_size = u32::try_from(config.worker_threads + 4).unwrap_or(u32::MAX);
        let chunk = config.batch_size;
        spawn_blocking(move || Database::connect(&url, &schema, pool_size, chunk)).await??
    };
    match db.storage() {
        db::Storage::Hypertables => log::info!(
            "storage: TimescaleDB hypertables in schema `{}`",
            db.schema()
        ),
        db::Storage::PlainTables => log::info!(
            "storage: plain PostgreSQL tables in schema `{}` (the timescaledb extension is not available)",
            db.schema()
        ),
    }
    let backend = match &config.redis_url {
        Some(url) => RedisQueueBackend::new(url)?,
        None => RedisQueueBackend::from_env()?,
    }
    .with_namespace(config.namespace.clone())
    .with_timeout(config.redis_timeout)
    .with_lease(config.lease);
    let registration = tasks::register(&config.namespace, db.clone());
    let workers = {
        let (backend, threads, wait) = (backend.clone(), config.worker_threads, config.batch_wait);
        spawn_blocking(move || start_workers(backend, threads, wait)).await??
    };
    log::info!(
        "listening on http://{addr} (namespace `{}`, {} worker thread(s))",
        config.namespace,
        config.worker_threads
    );
    let app = router(AppState::new(backend, db, &config));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    log::info!("stopped accepting requests; shutting the workers down");
    if let Some(workers) = workers {
        spawn_blocking(move || workers.shutdown()).await?;
    }
    drop(registration);
    log::info!("stopped");
    Ok(served?)
}

/// One pool of `threads` threads serving the four queues in priority order; none for 0.
fn start_workers(
    backend: RedisQueueBackend,
    threads: usize,
    batch_wait: std::time::Duration,
) -> redisq::Result<Option<Worker>> {
    if threads == 0 {
        return Ok(None);
    }
    Worker::builder(backend)
        .pool(QUEUES, threads)
        .batch_wait(batch_wait)
        .start()
        .map(Some)
}
