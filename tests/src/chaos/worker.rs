//! The worker process of a chaos run (`chaos_worker`, or `chaos worker`): a redisq
//! [`Worker`] configured from the environment, whose task bodies append
//! their executions to a history file of the process's own, and which shuts down
//! gracefully when a line `stop` arrives on its standard input or the input closes (so
//! that it also ends when the process that started it dies).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `REDIS_URL` | the Redis to use (in a run, the proxy's address) | `redis://127.0.0.1:6379` |
//! | `CHAOS_NAMESPACE` | the namespace | `chaos` |
//! | `CHAOS_HISTORY_DIR` | where to write `worker-<pid>.jsonl` | none: nothing recorded |
//! | `CHAOS_LEASE_MS` | the lease (`with_lease`) | 1000 |
//! | `CHAOS_BLOCK_MS` | the block timeout (`with_block_timeout`) | 200 |
//! | `CHAOS_TIMEOUT_MS` | the command timeout (`with_timeout`) | 1000 |
//! | `CHAOS_RETRY_MS` | the first retry's backoff (capped at ten times it) | 100 |
//! | `CHAOS_PREFETCH` | tasks a thread claims per round trip at most | 4 |
//! | `CHAOS_THREADS` | `queue=threads,…`; a queue at 0 is not served | every queue of [`ALL_QUEUES`] at 1 |

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use redisq::{RedisQueueBackend, TaskContext, Worker};

use super::history::{now_us, Event, Execution};
use super::tasks::{Kind, ALL_QUEUES};

/// The history file of this process, opened on first use.
static HISTORY: OnceLock<Option<File>> = OnceLock::new();

/// Appends one execution line of the running task (`seq`, from its arguments) to this
/// process's history file, in one `write` to a file opened with `O_APPEND`, so that lines
/// of concurrent threads never interleave and a kill cannot leave half a line but in the
/// rarest case. Returns the attempt of the running task (1 outside a worker).
///
/// # Panics
/// When the line cannot be written whole: a history with holes would mislead the checker.
pub fn record(kind: Kind, seq: u64, event: Event) -> u32 {
    record_keyed(kind, None, seq, event)
}

/// [`record`] for a task that carries an ordering key, which the line records.
///
/// # Panics
/// As [`record`].
pub fn record_keyed(kind: Kind, key: Option<&str>, seq: u64, event: Event) -> u32 {
    let context = TaskContext::current();
    let attempt = context.as_ref().map_or(1, |c| c.attempt);
    let Some(mut file) = HISTORY.get_or_init(open_history).as_ref() else {
        return attempt;
    };
    let execution = Execution {
        seq,
        kind,
        key: key.map(str::to_owned),
        id: context
            .as_ref()
            .map(|c| c.id.to_string())
            .unwrap_or_default(),
        queue: context.map(|c| c.queue).unwrap_or_default(),
        attempt,
        pid: std::process::id(),
        at_us: now_us(),
        event,
    };
    let mut line = serde_json::to_string(&execution).expect("an execution serializes");
    line.push('\n');
    let written = file
        .write(line.as_bytes())
        .expect("the history file takes a line");
    assert_eq!(written, line.len(), "a history line written in part");
    attempt
}

fn open_history() -> Option<File> {
    let dir = PathBuf::from(std::env::var_os("CHAOS_HISTORY_DIR")?);
    let path = dir.join(format!("worker-{}.jsonl", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("history file {}: {e}", path.display()));
    Some(file)
}

fn env_ms(name: &str, default: u64) -> Duration {
    let ms = match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number of milliseconds, not {value:?}")),
        Err(_) => default,
    };
    Duration::from_millis(ms)
}

/// The threads per queue of `CHAOS_THREADS` (`queue=threads,…`); every queue of the run at
/// one thread when unset.
///
/// # Panics
/// When the variable is malformed.
#[must_use]
pub fn threads_from_env() -> Vec<(String, usize)> {
    let Ok(spec) = std::env::var("CHAOS_THREADS") else {
        return ALL_QUEUES.iter().map(|q| ((*q).to_owned(), 1)).collect();
    };
    parse_threads(&spec).unwrap_or_else(|| panic!("CHAOS_THREADS must be queue=n,…, not {spec:?}"))
}

/// Parses `queue=threads,…`.
#[must_use]
pub fn parse_threads(spec: &str) -> Option<Vec<(String, usize)>> {
    spec.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (queue, n) = part.split_once('=')?;
            Some((queue.to_owned(), n.parse().ok()?))
        })
        .collect()
}

/// Formats threads per queue for `CHAOS_THREADS`.
#[must_use]
pub fn format_threads(threads: &[(String, usize)]) -> String {
    let parts: Vec<String> = threads.iter().map(|(q, n)| format!("{q}={n}")).collect();
    parts.join(",")
}

/// Runs a worker process as the environment says, until told to stop; then shuts the
/// worker down gracefully and returns.
///
/// # Panics
/// When the configuration is invalid or the worker cannot start.
pub fn main_from_env() {
    redisq_test_support::init_logging();
    // Referencing the tasks links the registrations in.
    log::debug!("tasks: {:?}", Kind::wire_names());
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let namespace = std::env::var("CHAOS_NAMESPACE").unwrap_or_else(|_| "chaos".to_owned());
    let retry = env_ms("CHAOS_RETRY_MS", 100);
    let backend = RedisQueueBackend::new(&url)
        .expect("a valid REDIS_URL")
        .with_namespace(namespace)
        .with_lease(env_ms("CHAOS_LEASE_MS", 1000))
        .with_block_timeout(env_ms("CHAOS_BLOCK_MS", 200))
        .with_timeout(env_ms("CHAOS_TIMEOUT_MS", 1000))
        .with_retry_backoff(retry, retry * 10);
    let prefetch = std::env::var("CHAOS_PREFETCH")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4);
    let served: Vec<(String, usize)> = threads_from_env()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    let mut builder = Worker::builder(backend)
        .queues(served.iter().map(|(q, _)| q.clone()))
        .prefetch(prefetch)
        .batch_wait(Duration::from_millis(20));
    for (queue, threads) in &served {
        builder = builder.threads(queue.clone(), *threads);
    }
    let worker = builder.start().expect("the worker starts");
    println!("ready {}", worker.id());
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        match line {
            Ok(line) if line.trim() == "stop" => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let finished = worker.shutdown_timeout(Duration::from_secs(10));
    if !finished {
        eprintln!("chaos worker: threads still busy at the shutdown deadline");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_round_trip() {
        let threads = vec![("a".to_owned(), 1), ("b-c".to_owned(), 0)];
        let spec = format_threads(&threads);
        assert_eq!(spec, "a=1,b-c=0");
        assert_eq!(parse_threads(&spec), Some(threads));
        assert_eq!(parse_threads("a"), None);
        assert_eq!(parse_threads("a=x"), None);
    }
}
