//! `redisq`: the command-line tool of redisq. It reads and administers a deployment
//! through Redis alone (queue and worker figures, task status records, dead letters,
//! lease recovery, health), so it needs none of the application's code.
//!
//! This file holds the command line (clap) and the dispatch; `commands.rs` runs each
//! command and `format.rs` renders tables, times and figures.
//!
//! Exit codes: 0 success; 1 a runtime error (Redis unavailable, a task not found, …);
//! 2 a usage error.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod commands;
mod format;

use std::env;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use redisq::RedisQueueBackend;

/// Inspect and administer redisq queues on Redis.
#[derive(Debug, Parser)]
#[command(name = "redisq", version, arg_required_else_help = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
struct Global {
    /// Redis server, `redis://[[user]:password@]host[:port][/db]` (`rediss://` for TLS), or
    /// a cluster, `redis+cluster://host:port[,host:port…]` [default: $REDIS_URL, else
    /// $REDIS_HOST, $REDIS_PORT, $REDIS_DB, $REDIS_USERNAME and $REDIS_PASSWORD, else
    /// redis://127.0.0.1:6379]
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,

    /// Prefix of every key of the deployment
    #[arg(
        long,
        global = true,
        value_name = "NS",
        env = "REDISQ_NAMESPACE",
        default_value = "redisq"
    )]
    namespace: String,

    /// Bound on connecting and on each command, in seconds
    #[arg(long, global = true, value_name = "SECS", default_value = "5", value_parser = seconds)]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Figures of every known queue, and the workers
    Info {
        /// Print the figures as one JSON object
        #[arg(long)]
        json: bool,
        /// Refresh every SECS seconds (default 2) until Ctrl-C; with --json, one object a line
        #[arg(
            long,
            value_name = "SECS",
            num_args = 0..=1,
            default_missing_value = "2",
            value_parser = seconds
        )]
        watch: Option<Duration>,
    },
    /// The status record of a task
    Task {
        /// The task's id
        id: String,
        /// Print the record as JSON
        #[arg(long)]
        json: bool,
    },
    /// List, requeue or purge a queue's dead letters
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Return the tasks of workers whose lease ran out to the head of their queue
    Recover {
        /// Only this queue [default: every known queue]
        queue: Option<String>,
    },
    /// Whether Redis answers: latency, version, memory, the settings that decide what
    /// becomes of the tasks (eviction, persistence, replicas), what an acknowledged
    /// enqueue survives, and warnings
    Health {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DeadCommand {
    /// A page of a queue's dead letters, newest first
    List {
        /// The queue
        queue: String,
        /// How many of the newest to skip
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: usize,
        /// How many to show
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Print the records as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back to the tail of their queue, attempts reset
    Requeue {
        /// The queue
        queue: String,
        /// The task id of the dead letter to requeue
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Requeue every dead letter of the queue
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead letter of a queue
    Purge {
        /// The queue
        queue: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short)]
        yes: bool,
    },
}

/// Parses a positive number of seconds.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{text} is not a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text} seconds: {e}"))
}

/// What a command needs: the backend, and how to name the server in messages.
#[derive(Debug)]
pub struct Ctx {
    /// The backend, with the namespace and timeout of the command line.
    pub backend: RedisQueueBackend,
    /// The server's URL, password hidden.
    pub url: String,
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Redis failed or could not be reached: exit 1.
    Redis(redisq::Error),
    /// Redis could not be reached, as a health check reports it: exit 1.
    Unavailable(String),
    /// Anything else that failed at run time: exit 1.
    Runtime(String),
    /// The command cannot run as given: exit 2.
    Usage(String),
    /// Writing the output failed.
    Output(io::Error),
}

impl From<redisq::Error> for Failure {
    fn from(err: redisq::Error) -> Self {
        Failure::Redis(err)
    }
}

impl Failure {
    /// Prints the failure to stderr and says how to exit.
    fn report(self, url: &str) -> ExitCode {
        let (message, code) = match self {
            Failure::Redis(err) => (describe(url, &err), 1),
            Failure::Unavailable(cause) => {
                // The health check's error may be the library's own message already.
                let cause = cause
                    .strip_prefix("redis is unavailable: ")
                    .unwrap_or(&cause);
                (format!("redis is unavailable at {url}: {cause}"), 1)
            }
            Failure::Runtime(message) => (message, 1),
            Failure::Usage(message) => (message, 2),
            // The reader went away (`redisq info --json --watch | head -1`): nothing to say.
            Failure::Output(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                return ExitCode::SUCCESS
            }
            Failure::Output(err) => (format!("cannot write the output: {err}"), 1),
        };
        eprintln!("error: {message}");
        ExitCode::from(code)
    }
}

/// A Redis error as the tool reports it: where Redis was expected when it is unavailable.
pub fn describe(url: &str, err: &redisq::Error) -> String {
    if err.is_unavailable() {
        let cause =
            std::error::Error::source(err).map_or_else(|| err.to_string(), ToString::to_string);
        format!("redis is unavailable at {url}: {cause}")
    } else {
        err.to_string()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let url = describe_url(cli.global.url.as_deref());
    let backend = match cli.global.url.as_deref() {
        Some(given) => RedisQueueBackend::new(given),
        None => RedisQueueBackend::from_env(),
    };
    let backend = match backend {
        Ok(backend) => backend
            .with_namespace(cli.global.namespace)
            .with_timeout(cli.global.timeout),
        Err(err) => return Failure::Usage(err.to_string()).report(&url),
    };
    let ctx = Ctx { backend, url };
    let result = match cli.command {
        Command::Info { json, watch } => commands::info(&ctx, json, watch),
        Command::Task { id, json } => commands::task(&ctx, &id, json),
        Command::Dead(DeadCommand::List {
            queue,
            offset,
            limit,
            json,
        }) => commands::dead_list(&ctx, &queue, offset, limit, json),
        Command::Dead(DeadCommand::Requeue { queue, id, all }) => {
            commands::dead_requeue(&ctx, &queue, if all { None } else { id.as_deref() })
        }
        Command::Dead(DeadCommand::Purge { queue, yes }) => commands::dead_purge(&ctx, &queue, yes),
        Command::Recover { queue } => commands::recover(&ctx, queue.as_deref()),
        Command::Health { json } => commands::health(&ctx, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(&ctx.url),
    }
}

/// The server's URL for messages, as the backend resolves it, password hidden.
fn describe_url(given: Option<&str>) -> String {
    let var = |name: &str| env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = given.map(str::to_owned).or_else(|| var("REDIS_URL")) {
        return redisq::redact_url(&url);
    }
    format!(
        "redis://{}:{}/{}",
        var("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".to_owned()),
        var("REDIS_PORT").unwrap_or_else(|| "6379".to_owned()),
        var("REDIS_DB").unwrap_or_else(|| "0".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redisq::redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redisq::redact_url("redis://:secret@h:1/2"),
            "redis://:***@h:1/2"
        );
        assert_eq!(
            redisq::redact_url("rediss://me:p@ss@h"),
            "rediss://me:***@h"
        );
        assert_eq!(redisq::redact_url("redis://me@h"), "redis://me@h");
        assert_eq!(
            redisq::redact_url("redis+unix:///tmp/r.sock?db=1&pass=x"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
        assert_eq!(
            redisq::redact_url("not a url :secret@"),
            "(an unparsable URL)"
        );
        assert_eq!(
            redisq::redact_url("redis+cluster://u:pw@a:1,b:2"),
            "redis+cluster://u:***@a:1,b:2"
        );
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("NaN").is_err());
        assert!(seconds("soon").is_err());
    }

    #[test]
    fn watch_takes_an_optional_interval() {
        let watch = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Info { watch, .. }) => watch,
            other => panic!("{other:?}"),
        };
        assert_eq!(watch(&["redisq", "info"]), None);
        assert_eq!(
            watch(&["redisq", "info", "--watch"]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watch(&["redisq", "info", "--watch", "5"]),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn requeue_needs_an_id_or_all() {
        assert!(Cli::try_parse_from(["redisq", "dead", "requeue", "q"]).is_err());
        assert!(Cli::try_parse_from(["redisq", "dead", "requeue", "q", "id", "--all"]).is_err());
        assert!(Cli::try_parse_from(["redisq", "dead", "requeue", "q", "--all"]).is_ok());
    }
}
