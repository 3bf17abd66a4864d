//! The server's settings, from the environment or set in code (the tests).

use std::net::SocketAddr;
use std::time::Duration;

use super::tasks::BATCH;
use super::Error;

/// Everything the server needs to know. [`Config::default`] holds the defaults,
/// [`Config::from_env`] reads the environment (see the module docs of [`gps`](super)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Where to listen (`BIND_ADDR`, default `127.0.0.1:8000`).
    pub bind_addr: SocketAddr,
    /// The database (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
    pub database_url: String,
    /// The schema of the tables (`DB_SCHEMA`, default `public`).
    pub db_schema: String,
    /// The Redis server; `None` reads `REDIS_URL`, else `REDIS_HOST`, `REDIS_PORT`,
    /// `REDIS_DB` and `REDIS_PASSWORD` ([`redisq::RedisQueueBackend::from_env`]).
    pub redis_url: Option<String>,
    /// The prefix of every Redis key (`REDISQ_NAMESPACE`, default `gps`).
    pub namespace: String,
    /// Bound on connecting to Redis and on each command (`REDIS_TIMEOUT_MS`, default
    /// 2,000): how long a request waits before it falls back to the database.
    pub redis_timeout: Duration,
    /// Redis calls of request handlers at once, at most (`REDIS_MAX_CONNECTIONS`, default
    /// 20): redisq's pool opens a connection per concurrent call, so this bounds the
    /// connections the HTTP side holds. The worker threads hold one each besides, and the
    /// heartbeat shares the pool.
    pub redis_max_connections: usize,
    /// Rows per `INSERT` statement (`BATCH_SIZE`, 1 to 1,000, default 1,000). A worker
    /// takes at most 1,000 points per call (the `batch = 1000` of the tasks, fixed at
    /// compile time); a smaller `BATCH_SIZE` writes each such batch (and each request
    /// stored inline) in several statements of one transaction.
    pub batch_size: usize,
    /// How long a worker waits for a partial batch to fill (`BATCH_WAIT_MS`, default 50).
    pub batch_wait: Duration,
    /// Threads of the worker pool serving the four queues in priority order
    /// (`WORKER_THREADS`, default 4); 0 starts no worker (points wait in Redis for another
    /// process's workers).
    pub worker_threads: usize,
    /// Largest request body accepted, in bytes (`MAX_BODY_BYTES`, default 1 MiB).
    pub max_body_bytes: usize,
    /// How long a worker's hold on the points it took lasts unrenewed
    /// (`REDISQ_LEASE_MS`, default 30,000): after a crash, its points (and their tracks)
    /// go to another worker once it runs out.
    pub lease: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
            db_schema: "public".to_owned(),
            redis_url: None,
            namespace: "gps".to_owned(),
            redis_timeout: Duration::from_secs(2),
            redis_max_connections: 20,
            batch_size: BATCH,
            batch_wait: Duration::from_millis(50),
            worker_threads: 4,
            max_body_bytes: 1024 * 1024,
            lease: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// The defaults, overridden by the environment variables that are set and not empty.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first variable that does not parse or is out of range.
    pub fn from_env() -> Result<Config, Error> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Config::from_env), with variables from `var`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first variable that does not parse or is out of range.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut config = Config::default();
        if let Some(v) = var("BIND_ADDR") {
            config.bind_addr = parse("BIND_ADDR", &v)?;
        }
        if let Some(v) = var("DATABASE_URL") {
            config.database_url = v;
        }
        if let Some(v) = var("DB_SCHEMA") {
            config.db_schema = v;
        }
        if let Some(v) = var("REDISQ_NAMESPACE") {
            config.namespace = v;
        }
        if let Some(v) = var("REDIS_TIMEOUT_MS") {
            config.redis_timeout =
                Duration::from_millis(ranged("REDIS_TIMEOUT_MS", &v, 1, 600_000)?);
        }
        if let Some(v) = var("REDIS_MAX_CONNECTIONS") {
            config.redis_max_connections = ranged("REDIS_MAX_CONNECTIONS", &v, 1, 10_000)?;
        }
        if let Some(v) = var("BATCH_SIZE") {
            config.batch_size = ranged("BATCH_SIZE", &v, 1, BATCH as u64)?;
        }
        if let Some(v) = var("BATCH_WAIT_MS") {
            config.batch_wait = Duration::from_millis(ranged("BATCH_WAIT_MS", &v, 0, 60_000)?);
        }
        if let Some(v) = var("WORKER_THREADS") {
            config.worker_threads = ranged("WORKER_THREADS", &v, 0, 256)?;
        }
        if let Some(v) = var("MAX_BODY_BYTES") {
            config.max_body_bytes = ranged("MAX_BODY_BYTES", &v, 1024, 1 << 30)?;
        }
        if let Some(v) = var("REDISQ_LEASE_MS") {
            config.lease = Duration::from_millis(ranged("REDISQ_LEASE_MS", &v, 100, 3_600_000)?);
        }
        Ok(config)
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| Error::Config {
        name,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn ranged<T>(name: &'static str, value: &str, min: u64, max: u64) -> Result<T, Error>
where
    T: TryFrom<u64>,
{
    let n: u64 = parse(name, value)?;
    if !(min..=max).contains(&n) {
        return Err(Error::Config {
            name,
            value: value.to_owned(),
            reason: format!("must be from {min} to {max}"),
        });
    }
    T::try_from(n).map_err(|_| Error::Config {
        name,
        value: value.to_owned(),
        reason: "too large".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, Error> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn reads_the_environment_over_the_defaults() {
        assert_eq!(from(&[]).expect("defaults"), Config::default());
        let config = from(&[
            ("BIND_ADDR", "0.0.0.0:9000"),
            ("BATCH_SIZE", "500"),
            ("WORKER_THREADS", "0"),
            ("REDISQ_NAMESPACE", "gps-eu"),
            ("DB_SCHEMA", ""),
        ])
        .expect("config");
        assert_eq!(config.bind_addr.port(), 9000);
        assert_eq!(config.batch_size, 500);
        assert_eq!(config.worker_threads, 0);
        assert_eq!(config.namespace, "gps-eu");
        assert_eq!(config.db_schema, "public");
    }

    #[test]
    fn names_the_bad_variable() {
        let err = from(&[("BATCH_SIZE", "5000")]).expect_err("too large");
        assert!(err.to_string().contains("BATCH_SIZE"), "{err}");
        let err = from(&[("MAX_BODY_BYTES", "lots")]).expect_err("not a number");
        assert!(err.to_string().contains("MAX_BODY_BYTES"), "{err}");
    }
}
