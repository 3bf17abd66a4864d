//! The crate's one error type, [`Error`], and its [`Result`] alias.

use std::io;

/// Everything that can go wrong in redisq.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached in time: connection refused, no answer within the
    /// backend's timeout (`with_timeout`), connection dropped, or a server still loading
    /// its data (`LOADING`).
    ///
    /// Producers get this when Redis is down; nothing was enqueued. It is the one error on
    /// which `enqueue_or_run` and `fallback = "inline"` run a task inline.
    #[error("redis is unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),

    /// Redis refused the credentials (`WRONGPASS`, a failed `AUTH`), asked for some
    /// (`NOAUTH`: the server requires a password and none was given), or refused a command
    /// to this user (`NOPERM`, or a script's command denied by the ACL).
    ///
    /// A mistake in the configuration, not an outage: retrying does not help, and the
    /// inline fallback does not run. A worker does not start with it.
    #[error("{}", auth_message(.0))]
    Auth(#[source] redis::RedisError),

    /// Redis is at its memory limit (`maxmemory`, with the `noeviction` policy) and refused
    /// a write (`OOM`).
    ///
    /// An enqueue that gets it did not enqueue the tasks of the call that failed (with
    /// status records, each script call of up to a thousand tasks is refused as a whole
    /// before it writes). It may succeed later, once workers have drained some of the
    /// queue or the limit is raised, so it is retryable; but Redis is up, so it is not
    /// [`Error::is_unavailable`] and the inline fallback does not run.
    #[error("redis is out of memory (maxmemory reached) and refused the write: {0}")]
    OutOfMemory(#[source] redis::RedisError),

    /// Redis answered with another error.
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

    /// The tasks were enqueued on the master, but fewer of its replicas than
    /// `with_replica_acks` asks for confirmed them in time (`WAIT`): they are queued, and
    /// would be lost only if the master failed before replicating them. Not retryable (a
    /// retry would enqueue them twice).
    #[error("enqueued, but only {acked} of the {wanted} replica(s) asked for confirmed it in time (WAIT): a failover now could lose it")]
    NotReplicated {
        /// Replicas that confirmed the write.
        acked: u64,
        /// Replicas asked for.
        wanted: u64,
    },
}

impl Error {
    /// Whether Redis could not be reached: connection refused, no answer within the
    /// timeout, dropped connection, or still loading its data ([`Error::Unavailable`]).
    ///
    /// Such an operation may succeed when retried later. It is the condition of the inline
    /// fallback; a full Redis ([`Error::OutOfMemory`]) and refused credentials
    /// ([`Error::Auth`]) are not unavailable.
    ///
    /// ```
    /// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// let err = redisq::Error::from(redis::RedisError::from(refused));
    /// assert!(err.is_unavailable());
    /// ```
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// Whether the same call may succeed if made again later, unchanged: Redis was
    /// unreachable, out of memory (`OOM`), or answered that it is busy, loading, or failing
    /// over (`BUSY`, `LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`). False for mistakes
    /// that a retry repeats: refused credentials or permissions ([`Error::Auth`]),
    /// configuration, arguments, serialization, a failed task.
    ///
    /// ```
    /// let err = redisq::Error::InvalidArgument("queue name must not be empty".into());
    /// assert!(!err.is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::OutOfMemory(_) => true,
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
        if is_auth_error(&err) {
            Error::Auth(err)
        } else if has_code(&err, "OOM") {
            Error::OutOfMemory(err)
        } else if is_connection_error(&err) {
            Error::Unavailable(err)
        } else {
            Error::Redis(err)
        }
    }
}

/// What [`Error::Auth`] says: what Redis refused, and what to check.
fn auth_message(err: &redis::RedisError) -> String {
    if is_unauthenticated(err) {
        format!(
            "redis requires a password and none was given: {err} (set it in the redis url, \
             `redis://:<password>@host`, or in REDIS_PASSWORD)"
        )
    } else if is_permission_error(err) {
        format!(
            "redis refused a command to this user (acl): {err} (the user needs the commands \
             redisq sends, scripts included, on the keys of its namespace)"
        )
    } else {
        format!("redis refused the credentials: {err} (check the user and password)")
    }
}

/// Whether Redis refused the credentials, asked for them, or refused a command to this
/// user: the errors that are [`Error::Auth`].
pub(crate) fn is_auth_error(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::AuthenticationFailed
        || is_unauthenticated(err)
        || has_code(err, "WRONGPASS")
        || is_permission_error(err)
}

/// Whether Redis wants a password that was not given: `NOAUTH`, or the protocol error
/// it answers (closing the connection) to a long command from an unauthenticated client.
fn is_unauthenticated(err: &redis::RedisError) -> bool {
    has_code(err, "NOAUTH")
        || server_errors(err).iter().any(|(code, detail)| {
            code == "ERR" && detail.starts_with("Protocol error: unauthenticated")
        })
}

/// Whether Redis refused a command to this user: `NOPERM`, or (Redis 7.0) a script whose
/// command the ACL denies, which is an `ERR` saying so.
fn is_permission_error(err: &redis::RedisError) -> bool {
    has_code(err, "NOPERM")
        || server_errors(err).iter().any(|(code, detail)| {
            code == "ERR" && detail.contains("can't run this command or subcommand")
        })
}

/// Whether `err` is, or (for a pipeline) contains, a server error with this code.
fn has_code(err: &redis::RedisError, code: &str) -> bool {
    err.code() == Some(code) || server_errors(err).iter().any(|(c, _)| c == code)
}

/// The code and detail of every server error in `err` (one, or those of a pipeline).
fn server_errors(err: &redis::RedisError) -> Vec<(String, String)> {
    if !matches!(
        err.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    ) {
        return Vec::new();
    }
    err.clone()
        .into_server_errors()
        .map(|errors| {
            errors
                .iter()
                .map(|(_, e)| (e.code().to_owned(), e.details().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
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
        server_error_with(code, "detail")
    }

    fn server_error_with(code: &str, detail: &str) -> Error {
        match redis::parse_redis_value(format!("-{code} {detail}\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(err)) => Error::from(redis::RedisError::from(err)),
            other => Error::Internal(format!("not a server error: {other:?}")),
        }
    }

    fn timed_out() -> Error {
        Error::from(redis::RedisError::from(io::Error::from(
            io::ErrorKind::WouldBlock,
        )))
    }

    #[test]
    fn retryable_errors() {
        let refused = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(Error::from(refused).is_retryable());
        assert!(timed_out().is_retryable());
        assert!(server_error("TRYAGAIN").is_retryable());
        assert!(server_error("LOADING").is_retryable());
        assert!(server_error("OOM").is_retryable());
        assert!(!server_error("WRONGTYPE").is_retryable());
        assert!(!server_error("ERR").is_retryable());
        assert!(!server_error("NOAUTH").is_retryable());
        assert!(!server_error("NOPERM").is_retryable());
        assert!(!Error::Config("x".to_owned()).is_retryable());
        assert!(!Error::TaskFailed {
            id: "1".to_owned(),
            error: "e".to_owned()
        }
        .is_retryable());
    }

    #[test]
    fn unavailable_errors() {
        let refused = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(Error::from(refused).is_unavailable());
        assert!(timed_out().is_unavailable());
        assert!(server_error("LOADING").is_unavailable());
        // Redis answered: up, but full, or refusing this client.
        assert!(!server_error("OOM").is_unavailable());
        assert!(!server_error("NOAUTH").is_unavailable());
    }

    #[test]
    fn refused_credentials_and_permissions_are_auth_errors() {
        let failed = redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let failed = Error::from(failed);
        assert!(matches!(failed, Error::Auth(_)), "{failed:?}");
        assert!(!failed.is_unavailable() && !failed.is_retryable());
        assert!(failed
            .to_string()
            .starts_with("redis refused the credentials: "));

        for code in ["NOAUTH", "WRONGPASS", "NOPERM"] {
            let err = server_error(code);
            assert!(matches!(err, Error::Auth(_)), "{code}: {err:?}");
        }
        assert!(server_error("NOAUTH")
            .to_string()
            .starts_with("redis requires a password and none was given"));
        // What Redis answers to a long command (a script call) before authentication.
        let long = server_error_with("ERR", "Protocol error: unauthenticated multibulk length");
        assert!(matches!(long, Error::Auth(_)), "{long:?}");
        assert!(long.to_string().starts_with("redis requires a password"));
        assert!(server_error("NOPERM")
            .to_string()
            .starts_with("redis refused a command to this user (acl)"));
        // Redis 7.0 reports a script's command denied by the ACL as an ERR.
        let script = server_error_with(
            "ERR",
            "The user executing the script can't run this command or subcommand script: 84e2, \
             on @user_script:1.",
        );
        assert!(matches!(script, Error::Auth(_)), "{script:?}");
        assert!(matches!(server_error("ERR"), Error::Redis(_)));
    }

    #[test]
    fn out_of_memory_is_its_own_error() {
        let err = server_error_with("OOM", "command not allowed when used memory > 'maxmemory'.");
        assert!(matches!(err, Error::OutOfMemory(_)), "{err:?}");
        assert!(err.is_retryable() && !err.is_unavailable());
        assert!(err
            .to_string()
            .starts_with("redis is out of memory (maxmemory reached) and refused the write: "));
    }

    /// A connection that answers every request with `replies`.
    struct Canned(Vec<redis::Value>);

    impl redis::ConnectionLike for Canned {
        fn req_packed_command(&mut self, _: &[u8]) -> redis::RedisResult<redis::Value> {
            Ok(self.0.remove(0))
        }
        fn req_packed_commands(
            &mut self,
            _: &[u8],
            _: usize,
            count: usize,
        ) -> redis::RedisResult<Vec<redis::Value>> {
            Ok(self.0.drain(..count).collect())
        }
        fn get_db(&self) -> i64 {
            0
        }
        fn check_connection(&mut self) -> bool {
            true
        }
        fn is_open(&self) -> bool {
            true
        }
    }

    fn reply(text: &str) -> redis::Value {
        redis::parse_redis_value(text.as_bytes()).expect("a reply")
    }

    #[test]
    fn errors_in_a_pipeline_are_classified_by_their_codes() {
        for (code, auth) in [("NOAUTH", true), ("NOPERM", true), ("OOM", false)] {
            let mut con = Canned(vec![reply("+OK\r\n"), reply(&format!("-{code} no\r\n"))]);
            let mut pipe = redis::pipe();
            pipe.cmd("SET").arg("a").arg(1).ignore();
            pipe.cmd("RPUSH").arg("b").arg(1).ignore();
            let err = Error::from(pipe.query::<()>(&mut con).expect_err("an error"));
            assert_eq!(matches!(err, Error::Auth(_)), auth, "{code}: {err:?}");
            assert_eq!(
                matches!(err, Error::OutOfMemory(_)),
                !auth,
                "{code}: {err:?}"
            );
        }
    }
}
