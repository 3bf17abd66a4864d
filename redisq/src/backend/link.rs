//! [`Link`]: what a backend is connected to, a single server or a cluster, and the two
//! kinds of connection it hands out: [`Handle`] (pooled, bounded by the timeout) and
//! [`Blocking`] (a consumer's or a waiter's own, whose reads may block).

use std::sync::Arc;
use std::time::Duration;

use redis::{ConnectionLike, RedisResult, Value};

use super::cluster::{Cluster, Routed};
use super::pool::{Pool, Pooled};

/// A single Redis server (through its pool) or a Redis Cluster.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    Server(Arc<Pool>),
    Cluster(Arc<Cluster>),
}

impl Link {
    /// The same server or cluster with another timeout, and no idle connection yet.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Link {
        match self {
            Link::Server(pool) => Link::Server(Arc::new(pool.with_timeout(timeout))),
            Link::Cluster(cluster) => Link::Cluster(Arc::new(cluster.with_timeout(timeout))),
        }
    }

    /// A pooled connection whose first command must be answered within the timeout from
    /// now, the connect included.
    pub(crate) fn get(&self) -> RedisResult<Handle<'_>> {
        Ok(match self {
            Link::Server(pool) => Handle::Server(pool.get()?),
            Link::Cluster(cluster) => Handle::Cluster(Routed::pooled(cluster.clone())),
        })
    }

    /// A connection of its own whose reads may each last `read`.
    pub(crate) fn blocking(&self, read: Duration) -> RedisResult<Blocking> {
        Ok(match self {
            Link::Server(pool) => Blocking::Server(pool.connect(read)?),
            Link::Cluster(cluster) => Blocking::Cluster(Routed::blocking(cluster.clone(), read)),
        })
    }

    /// One pool per server that holds part of the keyspace: the server, or each master of
    /// the cluster (for scans and settings).
    pub(crate) fn servers(&self) -> RedisResult<Vec<Arc<Pool>>> {
        match self {
            Link::Server(pool) => Ok(vec![pool.clone()]),
            Link::Cluster(cluster) => cluster.masters(),
        }
    }

    /// Whether this is a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Link::Cluster(_))
    }
}

/// A pooled connection: [`Handle::run`] hands it to a closure.
pub(crate) enum Handle<'a> {
    Server(Pooled<'a>),
    Cluster(Routed),
}

impl Handle<'_> {
    /// Runs `f` on the connection, each request answered by its deadline (see `pool.rs`).
    pub(crate) fn run<T>(
        &mut self,
        f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> RedisResult<T> {
        match self {
            Handle::Server(pooled) => pooled.run(|c| f(c)),
            Handle::Cluster(routed) => f(routed),
        }
    }
}

/// A connection of one consumer or waiter, not pooled.
pub(crate) enum Blocking {
    Server(redis::Connection),
    Cluster(Routed),
}

impl ConnectionLike for Blocking {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Blocking::Server(con) => con.req_packed_command(cmd),
            Blocking::Cluster(routed) => routed.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Blocking::Server(con) => con.req_packed_commands(cmd, offset, count),
            Blocking::Cluster(routed) => routed.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Blocking::Server(con) => con.get_db(),
            Blocking::Cluster(routed) => routed.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Blocking::Server(con) => con.check_connection(),
            Blocking::Cluster(routed) => routed.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Blocking::Server(con) => con.is_open(),
            Blocking::Cluster(routed) => routed.is_open(),
        }
    }
}
