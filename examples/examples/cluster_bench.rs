//! The cluster benchmark: end-to-end at-least-once tasks/s and `enqueue_many` tasks/s on a
//! Redis Cluster, the tasks spread over eight queues (`Partitions`, round robin), beside
//! the same workload on one server, alternating in one run.
//!
//! ```text
//! url=$(scripts/redis-cluster.sh start /tmp/bench-cluster)
//! cargo run --release -p redisq-examples --example cluster_bench -- --cluster "$url"
//! scripts/redis-cluster.sh stop /tmp/bench-cluster
//! ```
//!
//! Each run enqueues `--tasks` no-op tasks without status records (`enqueue_many`, 10,000
//! a call, each call to the next partition), then drains them with one worker serving the
//! eight partitions (one thread each). It prints each run's figures and the ratio
//! cluster/single, then the medians, and for the cluster each master's share of the
//! commands and of the server CPU time (`INFO stats`, `INFO cpu` deltas): what would
//! bound the cluster on three machines.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use redisq::{fifo, Partitions, RedisQueueBackend, Worker};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The eight queues the tasks are spread over.
static PARTS: Partitions = Partitions::new("cbench", 8);

/// Tasks per `enqueue_many` call.
const CHUNK: u64 = 10_000;

#[derive(Parser)]
struct Args {
    /// The cluster, `redis+cluster://host:port,...`.
    #[arg(long)]
    cluster: String,
    /// The single server.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    single: String,
    /// Tasks per run and target.
    #[arg(long, default_value_t = 200_000)]
    tasks: u64,
    /// Runs (each: single, then cluster).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// A no-op task without a status record.
#[fifo(queue = "cbench", store_result = false)]
fn noop(n: u64) {
    black_box(n);
}

/// What one run measured on one target.
struct Run {
    enqueue: f64,
    e2e: f64,
}

fn main() -> BoxResult<()> {
    let args = Args::parse();
    let mut single = Vec::new();
    let mut cluster = Vec::new();
    let mut shards = HashMap::<String, (u64, f64)>::new();
    for run in 0..args.runs {
        let s = measure(&args.single, args.tasks, run, None)?;
        let c = measure(&args.cluster, args.tasks, run, Some(&mut shards))?;
        println!(
            "run {}: enqueue_many single {:.0}/s cluster {:.0}/s (ratio {:.2}); e2e_at_least_once_8q single {:.0}/s cluster {:.0}/s (ratio {:.2})",
            run + 1,
            s.enqueue,
            c.enqueue,
            c.enqueue / s.enqueue,
            s.e2e,
            c.e2e,
            c.e2e / s.e2e
        );
        single.push(s);
        cluster.push(c);
    }
    let median = |runs: &[Run], f: fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (se, ce) = (
        median(&single, |r| r.enqueue),
        median(&cluster, |r| r.enqueue),
    );
    let (s2, c2) = (median(&single, |r| r.e2e), median(&cluster, |r| r.e2e));
    println!(
        "median of {}: enqueue_many single {se:.0}/s cluster {ce:.0}/s (ratio {:.2}); e2e_at_least_once_8q single {s2:.0}/s cluster {c2:.0}/s (ratio {:.2})",
        args.runs,
        ce / se,
        c2 / s2
    );
    let commands: u64 = shards.values().map(|(c, _)| c).sum();
    let cpu: f64 = shards.values().map(|(_, t)| t).sum();
    let mut masters: Vec<_> = shards.into_iter().collect();
    masters.sort_by(|a, b| a.0.cmp(&b.0));
    for (addr, (c, t)) in masters {
        println!(
            "master {addr}: {:.0}% of the commands, {:.0}% of the server CPU time",
            100.0 * c as f64 / commands.max(1) as f64,
            100.0 * t / cpu.max(f64::EPSILON)
        );
    }
    Ok(())
}

/// One run on `url`: enqueue, then drain; with `shards`, adds each master's commands and
/// CPU seconds of the run to it.
fn measure(
    url: &str,
    tasks: u64,
    run: usize,
    shards: Option<&mut HashMap<String, (u64, f64)>>,
) -> BoxResult<Run> {
    let backend = RedisQueueBackend::new(url)?
        .with_namespace(format!("cbench-{}-{run}", std::process::id()))
        .with_block_timeout(Duration::from_millis(100));
    let before = shards.as_ref().map(|_| server_counters(url)).transpose()?;
    let started = Instant::now();
    let mut n = 0;
    while n < tasks {
        let end = (n + CHUNK).min(tasks);
        noop::with(&backend)
            .queue(&PARTS.next())
            .enqueue_many(n..end)?;
        n = end;
    }
    let enqueue = tasks as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut builder = Worker::builder(backend.clone()).queues(PARTS.names());
    for queue in PARTS.names() {
        builder = builder.threads(queue, 1);
    }
    let worker = builder.start()?;
    let deadline = started + Duration::from_secs(600);
    while worker.counts().processed < tasks {
        if Instant::now() > deadline {
            return Err("the drain did not finish in 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let e2e = tasks as f64 / started.elapsed().as_secs_f64();
    worker.shutdown();
    if let (Some(shards), Some(before)) = (shards, before) {
        for (addr, (commands, cpu)) in server_counters(url)? {
            let (c0, t0) = before.get(&addr).copied().unwrap_or_default();
            let entry = shards.entry(addr).or_default();
            entry.0 += commands.saturating_sub(c0);
            entry.1 += cpu - t0;
        }
    }
    backend.purge_namespace()?;
    Ok(Run { enqueue, e2e })
}

/// Each master's `total_commands_processed` and CPU seconds (`used_cpu_sys` +
/// `used_cpu_user`), by address.
fn server_counters(url: &str) -> BoxResult<HashMap<String, (u64, f64)>> {
    let seed = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .next()
        .unwrap_or_default();
    let mut con = redis::Client::open(format!("redis://{seed}"))?.get_connection()?;
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con)?;
    let mut counters = HashMap::new();
    for line in nodes
        .lines()
        .filter(|l| l.contains("master") && !l.contains("fail"))
    {
        let Some(addr) = line.split(' ').nth(1).and_then(|a| a.split('@').next()) else {
            continue;
        };
        let mut node = redis::Client::open(format!("redis://{addr}"))?.get_connection()?;
        let info: String = redis::cmd("INFO").query(&mut node)?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        counters.insert(
            addr.to_owned(),
            (
                field("total_commands_processed") as u64,
                field("used_cpu_sys") + field("used_cpu_user"),
            ),
        );
    }
    Ok(counters)
}
