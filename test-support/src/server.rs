//! A private `redis-server` for one test, on a free loopback port.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How many free ports [`RedisServerBuilder::start`] tries before it gives up.
const START_ATTEMPTS: usize = 5;
/// How often a starting server is asked whether it answers.
const POLL: Duration = Duration::from_millis(10);
/// How long one such question may take. Short, because what holds the port may be a socket
/// that never answers; a server too busy to answer in time is asked again.
const ASK: Duration = Duration::from_millis(250);

/// How to start a [`RedisServer`]: without persistence unless told otherwise. Made by
/// [`RedisServer::builder`].
#[derive(Debug, Clone)]
pub struct RedisServerBuilder {
    /// `redis-server --<name> <value>` options, in order, each name at most once.
    config: Vec<(String, String)>,
    start_timeout: Duration,
}

impl RedisServerBuilder {
    /// Persists every write to an append-only file before answering (`appendonly yes`,
    /// `appendfsync always`), so that what a client was told is stored survives a SIGKILL
    /// and [`RedisServer::restart`].
    #[must_use]
    pub fn aof(self) -> RedisServerBuilder {
        self.config("appendonly", "yes")
            .config("appendfsync", "always")
    }

    /// Caps the memory the server uses for data at `bytes` (`maxmemory`); past it, writes
    /// fail (the default policy, `noeviction`, unless set with [`RedisServerBuilder::config`]).
    #[must_use]
    pub fn maxmemory(self, bytes: u64) -> RedisServerBuilder {
        self.config("maxmemory", &bytes.to_string())
    }

    /// Requires clients to authenticate with `password` (`requirepass`, the password of
    /// the `default` user). [`RedisServer::url`] and [`RedisServer::connection`] then carry
    /// it, so the password should need no escaping in a URL (letters, digits, `-`, `_`);
    /// [`RedisServer::url_as`] makes URLs with other credentials.
    #[must_use]
    pub fn requirepass(self, password: &str) -> RedisServerBuilder {
        self.config("requirepass", password)
    }

    /// Any other `redis-server` option, `--<name> <value>`; it replaces an earlier value of
    /// the same option.
    #[must_use]
    pub fn config(mut self, name: &str, value: &str) -> RedisServerBuilder {
        match self.config.iter_mut().find(|(n, _)| n == name) {
            Some(option) => option.1 = value.to_owned(),
            None => self.config.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    /// How long the server may take to answer `PING` after it is started or restarted
    /// (default 20 seconds).
    #[must_use]
    pub fn start_timeout(mut self, limit: Duration) -> RedisServerBuilder {
        self.start_timeout = limit;
        self
    }

    /// Starts the server on a free loopback port and returns once it answers. Should
    /// another process take the port between its choice and the server's start, it starts
    /// again on another.
    ///
    /// # Panics
    /// When `redis-server` cannot be run, or does not answer in time, or fails to start on
    /// five ports in a row; the message ends with the server's log.
    #[must_use]
    pub fn start(self) -> RedisServer {
        self.start_on(free_port)
    }

    /// [`RedisServerBuilder::start`], with the ports to try given by `next_port`.
    fn start_on(self, mut next_port: impl FnMut() -> u16) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("redisq-test-redis-")
            .tempdir()
            .expect("a temporary directory for redis-server");
        let mut server = RedisServer {
            port: 0,
            config: self.config,
            start_timeout: self.start_timeout,
            child: None,
            dir,
        };
        let mut failures = Vec::new();
        while failures.len() < START_ATTEMPTS {
            server.port = next_port();
            match server.spawn() {
                Started::Answers => return server,
                Started::Exited(status) => failures.push(format!("port {}: {status}", server.port)),
                Started::Silent => server.fail(&format!(
                    "did not answer within {:?} on port {}",
                    server.start_timeout, server.port
                )),
            }
        }
        server.fail(&format!(
            "exited at start on {START_ATTEMPTS} ports ({})",
            failures.join("; ")
        ))
    }
}

/// A private `redis-server` for one test: on a free port of 127.0.0.1, in a temporary
/// directory of its own (its log, and its append-only file with
/// [`RedisServerBuilder::aof`]), without persistence by default.
///
/// [`RedisServer::kill`] and [`RedisServer::restart`] crash it and bring it back on the
/// same port and directory. Dropping it kills the process and removes the directory. It
/// only ever signals the process it started, through that process's own handle, never a
/// process found by name or port.
///
/// ```no_run
/// use redisq_test_support::RedisServer;
///
/// let mut server = RedisServer::builder().aof().start();
/// let mut con = server.connection();
/// redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).unwrap();
/// server.kill(); // SIGKILL
/// server.restart(); // same port, same append-only file: `k` is still there
/// ```
pub struct RedisServer {
    port: u16,
    config: Vec<(String, String)>,
    start_timeout: Duration,
    /// The running process, if any; taken (and reaped) when killed.
    child: Option<Child>,
    /// Last, so that it is removed after the process is killed.
    dir: TempDir,
}

/// How an attempt to run the server ended.
enum Started {
    /// It answers, as the process just started.
    Answers,
    /// It exited, most likely because the port was taken.
    Exited(ExitStatus),
    /// It neither answered nor exited in time (and has been killed).
    Silent,
}

impl RedisServer {
    /// How to start one, for options other than the defaults.
    #[must_use]
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder {
            config: vec![
                ("save".to_owned(), String::new()),
                ("appendonly".to_owned(), "no".to_owned()),
            ],
            start_timeout: Duration::from_secs(20),
        }
    }

    /// Starts one with the default options (no persistence).
    ///
    /// # Panics
    /// As [`RedisServerBuilder::start`].
    #[must_use]
    pub fn start() -> RedisServer {
        RedisServer::builder().start()
    }

    /// Its URL, `redis://127.0.0.1:<port>`, or `redis://:<password>@127.0.0.1:<port>`
    /// when started with [`RedisServerBuilder::requirepass`]; the same after a restart.
    #[must_use]
    pub fn url(&self) -> String {
        match self.password() {
            Some(password) => self.url_as(None, password),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Its URL with other credentials: `redis://[<user>]:<password>@127.0.0.1:<port>` (an
    /// ACL user, or a wrong password). Neither is escaped.
    #[must_use]
    pub fn url_as(&self, user: Option<&str>, password: &str) -> String {
        format!(
            "redis://{}:{password}@127.0.0.1:{}",
            user.unwrap_or(""),
            self.port
        )
    }

    /// The password it requires ([`RedisServerBuilder::requirepass`]), if any.
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.config
            .iter()
            .find(|(name, _)| name == "requirepass")
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// Its port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory: its log (`redis.log`) and, with [`RedisServerBuilder::aof`], its
    /// append-only file.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The id of its process, `None` once killed.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A plain connection to it.
    ///
    /// # Panics
    /// When it does not answer (it was killed, say).
    #[must_use]
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("no redis at {} ({e})", self.url()))
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it; nothing is saved
    /// beyond what the append-only file already holds. Does nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The handle is unreaped until `wait`, so its pid cannot name another process.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, in the same directory (so with the data of its
    /// append-only file, if it has one), killing it first if it still runs; returns once it
    /// answers. While the port is briefly held by another socket it keeps trying, up to
    /// the start timeout.
    ///
    /// # Panics
    /// When it cannot start on its port in time; the message ends with the server's log.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + self.start_timeout;
        loop {
            match self.spawn() {
                Started::Answers => return,
                Started::Exited(status) if Instant::now() < deadline => {
                    log_line(&format!(
                        "restart on port {} failed ({status}); retrying",
                        self.port
                    ));
                    std::thread::sleep(Duration::from_millis(50));
                }
                Started::Exited(status) => self.fail(&format!(
                    "could not restart on port {} within {:?} (last: {status})",
                    self.port, self.start_timeout
                )),
                Started::Silent => self.fail(&format!(
                    "did not answer within {:?} after a restart on port {}",
                    self.start_timeout, self.port
                )),
            }
        }
    }

    /// Runs `redis-server` on `self.port` and waits until it answers, exits or runs out
    /// of time.
    fn spawn(&mut self) -> Started {
        debug_assert!(self.child.is_none());
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path());
        for (name, value) in &self.config {
            command.arg(format!("--{name}")).arg(value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server could not be run ({e}); scripts/ensure-redis.sh installs it")
            });
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + self.start_timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Started::Exited(status);
                }
            }
            if self.answers_as(pid) {
                return Started::Answers;
            }
            if Instant::now() >= deadline {
                self.kill();
                return Started::Silent;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the server on the port answers `PING` (which it does not while it loads its
    /// append-only file) and is process `pid`, not a server another test started on the
    /// same port.
    fn answers_as(&self, pid: u32) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(ASK) else {
            return false;
        };
        let _ = con.set_read_timeout(Some(ASK));
        if redis::cmd("PING").query::<String>(&mut con).is_err() {
            return false;
        }
        let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut con) else {
            return false;
        };
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|id| id.trim().parse::<u32>().ok())
            == Some(pid)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Stops the server and panics with `what` and the end of its log.
    fn fail(&mut self, what: &str) -> ! {
        self.kill();
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "private redis-server {what}; its log ({}):\n{}",
            self.log_path().display(),
            tail.join("\n")
        )
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port of 127.0.0.1 that no socket is bound to, as of now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A note in the test's output.
fn log_line(line: &str) {
    eprintln!("redisq-test-support: {line}");
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::{free_port, RedisServer};

    #[test]
    fn a_taken_port_is_given_up_for_another() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken_port = taken.local_addr().expect("address").port();
        let mut offered = vec![taken_port];
        let server = RedisServer::builder().start_on(|| offered.pop().unwrap_or_else(free_port));
        assert_ne!(server.port(), taken_port);
        let pong: String = redis::cmd("PING")
            .query(&mut server.connection())
            .expect("ping");
        assert_eq!(pong, "PONG");
    }

    #[test]
    fn a_server_with_a_password_answers_through_its_url_only() {
        let server = RedisServer::builder().requirepass("s3cret").start();
        assert_eq!(server.password(), Some("s3cret"));
        assert!(server.url().starts_with("redis://:s3cret@127.0.0.1:"));
        let pong: String = redis::cmd("PING")
            .query(&mut server.connection())
            .expect("ping");
        assert_eq!(pong, "PONG");
        let anonymous = format!("redis://127.0.0.1:{}", server.port());
        let mut con = redis::Client::open(anonymous)
            .and_then(|c| c.get_connection())
            .expect("connect");
        let err = redis::cmd("PING").query::<String>(&mut con).unwrap_err();
        assert_eq!(err.code(), Some("NOAUTH"), "{err}");
    }

    #[test]
    fn options_are_set_once_each() {
        let builder = RedisServer::builder().aof().maxmemory(1 << 20).aof();
        let names: Vec<&str> = builder.config.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["save", "appendonly", "appendfsync", "maxmemory"]);
        assert_eq!(builder.config[1].1, "yes");
    }
}
