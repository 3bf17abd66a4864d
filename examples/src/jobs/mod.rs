//! An overload-safe job API: HTTP (axum) → redisq → workers.
//!
//! `POST /jobs` (`{"name", "value", "message", "metadata"?}`) only enqueues the job and
//! answers 202 with its id; `GET /jobs/{job_id}` reports it (queued with its position,
//! processing, done with its result, failed); `GET /queue/stats`, `/health`, `/metrics` and
//! `POST /queue/cleanup` report on and tend the queue ([`http`]). The job handler ([`task`])
//! runs on worker threads inside the API process (`EMBEDDED_WORKERS`) and/or in separate
//! `jobs_worker` processes sharing the namespace.
//!
//! ```text
//! cargo run --release -p redisq-examples --example jobs_api
//! curl -X POST localhost:8080/jobs -d '{"name":"demo","value":42,"message":"hi"}'
//! {"job_id":"…","message":"Job queued successfully. Poll GET /jobs/{job_id} for status.","status":"accepted"}
//! ```
//!
//! Settings ([`Config::from_env`]):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BIND_ADDR` | `127.0.0.1:8080` | where to listen |
//! | `REDIS_URL` | — | the Redis server; else `REDIS_HOST` (127.0.0.1), `REDIS_PORT` (6379), `REDIS_DB` (0), `REDIS_PASSWORD` |
//! | `REDISQ_NAMESPACE` | `jobs` | prefix of every Redis key |
//! | `REDIS_TIMEOUT_MS` | 1000 | bound on each Redis call: how soon a request answers 503 when Redis is down |
//! | `REDIS_MAX_CONNECTIONS` | 32 | Redis calls of request handlers at once |
//! | `REDISQ_LEASE_MS` | library default | lease of a worker's consumers: how soon the jobs of a dead worker are taken again |
//! | `QUEUE_RESULT_TTL` | 3600 | seconds a finished job's record (and result) is kept |
//! | `EMBEDDED_WORKERS` | 1 | worker threads inside the API process; 0 runs none |
//! | `WORKER_THREADS` | 2 | worker threads of `jobs_worker` |
//! | `WORKER_PROCESSING_DELAY` | 2 | seconds each job sleeps (a float; read once per process) |
//!
//! Request bodies are limited to 64 KiB ([`MAX_BODY_BYTES`]).

pub mod http;
pub mod task;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use redisq::{RedisQueueBackend, Worker};
use tokio::net::TcpListener;
use tokio::task::spawn_blocking;

pub use http::{router, AppState};
pub use task::{process_job, Job, QUEUE};

/// The largest request body, in bytes (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why the server or worker could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting does not parse.
    #[error("invalid setting {name}=`{value}`")]
    Config {
        /// The environment variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
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

/// The settings of the API and of the worker (see the module's docs).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where to listen (`BIND_ADDR`).
    pub bind_addr: SocketAddr,
    /// The Redis URL (`REDIS_URL`); `None` reads `REDIS_HOST` and the others.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (`REDISQ_NAMESPACE`).
    pub namespace: String,
    /// Bound on each Redis call (`REDIS_TIMEOUT_MS`).
    pub redis_timeout: Duration,
    /// Redis calls of request handlers at once (`REDIS_MAX_CONNECTIONS`).
    pub redis_max_connections: usize,
    /// Lease of the worker's consumers (`REDISQ_LEASE_MS`); `None` keeps the library's.
    pub lease: Option<Duration>,
    /// How long finished records are kept (`QUEUE_RESULT_TTL`, seconds).
    pub result_ttl: Duration,
    /// Worker threads in the API process (`EMBEDDED_WORKERS`).
    pub embedded_workers: usize,
    /// Worker threads of `jobs_worker` (`WORKER_THREADS`).
    pub worker_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            redis_url: None,
            namespace: "jobs".to_owned(),
            redis_timeout: Duration::from_secs(1),
            redis_max_connections: 32,
            lease: None,
            result_ttl: Duration::from_secs(3600),
            embedded_workers: 1,
            worker_threads: 2,
        }
    }
}

fn env_parse<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, Error> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Config { name, value }),
    }
}

impl Config {
    /// Reads the settings from the environment; unset ones keep their defaults.
    ///
    /// # Errors
    /// [`Error::Config`] for a value that does not parse.
    pub fn from_env() -> Result<Config, Error> {
        let mut config = Config::default();
        if let Some(addr) = env_parse("BIND_ADDR")? {
            config.bind_addr = addr;
        }
        config.redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
        if let Ok(ns) = std::env::var("REDISQ_NAMESPACE") {
            if !ns.is_empty() {
                config.namespace = ns;
            }
        }
        if let Some(ms) = env_parse::<u64>("REDIS_TIMEOUT_MS")? {
            config.redis_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = env_parse::<usize>("REDIS_MAX_CONNECTIONS")? {
            config.redis_max_connections = n.max(1);
        }
        if let Some(ms) = env_parse::<u64>("REDISQ_LEASE_MS")? {
            config.lease = Some(Duration::from_millis(ms.max(1)));
        }
        if let Some(secs) = env_parse::<u64>("QUEUE_RESULT_TTL")? {
            config.result_ttl = Duration::from_secs(secs.max(1));
        }
        if let Some(n) = env_parse("EMBEDDED_WORKERS")? {
            config.embedded_workers = n;
        }
        if let Some(n) = env_parse("WORKER_THREADS")? {
            config.worker_threads = n;
        }
        Ok(config)
    }

    /// The backend these settings describe.
    ///
    /// # Errors
    /// For an invalid Redis URL.
    pub fn backend(&self) -> redisq::Result<RedisQueueBackend> {
        let mut backend = match &self.redis_url {
            Some(url) => RedisQueueBackend::new(url)?,
            None => RedisQueueBackend::from_env()?,
        }
        .with_namespace(self.namespace.clone())
        .with_timeout(self.redis_timeout)
        .with_result_ttl(self.result_ttl);
        if let Some(lease) = self.lease {
            backend = backend.with_lease(lease);
        }
        Ok(backend)
    }
}

/// Starts `threads` worker threads on the `jobs` queue; none for 0.
///
/// # Errors
/// When a thread cannot be started, or Redis refuses the credentials
/// ([`redisq::Error::Auth`]); an unreachable Redis is no error (the workers wait for it).
pub fn start_workers(backend: RedisQueueBackend, threads: usize) -> redisq::Result<Option<Worker>> {
    if threads == 0 {
        return Ok(None);
    }
    Worker::builder(backend)
        .queues([QUEUE])
        .threads(QUEUE, threads)
        .start()
        .map(Some)
}

/// Serves the API on `listener` until `shutdown` completes, with `config.embedded_workers`
/// worker threads in this process. Stopping: stops accepting, lets the requests in flight
/// finish, then shuts the workers down (they finish the jobs they run) and returns.
///
/// Redis being down is no error: requests then answer 503 and the workers wait for it.
///
/// # Errors
/// [`Error::Redis`] for an invalid Redis URL or a worker that cannot start (Redis
/// refusing the credentials included);
/// [`Error::Io`] when the listener fails.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    let backend = config.backend()?;
    let workers = {
        let (backend, threads) = (backend.clone(), config.embedded_workers);
        spawn_blocking(move || start_workers(backend, threads)).await??
    };
    log::info!(
        "listening on http://{addr} (namespace `{}`, {} embedded worker thread(s), processing delay {:?})",
        config.namespace,
        config.embedded_workers,
        task::processing_delay()
    );
    let app = router(AppState::new(backend, &config));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    log::info!("stopped accepting requests");
    if let Some(workers) = workers {
        log::info!("shutting the workers down");
        spawn_blocking(move || workers.shutdown()).await?;
    }
    log::info!("stopped");
    Ok(served?)
}
