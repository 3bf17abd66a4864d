//! The chaos harness's command line: runs worker processes behind a fault-injecting proxy
//! in front of a private Redis server, injects faults on a schedule made from a seed,
//! checks the history and prints a report. Exits with 0 when no check failed, 1 when one
//! did, 2 on a usage error and 3 when the harness itself failed.
//!
//! ```text
//! cargo run -p redisq-tests --bin chaos -- --duration 60s --seed 42 --workers 3
//! cargo run -p redisq-tests --bin chaos -- --faults kill,pause --checks lost,duplicates
//! cargo run -p redisq-tests --bin chaos -- --recheck /tmp/redisq-chaos-XXXX/history.json
//! cargo run -p redisq-tests --bin chaos -- --duration 20s --unordered   # must fail: order
//! cargo run -p redisq-tests --bin chaos -- --duration 60s --cluster     # a 3-master cluster
//! ```

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use redisq_tests::chaos::checker::{check, Check, Checks};
use redisq_tests::chaos::history::{FaultKind, History, Via};
use redisq_tests::chaos::run::{run, Config};

/// Fault injection against redisq's delivery promises.
#[derive(Debug, Parser)]
#[command(name = "chaos", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// How long faults are injected: `60s`, `500ms`, `2m`, or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// The seed of the fault schedule (default: random, printed).
    #[arg(long, env = "CHAOS_SEED")]
    seed: Option<u64>,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// The workers' lease.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    lease: Duration,
    /// The workers' block timeout.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    block_timeout: Duration,
    /// The command timeout of workers and producers.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
    /// Tasks a worker thread claims per round trip at most.
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// Threads per worker process on the multi-thread queue.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Enqueues per second, all producers together.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Keys of the keyed queue's order stream, a producer thread each (0: none).
    #[arg(long, default_value_t = 40)]
    keys: usize,
    /// Enqueues per second of each key.
    #[arg(long, default_value_t = 1.5)]
    key_rate: f64,
    /// Enqueues per second of the ordered queue's stream (0: none).
    #[arg(long, default_value_t = 12.0)]
    ordered_rate: f64,
    /// Tasks an order stream's producer enqueues back to back.
    #[arg(long, default_value_t = 6)]
    stream_burst: u32,
    /// Threads per worker process on the keyed queue.
    #[arg(long, default_value_t = 3)]
    keyed_threads: usize,
    /// Threads asked for per worker process on the ordered queue (the library runs one).
    #[arg(long, default_value_t = 2)]
    ordered_threads: usize,
    /// The negative control of the order check: send the order streams to plain queues
    /// (the same task bodies, without `ordered` or `key`); the order check must fail.
    #[arg(long)]
    unordered: bool,
    /// Run against a Redis Cluster of three masters, each behind a proxy of its own.
    #[arg(long)]
    cluster: bool,
    /// The producers: `direct` (straight to Redis), `proxy` (through the proxy's faults),
    /// comma-separated, one producer each.
    #[arg(long, default_value = "direct,proxy", value_delimiter = ',', value_parser = parse_via)]
    producers: Vec<Via>,
    /// The faults to inject: `all`, `none`, or some of kill, pause, restart, latency,
    /// drop-replies, cut, partition, redis-restart.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    faults: Vec<String>,
    /// Make no queue-position probes.
    #[arg(long)]
    no_probes: bool,
    /// The checks to run: `all`, or some of lost, duplicates, fifo, order, records,
    /// positions, keys.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    checks: Vec<String>,
    /// Checks not to run (applied after `--checks`).
    #[arg(long, value_delimiter = ',')]
    skip_checks: Vec<String>,
    /// How long the workers may take to drain the queues after the faults.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// The worker program (default: this program, as `chaos worker`).
    #[arg(long)]
    worker_bin: Option<PathBuf>,
    /// Keep the run's directory even when it passes.
    #[arg(long)]
    keep: bool,
    /// Check a history saved by an earlier run (`history.json`) instead of running.
    #[arg(long)]
    recheck: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs as a worker process (what the harness starts; configured from the
    /// environment).
    #[command(hide = true)]
    Worker,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in {text:?}: use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_via(text: &str) -> Result<Via, String> {
    match text {
        "direct" => Ok(Via::Direct),
        "proxy" => Ok(Via::Proxy),
        _ => Err(format!("a producer is `direct` or `proxy`, not {text:?}")),
    }
}

fn faults(names: &[String]) -> Result<BTreeSet<FaultKind>, String> {
    let mut kinds = BTreeSet::new();
    for name in names {
        match name.as_str() {
            "all" => kinds.extend(FaultKind::ALL),
            "none" => {}
            _ => {
                let kind = FaultKind::ALL
                    .into_iter()
                    .find(|k| k.name() == name)
                    .ok_or_else(|| format!("unknown fault {name:?}"))?;
                kinds.insert(kind);
            }
        }
    }
    Ok(kinds)
}

fn checks(names: &[String], skipped: &[String]) -> Result<Checks, String> {
    let find = |name: &String| {
        Check::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| format!("unknown check {name:?}"))
    };
    let mut chosen = BTreeSet::new();
    for name in names {
        if name == "all" {
            chosen.extend(Check::ALL);
        } else {
            chosen.insert(find(name)?);
        }
    }
    for name in skipped {
        chosen.remove(&find(name)?);
    }
    Ok(Checks(chosen))
}

fn config(args: &Args) -> Result<Config, String> {
    let worker_command: Vec<OsString> = match &args.worker_bin {
        Some(path) => vec![path.clone().into_os_string()],
        None => {
            let me = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
            vec![me.into_os_string(), "worker".into()]
        }
    };
    let mut config = Config::new(worker_command);
    config.duration = args.duration;
    config.seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    config.workers = args.workers.max(1);
    config.lease = args.lease;
    config.block_timeout = args.block_timeout;
    config.timeout = args.timeout;
    config.prefetch = args.prefetch;
    config.multi_threads = args.threads;
    config.rate = args.rate;
    config.keys = args.keys;
    config.per_key_rate = args.key_rate;
    config.ordered_rate = args.ordered_rate;
    config.stream_burst = args.stream_burst;
    config.keyed_threads = args.keyed_threads;
    config.ordered_threads = args.ordered_threads;
    config.unordered = args.unordered;
    config.cluster = args.cluster;
    config.producers.clone_from(&args.producers);
    config.faults = faults(&args.faults)?;
    config.probes = !args.no_probes;
    config.checks = checks(&args.checks, &args.skip_checks)?;
    config.drain_timeout = args.drain_timeout;
    config.keep = args.keep;
    Ok(config)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Worker) = args.command {
        redisq_tests::chaos::worker::main_from_env();
        return ExitCode::SUCCESS;
    }
    redisq_test_support::init_logging();
    let config = match config(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("chaos: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.recheck {
        return match History::load(path) {
            Ok(history) => {
                let report = check(&history, &config.checks);
                println!("{report}");
                ExitCode::from(u8::from(!report.is_ok()))
            }
            Err(err) => {
                eprintln!("chaos: {}: {err}", path.display());
                ExitCode::from(3)
            }
        };
    }
    match run(&config) {
        Ok(outcome) => {
            println!("{}", outcome.report);
            if let Some(dir) = &outcome.kept {
                println!("run directory kept: {}", dir.display());
            }
            ExitCode::from(u8::from(!outcome.report.is_ok()))
        }
        Err(err) => {
            eprintln!("chaos: the harness failed (seed {}): {err}", config.seed);
            ExitCode::from(3)
        }
    }
}
