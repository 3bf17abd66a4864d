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
mod cluster;
mod config;
mod dead;
mod inspect;
mod lease;
mod link;
mod pool;
mod purge;
mod push;
mod records;
mod registry;
mod report;
mod scripts;
mod server;
mod settle;
mod tls;
mod waiters;
mod waits;

use std::collections::HashSet;
use std::env;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::IntoConnectionInfo;

use crate::error::{Error, Result};
use crate::schema::{NamespaceKeys, QueueKeys};
pub(crate) use claim::{ClaimConnection, Mode, Payload, Settled, Take, CLAIM_MAX};
pub use cluster::cluster_seeds;
pub(crate) use config::Config;
pub use config::Delivery;
use link::{Blocking, Handle, Link};
use pool::Pool;
pub(crate) use push::Batch;
pub(crate) use report::{Marked, Outcome, Report};
pub use tls::{redact_url, Tls};

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
    link: Link,
    /// Queues this backend has pushed to, and so registered in `<ns>:queues`.
    registered: Arc<Mutex<HashSet<String>>>,
    /// The known queues as last read, to find a task's record by the slot of its id.
    known: Arc<Mutex<Vec<String>>>,
}

impl RedisQueueBackend {
    /// A backend for the Redis server or cluster at `url`:
    ///
    /// - `redis://[[user]:password@]host[:port][/db]`: one server (`rediss://` over TLS);
    /// - `redis+cluster://[[user]:password@]host:port[,host:port…]`: a Redis Cluster, by
    ///   any of its nodes (seeds; the rest are found from them), `rediss+cluster://` over
    ///   TLS. Every key of a queue is in the queue's slot; see `ARCHITECTURE.md`.
    ///
    /// A user and password given by `REDIS_USERNAME` and `REDIS_PASSWORD` apply when the
    /// URL has none. Over TLS, the certificates named by `REDIS_TLS_CA_FILE`,
    /// `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE` are used ([`Tls::from_env`]).
    ///
    /// Does not connect: the first command does.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL cannot be parsed (the message shows it with its
    /// password hidden, as [`redact_url`] does) or a certificate file cannot be read.
    pub fn new(url: &str) -> Result<Self> {
        let tls = if url.starts_with("rediss") {
            Tls::from_env()?
        } else {
            None
        };
        Self::with_tls(url, tls)
    }

    /// As [`new`](Self::new), with the TLS certificates `tls` (instead of those the
    /// environment names).
    ///
    /// # Errors
    /// [`Error::Config`] when the URL cannot be parsed.
    pub fn with_tls(url: &str, tls: Option<Tls>) -> Result<Self> {
        let invalid = |e: redis::RedisError| {
            Error::Config(format!("invalid redis url `{}`: {e}", redact_url(url)))
        };
        let config = Config::default();
        let link = match cluster::cluster_seeds(url) {
            Some(seeds) => {
                let seeds: Vec<String> = seeds.iter().map(|seed| env_credentials(seed)).collect();
                Link::Cluster(Arc::new(
                    cluster::Cluster::new(&seeds, tls, config.timeout, config::POOL_IDLE)
                        .map_err(invalid)?,
                ))
            }
            None => {
                let info = env_credentials(url)
                    .as_str()
                    .into_connection_info()
                    .map_err(invalid)?;
                Link::Server(Arc::new(
                    Pool::new(info, tls.as_ref(), config.timeout, config::POOL_IDLE)
                        .map_err(invalid)?,
                ))
            }
        };
        Ok(RedisQueueBackend {
            config: Arc::new(config),
            link,
            registered: Arc::default(),
            known: Arc::default(),
        })
    }

    /// A backend configured from the environment: `REDIS_URL` if set (with
    /// `REDIS_USERNAME`, `REDIS_PASSWORD` and the TLS files, as [`new`](Self::new) says),
    /// otherwise `REDIS_HOST` (default `127.0.0.1`), `REDIS_PORT` (6379), `REDIS_DB` (0),
    /// `REDIS_USERNAME` and `REDIS_PASSWORD` (none).
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
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        Self::new(&format!("redis://{host}:{port}/{db}"))
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

    /// The Redis Cluster slot of `queue`'s keys (its tasks' ids end in it).
    pub(crate) fn queue_slot(&self, queue: &str) -> u16 {
        self.keys(queue).slot()
    }

    /// Whether this backend is on a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.link.is_cluster()
    }

    /// The keys of this namespace outside any queue.
    fn namespace_keys(&self) -> NamespaceKeys {
        NamespaceKeys::new(&self.config.namespace)
    }

    /// A pooled connection.
    fn connection(&self) -> Result<Handle<'_>> {
        Ok(self.link.get()?)
    }

    /// A new connection, not pooled, whose reads may block for `read` plus the timeout.
    fn blocking_connection(&self, read: Duration) -> Result<Blocking> {
        Ok(self.link.blocking(read + self.config.timeout)?)
    }
}

/// `url` with the credentials of `REDIS_USERNAME` and `REDIS_PASSWORD` when it has none of
/// its own (percent-encoded into it).
fn env_credentials(url: &str) -> String {
    let var = |name: &str| env::var(name).ok().filter(|v| !v.is_empty());
    let (user, password) = (var("REDIS_USERNAME"), var("REDIS_PASSWORD"));
    if user.is_none() && password.is_none() {
        return url.to_owned();
    }
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    if url[start..authority_end].contains('@') {
        return url.to_owned();
    }
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let userinfo = format!(
        "{}:{}@",
        user.as_deref().map(encode).unwrap_or_default(),
        password.as_deref().map(encode).unwrap_or_default()
    );
    format!("{}{userinfo}{}", &url[..start], &url[start..])
}
