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

    /// The configuration is not valid: an unparsable Redis URL or environment variable,
    /// or a worker with no queue to serve.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// An argument of a call is not valid, for example an empty queue name.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A task's payload is larger than the backend allows (`with_max_payload`); nothing
    /// was enqueued.
    #[error("task payload is {bytes} bytes, more than the {max} allowed (with_max_payload)")]
    TooLarge {
        /// The payload's size.
        bytes: usize,
        /// The bound.
        max: usize,
    },

    /// Something redisq expected to hold did not: a bug in redisq, worth reporting.
    #[error("internal error (a bug in redisq): {0}")]
    Internal(String),

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

    /// Whether the same call may succeed if made again later, unchanged: Redis was
    /// unreachable, or answered that it is busy, loading, or failing over (`BUSY`,
    /// `LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`). False for mistakes that a
    /// retry repeats: configuration, arguments, serialization, a failed task.
    ///
    /// ```
    /// let err = redisq::Error::InvalidArgument("queue name must not be empty".into());
    /// assert!(!err.is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            Error::Redis(err) => {
                use redis::RetryMethod;
                !matches!(
                    err.retry_method(),
                    RetryMethod::NoRetry | RetryMethod::AskRedirect | RetryMethod::MovedRedirect
                ) || matches!(err.code(), Some("BUSY"))
            }
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str) -> Error {
        match redis::parse_redis_value(format!("-{code} detail\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(err)) => Error::from(redis::RedisError::from(err)),
            other => Error::Internal(format!("not a server error: {other:?}")),
        }
    }

    #[test]
    fn retryable_errors() {
        let refused = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(Error::from(refused).is_retryable());
        assert!(server_error("TRYAGAIN").is_retryable());
        assert!(server_error("LOADING").is_retryable());
        assert!(!server_error("WRONGTYPE").is_retryable());
        assert!(!server_error("ERR").is_retryable());
        assert!(!Error::Config("x".to_owned()).is_retryable());
        assert!(!Error::TaskFailed {
            id: "1".to_owned(),
            error: "e".to_owned()
        }
        .is_retryable());
    }
}
