//! [`RedisQueueBackend`]: the connection to Redis and every command redisq sends.
//!
//! Only this module speaks to Redis, one file per concept: `config` (settings), `pool`
//! (the producers' connections), `push` (enqueueing), `claim` (the consumers' claim
//! protocol on their dedicated connections; `report` is what they send and `settle` its
//! script's layout), `lease` (renewal and recovery), `dead`
//! (dead-letter administration), `registry` (the worker registry's writes), `inspect`
//! (every read: records, positions, statistics, health), `server` (the server's settings
//! and what they mean for the tasks) and `scripts` (the Lua, in `lua/`). Keys and field names come from [`crate::schema`].

mod claim;
mod config;
mod dead;
mod inspect;
mod lease;
mod pool;
mod push;
mod records;
mod registry;
mod report;
mod scripts;
mod server;
mod settle;

use std::collections::HashSet;
use std::env;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::IntoConnectionInfo;

use crate::error::{Error, Result};
use crate::schema::{NamespaceKeys, QueueKeys};
pub(crate) use claim::{ClaimConnection, Mode, Payload, Settled, Take, CLAIM_MAX};
pub(crate) use config::Config;
pub use config::Delivery;
use pool::{Pool, Pooled};
pub(crate) use push::Batch;
pub(crate) use report::{Marked, Outcome, Report};

/// The Redis queue backend: where tasks are pushed and from where workers take them.
///
/// Cheap to clone: clones share one connection pool.
///
/// ```no_run
/// # fn main() -> redisq::Result<()> {
/// use std::time::Duration;
/// let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:6379")?
///     .with_namespace("myapp")
///     .with_lease(Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisQueueBackend {
    config: Arc<Config>,
    pool: Arc<Pool>,
    /// Queues this backend has pushed to, and so registered in `<ns>:queues`.
    registered: Arc<Mutex<HashSet<String>>>,
}

impl RedisQueueBackend {
    /// A backend for the Redis server at `url` (`redis://[:password@]host[:port][/db]`).
    ///
    /// Does not connect: the first command does.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL cannot be parsed.
    pub fn new(url: &str) -> Result<Self> {
        let info = url
            .into_connection_info()
            .map_err(|e| Error::Config(format!("invalid redis url `{url}`: {e}")))?;
        Self::from_info(info)
    }

    /// A backend configured from the environment: `REDIS_URL` if set, otherwise
    /// `REDIS_HOST` (default `127.0.0.1`), `REDIS_PORT` (6379), `REDIS_DB` (0) and
    /// `REDIS_PASSWORD` (none).
    ///
    /// # Errors
    /// [`Error::Config`] when a variable cannot be parsed.
    pub fn from_env() -> Result<Self> {
        if let Ok(url) = env::var("REDIS_URL") {
            if !url.is_empty() {
                return Self::new(&url);
            }
        }
        let var = |name: &str| env::var(name).ok().filter(|v| !v.is_empty());
        let host = var("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = match var("REDIS_PORT") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| Error::Config(format!("REDIS_PORT `{p}` is not a port number")))?,
            None => 6379,
        };
        let db = match var("REDIS_DB") {
            Some(d) => d
                .parse::<i64>()
                .map_err(|_| Error::Config(format!("REDIS_DB `{d}` is not a number")))?,
            None => 0,
        };
        let mut redis = redis::RedisConnectionInfo::default().set_db(db);
        if let Some(password) = var("REDIS_PASSWORD") {
            redis = redis.set_password(password);
        }
        let info = redis::ConnectionAddr::Tcp(host.clone(), port)
            .into_connection_info()
            .map_err(|e| Error::Config(format!("invalid REDIS_HOST `{host}`: {e}")))?
            .set_redis_settings(redis);
        Self::from_info(info)
    }

    fn from_info(info: redis::ConnectionInfo) -> Result<Self> {
        let config = Config::default();
        let pool = Pool::new(info, config.timeout, config::POOL_IDLE)
            .map_err(|e| Error::Config(format!("invalid redis connection settings: {e}")))?;
        Ok(RedisQueueBackend {
            config: Arc::new(config),
            pool: Arc::new(pool),
            registered: Arc::default(),
        })
    }

    /// Checks that Redis answers, within the timeout (`with_timeout`), the connect included.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it does not answer in time; [`Error::Auth`] when it
    /// refuses the credentials, or `PING` to this user.
    pub fn ping(&self) -> Result<()> {
        let mut con = self.connection()?;
        con.run(|c| redis::cmd("PING").query::<()>(c))?;
        Ok(())
    }

    /// The keys of `queue`.
    fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.config.namespace, queue)
    }

    /// The keys of this namespace outside any queue.
    fn namespace_keys(&self) -> NamespaceKeys {
        NamespaceKeys::new(&self.config.namespace)
    }

    /// A pooled connection.
    fn connection(&self) -> Result<Pooled<'_>> {
        Ok(self.pool.get()?)
    }

    /// A new connection, not pooled, whose reads may block for `read` plus the timeout.
    fn blocking_connection(&self, read: Duration) -> Result<redis::Connection> {
        Ok(self.pool.connect(read + self.config.timeout)?)
    }
}
