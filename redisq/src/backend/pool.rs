//! A small pool of synchronous Redis connections shared by producers.
//!
//! Connections are reused, not opened per call. A connection that failed with an
//! I/O error is dropped instead of returned, so the next call opens a fresh one.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::is_connection_error;

/// Idle connections, bounded by `max_idle`.
pub(crate) struct Pool {
    pub(super) client: redis::Client,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<redis::Connection>>,
}

impl Pool {
    pub(crate) fn new(
        client: redis::Client,
        connect_timeout: Duration,
        io_timeout: Duration,
        max_idle: usize,
    ) -> Pool {
        Pool {
            client,
            connect_timeout,
            io_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    pub(crate) fn get(&self) -> redis::RedisResult<Pooled<'_>> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let con = match idle {
            Some(con) => con,
            None => self.connect(self.io_timeout)?,
        };
        Ok(Pooled {
            pool: self,
            con: Some(con),
            broken: false,
        })
    }

    /// A new connection that is not pooled, with its own read timeout (for blocking pops).
    pub(crate) fn connect(&self, read_timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(read_timeout))?;
        con.set_write_timeout(Some(self.io_timeout))?;
        Ok(con)
    }

    fn put_back(&self, con: redis::Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(con);
            }
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

/// A connection borrowed from the pool; returned on drop unless it broke.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    con: Option<redis::Connection>,
    broken: bool,
}

impl Pooled<'_> {
    /// Runs `f` on the connection, marking it broken when it fails at the connection level.
    pub(crate) fn run<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let Some(con) = self.con.as_mut() else {
            // `con` is `Some` until drop; a closed connection is what this would be.
            return Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        };
        let result = f(con);
        if let Err(err) = &result {
            if is_connection_error(err) {
                self.broken = true;
            }
        }
        result
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(con) = self.con.take() {
            if !self.broken && redis::ConnectionLike::is_open(&con) {
                self.pool.put_back(con);
            }
        }
    }
}
