//! What redisq's test trees share (`tests/`, `examples/tests/`, `redisq-cli/tests/`), so that
//! none of them carries its own copy:
//!
//! - [`redis_url`] and [`raw`]: the shared Redis server the tests run against (`REDIS_URL`,
//!   default `redis://127.0.0.1:6379`) and a plain connection to it;
//! - [`Namespace`]: a namespace of one test's own (`test-<32 hex digits>`) whose keys are
//!   all deleted when it drops, so that tests run in parallel on one server and leave
//!   nothing behind;
//! - [`RedisServer`]: a private `redis-server` on a free loopback port, in a temporary
//!   directory of its own, that a test may kill (SIGKILL) and restart on the same port, and
//!   that stops when dropped;
//! - [`wait_until`]: polling a condition until a deadline, failing the test with what it
//!   waited for;
//! - [`init_logging`]: the `log` output of the code under test, captured per test.
//!
//! It is a development dependency only (`publish = false`): nothing here is part of
//! redisq's API.

mod cluster;
mod namespace;
mod raw;
mod server;
mod tls;
mod wait;

pub use cluster::{ClusterNode, RedisCluster};
pub use namespace::Namespace;
pub use raw::Raw;
pub use server::{RedisServer, RedisServerBuilder};
pub use tls::RedisTls;
pub use wait::{wait_until, Deadline};

/// The URL of the shared Redis server the tests use: `REDIS_URL`, else
/// `redis://127.0.0.1:6379` (`scripts/ensure-redis.sh` starts one there).
#[must_use]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A plain connection to the shared Redis ([`redis_url`]; a cluster for a
/// `redis+cluster://` URL), for checks and for writing keys the way a producer without
/// redisq would.
///
/// # Panics
/// When the server does not answer.
#[must_use]
pub fn raw() -> Raw {
    connect(&redis_url())
}

/// A plain connection to the Redis server or cluster at `url`.
///
/// # Panics
/// When `url` is not a Redis URL or the server does not accept a connection within
/// 10 seconds.
#[must_use]
pub fn connect(url: &str) -> Raw {
    Raw::open(url).unwrap_or_else(|e| {
        panic!("no redis at {url} ({e}); scripts/ensure-redis.sh starts the shared one")
    })
}

/// Sends the code under test's `log` records to the test's captured output (filtered by
/// `RUST_LOG`). Safe to call from every test: only the first call in a process installs
/// the logger.
pub fn init_logging() {
    let _ = env_logger::builder().is_test(true).try_init();
}
