//! The crate's one error type, [`Error`], and its [`Result`] alias.

use std::io;

/// Everything that can go wrong in redisq.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached in time: connection refused, timed out or dropped.
    ///
    /// Producers get this when Redis is down; nothing was enqueued.
    #[error("redis is unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),

    /// Redis answered with an error.
    #[error(transparent)]
    Redis(redis::RedisError),

    /// A setting or a name is not valid, for example an unparsable Redis URL.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A task's arguments could not be serialized to JSON.
    #[error("task arguments could not be serialized: {0}")]
    Serialize(#[source] serde_json::Error),

    /// Two tasks linked into this binary share one wire name.
    #[error("task name `{name}` is registered twice (queues `{first_queue}` and `{second_queue}`): give one of them another `name = \"...\"`")]
    DuplicateTask {
        /// The wire name used twice.
        name: String,
        /// The queue of the first registration.
        first_queue: String,
        /// The queue of the second registration.
        second_queue: String,
    },

    /// A task is dead (out of retries, or never runnable): its last error.
    #[error("task {id} failed: {error}")]
    TaskFailed {
        /// The task's id.
        id: String,
        /// Its last error.
        error: String,
    },

    /// A stored result does not deserialize into the type asked for.
    #[error("task result could not be deserialized: {0}")]
    Result(#[source] serde_json::Error),

    /// A worker thread could not be started.
    #[error("worker thread could not be started: {0}")]
    Spawn(#[source] io::Error),
}

impl Error {
    /// Whether Redis could not be reached (connection refused, timeout, dropped connection).
    ///
    /// Such an operation may succeed when retried later.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        if is_connection_error(&err) {
            Error::Unavailable(err)
        } else {
            Error::Redis(err)
        }
    }
}

/// Whether a Redis error means the connection is unusable (as opposed to a command error).
///
/// Besides I/O failures this includes a server that is still loading its data set
/// (`LOADING`) or otherwise asks the client to wait and retry.
pub(crate) fn is_connection_error(err: &redis::RedisError) -> bool {
    use redis::RetryMethod;
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.retry_method(),
            RetryMethod::Reconnect
                | RetryMethod::ReconnectFromInitialConnections
                | RetryMethod::WaitAndRetry
        )
}

/// `Result` with redisq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
