//! A small pool of synchronous Redis connections shared by producers, and the deadline
//! every call on them keeps.
//!
//! Connections are reused, not opened per call. A connection that failed with an
//! I/O error is dropped instead of returned, so the next call opens a fresh one.
//!
//! **Deadlines.** A call gets the backend's timeout (`with_timeout`) for connecting and
//! its first command together: a connection opened for it leaves the command what the
//! connect did not use. Each further command of the same call gets the timeout again.
//! The command is bounded as a whole, not each read: redis-rs reads a pipeline's replies
//! one by one, each with the socket's read timeout, so against a server that accepts and
//! never answers a pipeline of n commands would wait n timeouts. [`Bounded`] sends and
//! reads through the connection itself, setting the socket timeouts to what is left
//! before the send and while replies come, and stops at the first read that fails. For
//! the same reason the connection's setup is at most one command inside redis-rs (`AUTH`
//! or `HELLO`): the client does not send `CLIENT SETINFO`, and the database is selected
//! here, under the deadline.
//!
//! A call that runs out of time fails with an I/O error of kind `TimedOut` saying so:
//! `redis at <address> did not answer within <timeout>` (an [`Error::Unavailable`]).
//!
//! [`Error::Unavailable`]: crate::Error::Unavailable

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::tls::Tls;
use crate::error::{is_auth_error, is_connection_error};

/// Idle connections, bounded by `max_idle`.
pub(crate) struct Pool {
    /// Connects without selecting a database or naming the library (see the module docs).
    client: redis::Client,
    /// The database to select after connecting.
    db: i64,
    /// The bound on connecting plus the first command, and on each later command.
    timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Conn>>,
}

/// A pooled connection and the socket timeouts it has (read and write, set together).
pub(super) struct Conn {
    pub(super) con: redis::Connection,
    /// The socket's read and write timeouts, as last set (`None`: not set yet).
    pub(super) armed: Option<Duration>,
}

impl Pool {
    /// A pool connecting as `info` says, each call bounded by `timeout`.
    ///
    /// # Errors
    /// When redis-rs refuses the connection settings.
    pub(crate) fn new(
        info: redis::ConnectionInfo,
        tls: Option<&Tls>,
        timeout: Duration,
        max_idle: usize,
    ) -> redis::RedisResult<Pool> {
        let db = info.redis_settings().db();
        let settings = info
            .redis_settings()
            .clone()
            .set_db(0)
            .set_skip_set_lib_name();
        let info = info.set_redis_settings(settings);
        let client = match tls {
            Some(tls) => redis::Client::build_with_tls(info, tls.certificates())?,
            None => redis::Client::open(info)?,
        };
        Ok(Pool {
            client,
            db,
            timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Where the pool connects, for messages (no credentials).
    pub(super) fn addr(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }

    /// An idle connection, or one opened by `deadline`.
    pub(super) fn take(&self, deadline: Instant) -> redis::RedisResult<Conn> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(con) => Ok(con),
            None => Ok(Conn {
                con: self.open(deadline)?,
                armed: None,
            }),
        }
    }

    /// The same server and database, with another timeout, and no idle connection yet.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Pool {
        Pool {
            client: self.client.clone(),
            db: self.db,
            timeout,
            max_idle: self.max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one; its first command must be answered within the
    /// timeout from now, the connect included.
    pub(crate) fn get(&self) -> redis::RedisResult<Pooled<'_>> {
        let deadline = Instant::now() + self.timeout;
        let con = self.take(deadline)?;
        Ok(Pooled {
            pool: self,
            con: Some(con),
            broken: false,
            deadline: Some(deadline),
        })
    }

    /// A new connection that is not pooled, opened within the timeout, with its own read
    /// timeout (for blocking pops).
    pub(crate) fn connect(&self, read_timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let con = self.open(Instant::now() + self.timeout)?;
        con.set_read_timeout(Some(read_timeout.max(Duration::from_millis(1))))?;
        con.set_write_timeout(Some(self.timeout))?;
        Ok(con)
    }

    /// Connects, authenticates and selects the database by `deadline`.
    fn open(&self, deadline: Instant) -> redis::RedisResult<redis::Connection> {
        let left = left(deadline).ok_or_else(|| self.timed_out())?;
        let mut con = self
            .client
            .get_connection_with_timeout(left)
            .map_err(|err| self.explain(err))?;
        if self.db != 0 {
            let mut armed = None;
            let mut bounded = Bounded::new(&mut con, &mut armed, self, deadline);
            redis::cmd("SELECT")
                .arg(self.db)
                .query::<()>(&mut bounded)?;
        }
        Ok(con)
    }

    /// The error of a call that ran out of time: says where and after how long.
    pub(super) fn timed_out(&self) -> redis::RedisError {
        redis::RedisError::from(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "redis at {} did not answer within {:?}",
                self.client.get_connection_info().addr(),
                self.timeout
            ),
        ))
    }

    /// `err`, or the timeout error when it is a timeout (a bare `EAGAIN` otherwise).
    fn explain(&self, err: redis::RedisError) -> redis::RedisError {
        if err.is_timeout() {
            self.timed_out()
        } else {
            err
        }
    }

    pub(super) fn put_back(&self, con: Conn) {
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
            .field("addr", self.client.get_connection_info().addr())
            .field("db", &self.db)
            .field("timeout", &self.timeout)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

/// What is left until `deadline`, `None` when nothing is.
fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// A connection borrowed from the pool; returned on drop unless it broke.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    con: Option<Conn>,
    broken: bool,
    /// The first command's deadline, set when the connection was taken (or opened).
    deadline: Option<Instant>,
}

impl Pooled<'_> {
    /// Runs `f` on the connection, each request answered by its deadline (the first
    /// command's counts from the moment the connection was taken, the connect included;
    /// each later one's from its start), marking the connection broken when it fails at
    /// the connection level or on authentication (Redis closes the connection of an
    /// unauthenticated client that sends a long command).
    pub(crate) fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Bounded<'_>) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let Some(con) = self.con.as_mut() else {
            // `con` is `Some` until drop; a closed connection is what this would be.
            return Err(redis::RedisError::from(io::Error::from(
                io::ErrorKind::NotConnected,
            )));
        };
        let deadline = self
            .deadline
            .take()
            .unwrap_or_else(|| Instant::now() + self.pool.timeout);
        let result = f(&mut Bounded::new(
            &mut con.con,
            &mut con.armed,
            self.pool,
            deadline,
        ));
        if let Err(err) = &result {
            if is_connection_error(err) || is_auth_error(err) {
                self.broken = true;
            }
        }
        result
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(con) = self.con.take() {
            if !self.broken && redis::ConnectionLike::is_open(&con.con) {
                self.pool.put_back(con);
            }
        }
    }
}

/// A connection whose requests must be answered by a deadline: what [`Pooled::run`]
/// hands its closure. It implements [`redis::ConnectionLike`], so commands, pipelines and
/// scripts run on it as on the connection itself.
pub(crate) struct Bounded<'a> {
    con: &'a mut redis::Connection,
    /// The socket's read and write timeouts as last set: they are set again only when
    /// what is left of the deadline has fallen more than a tenth of the timeout below
    /// them, so that a read ends by the deadline give or take that tenth, without system
    /// calls on a request that has its time.
    armed: &'a mut Option<Duration>,
    pool: &'a Pool,
    deadline: Instant,
}

impl<'a> Bounded<'a> {
    pub(super) fn new(
        con: &'a mut redis::Connection,
        armed: &'a mut Option<Duration>,
        pool: &'a Pool,
        deadline: Instant,
    ) -> Bounded<'a> {
        Bounded {
            con,
            armed,
            pool,
            deadline,
        }
    }

    /// Makes the socket's timeouts at most what is left (and a tenth of the timeout).
    fn arm(&mut self) -> redis::RedisResult<()> {
        let left = left(self.deadline).ok_or_else(|| self.pool.timed_out())?;
        if self
            .armed
            .is_some_and(|armed| armed <= left + self.pool.timeout / 10)
        {
            return Ok(());
        }
        self.con.set_write_timeout(Some(left))?;
        self.con.set_read_timeout(Some(left))?;
        *self.armed = Some(left);
        Ok(())
    }

    /// Reads one reply within what is left.
    fn recv(&mut self) -> redis::RedisResult<redis::Value> {
        self.arm()?;
        self.con
            .recv_response()
            .map_err(|err| self.pool.explain(err))
    }

    fn send(&mut self, cmd: &[u8]) -> redis::RedisResult<()> {
        self.arm()?;
        self.con
            .send_packed_command(cmd)
            .map_err(|err| self.pool.explain(err))
    }
}

impl redis::ConnectionLike for Bounded<'_> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        self.send(cmd)?;
        loop {
            match self.recv()? {
                redis::Value::Push { .. } => {}
                value => return Ok(value),
            }
        }
    }

    /// As redis-rs's own, but returning at the first reply that fails to come (the rest
    /// would each wait again), and, for a transaction, with the first error a queued
    /// command got (redis-rs's "transaction aborted" cannot be made outside it).
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        self.send(cmd)?;
        let mut values = Vec::with_capacity(count);
        let mut queued_error = None;
        let mut index = 0;
        while index < offset + count {
            match self.recv()? {
                // Out-of-band data of RESP3, not a reply.
                redis::Value::Push { .. } => continue,
                redis::Value::ServerError(err) if index < offset => {
                    queued_error.get_or_insert(err);
                }
                value if index >= offset => values.push(value),
                _ => {}
            }
            index += 1;
        }
        match queued_error {
            Some(err) => Err(err.into()),
            None => Ok(values),
        }
    }

    fn get_db(&self) -> i64 {
        self.pool.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.con.is_open()
    }
}
