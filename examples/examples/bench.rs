//! Benchmark: what redisq costs next to the `redis` crate alone, on the local Redis.
//!
//! ```text
//! cargo run --release -p redisq-examples --example bench -- --tasks 200000
//! cargo run --release -p redisq-examples --example bench -- --tasks 200000 --json --skip-backlog
//! ```
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`). Prints one line per figure (name,
//! value, unit, ratio), then a summary of the targets; with `--json`, one JSON object per
//! line on stdout (`{"name", "value", "unit", "ratio"}`) and the summary on stderr.
//!
//! The figures, in order:
//! - ceilings, with the `redis` crate alone and a payload as long as a redisq no-op task:
//!   sequential `RPUSH` round trips on one connection, pipelined `RPUSH` and `LPOP`
//!   (10,000 commands per round trip, the best of three rounds);
//! - enqueue of no-op tasks, one call at a time from 1 thread (in blocks alternating with
//!   the sequential `RPUSH`, so that their ratio holds on a machine whose speed drifts) and
//!   from 4 threads, and `enqueue_many` (10,000 per call);
//! - end to end, queue pre-filled, workers draining it: at-least-once with 1 and 4 threads,
//!   at-most-once with 4, a batch task (batches of 1,000) with 4; an ordered queue
//!   (`ordered = true`) drained by its one consumer; tasks with ordering keys
//!   (`key = ".."`, round robin over 10,000 keys) drained by 4 threads in two processes,
//!   this one and a second run of this binary (`--keyed-worker`, 2 threads each), timed
//!   until the queue's processed count in Redis covers every task;
//! - latency from the enqueue call to the start of the task, at a steady 1,000 tasks/s
//!   for 5 s with 4 idle worker threads, without ordering keys and then over 1,000 keys;
//! - Redis memory per queued task and per stored result, and this process's peak RSS
//!   (this process is also the worker);
//! - a backlog of 1,000,000 tasks drained by 4 threads (skipped with `--skip-backlog`).
//!
//! `--e2e-only` runs the ceilings, the end-to-end figures and the keyed latency.
//!
//! Throughput ratios are to the ceiling of the same run; latency and memory ratios are to
//! their target (value / target, below 1 meets it). The keyed throughput is also printed
//! over `e2e_at_least_once_4t` of the same run (`keyed / unordered 4t`, on stderr with
//! `--json`). Every key lives under the namespace
//! `bench-<pid>:<phase>` and is deleted after its phase; keys of earlier runs that crashed
//! are deleted at start.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use redisq::{fifo, Delivery, RedisQueueBackend, Worker, WorkerCounts};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Tasks or commands per pipelined round trip, for the ceilings and `enqueue_many`.
const CHUNK: u64 = 10_000;
/// Tasks queued to measure Redis memory per task and per result.
const MEMORY_TASKS: u64 = 100_000;
/// Tasks of the backlog figure.
const BACKLOG_TASKS: u64 = 1_000_000;
/// The steady rate and duration of the latency figure.
const LATENCY_RATE: u64 = 1_000;
const LATENCY_SECS: u64 = 5;
/// Worker threads of the multi-threaded figures.
const THREADS: usize = 4;
/// Ordering keys of the keyed throughput figure, and its worker processes (this one and
/// one more, `THREADS / KEYED_PROCESSES` threads each).
const KEYED_KEYS: u64 = 10_000;
const KEYED_PROCESSES: usize = 2;
/// Ordering keys of the keyed latency figure.
const LATENCY_KEYS: u64 = 1_000;
/// The text output's name column.
const NAME_WIDTH: usize = 32;
/// A drain that makes no progress for this long fails the run.
const STALL: Duration = Duration::from_secs(30);

/// Measures redisq's throughput, latency and memory against the local Redis.
#[derive(Debug, Parser)]
struct Args {
    /// Tasks per throughput figure (enqueue and end to end).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    tasks: u64,
    /// Print one JSON object per figure.
    #[arg(long)]
    json: bool,
    /// Skip the 1,000,000-task backlog.
    #[arg(long)]
    skip_backlog: bool,
    /// Only the ceilings and the end-to-end figures (to compare two builds quickly).
    #[arg(long)]
    e2e_only: bool,
    /// The Redis server.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    url: String,
    /// Internal: be the second worker process of `e2e_keyed_10k_4t_2p`, in this namespace.
    #[arg(long, hide = true, value_name = "NAMESPACE")]
    keyed_worker: Option<String>,
}

/// A no-op task without a status record.
#[fifo(queue = "bench_noop", store_result = false)]
fn noop(n: u64) {
    black_box(n);
}

/// A no-op task with a status record (and its result), for the memory per result.
#[fifo(queue = "bench_rec")]
fn noop_rec(n: u64) {
    black_box(n);
}

/// A batch task that takes 1,000 items at a time.
#[fifo(queue = "bench_batch", batch = 1000, store_result = false)]
fn sink(items: Vec<u64>) {
    black_box(items);
}

/// A no-op task on an ordered queue: one consumer at a time, tasks in enqueue order.
#[fifo(queue = "bench_ordered", ordered = true, store_result = false)]
fn noop_ordered(n: u64) {
    black_box(n);
}

/// A no-op task ordered by `key`: one task of a key at a time, keys in parallel.
#[fifo(queue = "bench_keyed", key = "key", store_result = false)]
fn noop_keyed(key: u64, n: u64) {
    black_box((key, n));
}

/// How a figure is held to its target.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// Its ratio (to its ceiling) at least this.
    RatioAtLeast(f64),
    /// Its value at least this.
    AtLeast(f64),
    /// Its value below this.
    Below(f64),
}

/// The issue's targets (2-core machine): what, the figure, the bound.
const TARGETS: [(&str, &str, Bound); 8] = [
    (
        "enqueue 1 thread >= 80% of sequential RPUSH",
        "enqueue_sequential_1t",
        Bound::RatioAtLeast(0.8),
    ),
    (
        "enqueue_many >= 300,000/s",
        "enqueue_many",
        Bound::AtLeast(300_000.0),
    ),
    (
        "e2e at-least-once 4 threads >= 100,000/s",
        "e2e_at_least_once_4t",
        Bound::AtLeast(100_000.0),
    ),
    (
        "e2e at-most-once 4 threads >= 150,000/s",
        "e2e_at_most_once_4t",
        Bound::AtLeast(150_000.0),
    ),
    (
        "batch >= 300,000 items/s",
        "e2e_batch_1000",
        Bound::AtLeast(300_000.0),
    ),
    ("latency p50 < 1 ms", "latency_p50_ms", Bound::Below(1.0)),
    ("latency p99 < 5 ms", "latency_p99_ms", Bound::Below(5.0)),
    (
        "< 300 bytes of Redis memory per queued task",
        "redis_bytes_per_queued_task",
        Bound::Below(300.0),
    ),
];

/// Nanoseconds from each `stamp` enqueue to its start.
static LATENCIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Records how long ago (`sent_ns`, Unix nanoseconds) it was enqueued.
#[fifo(queue = "bench_latency", store_result = false)]
fn stamp(sent_ns: u64) {
    let waited = unix_nanos().saturating_sub(sent_ns);
    lock_latencies().push(waited);
}

/// [`stamp`] with an ordering key.
#[fifo(queue = "bench_keyed_latency", key = "key", store_result = false)]
fn keyed_stamp(key: u64, sent_ns: u64) {
    let waited = unix_nanos().saturating_sub(sent_ns);
    black_box(key);
    lock_latencies().push(waited);
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    LazyLock::force(&STARTED);
    if let Some(namespace) = &args.keyed_worker {
        if let Err(err) = keyed_worker_process(&args.url, namespace) {
            eprintln!("bench --keyed-worker: {err}");
            std::process::exit(1);
        }
        return;
    }
    let mut bench = match Bench::connect(&args) {
        Ok(bench) => bench,
        Err(err) => {
            eprintln!("bench: {err}");
            std::process::exit(1);
        }
    };
    let outcome = bench.run(&args);
    let cleaned = bench.delete_matching(&format!("{}:*", bench.namespace));
    if let Err(err) = outcome.and(cleaned) {
        eprintln!("bench: {err}");
        std::process::exit(1);
    }
}

/// One figure: a name from the issue's list, its value, unit and ratio; serialized in
/// that order for `--json`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    ratio: Option<f64>,
}

/// The sequential rates of this run (operations/s).
struct Sequential {
    /// `RPUSH` with the `redis` crate alone: the ceiling.
    rpush: f64,
    /// `noop::enqueue`.
    enqueue: f64,
}

/// The ceilings of this run, measured with the `redis` crate alone (operations/s).
struct Ceilings {
    rpush_sequential: f64,
    rpush_pipelined: f64,
    lpop_pipelined: f64,
}

/// The connection to Redis that the harness itself uses, and the figures so far.
struct Bench {
    url: String,
    /// `bench-<pid>`: every phase's namespace starts with it.
    namespace: String,
    con: redis::Connection,
    tasks: u64,
    json: bool,
    figures: Vec<Figure>,
}

impl Bench {
    fn connect(args: &Args) -> BoxResult<Bench> {
        let client = redis::Client::open(args.url.as_str())?;
        let con = client.get_connection_with_timeout(Duration::from_secs(5))?;
        Ok(Bench {
            url: args.url.clone(),
            namespace: format!("bench-{}", std::process::id()),
            con,
            tasks: args.tasks,
            json: args.json,
            figures: Vec::new(),
        })
    }

    fn run(&mut self, args: &Args) -> BoxResult<()> {
        self.delete_crashed_runs()?;
        let payload = self.noop_payload()?;
        progress(&format!(
            "{} tasks per throughput figure, payload {} bytes: {}",
            self.tasks,
            payload.len(),
            String::from_utf8_lossy(&payload)
        ));
        if !self.json {
            println!(
                "{:<NAME_WIDTH$} {:>12}  {:<8} ratio",
                "name", "value", "unit"
            );
        }
        let sequential = self.sequential_rates(&payload)?;
        let ceilings = self.ceilings(&payload, sequential.rpush)?;
        if args.e2e_only {
            self.e2e_figures(&ceilings)?;
            return self.keyed_latency_figures();
        }
        self.enqueue_figures(&ceilings, sequential.enqueue)?;
        self.e2e_figures(&ceilings)?;
        self.latency_figures()?;
        self.keyed_latency_figures()?;
        self.memory_figures()?;
        if !args.skip_backlog {
            self.backlog_figure(&ceilings)?;
        }
        self.peak_rss_figure()?;
        self.summary(args.skip_backlog);
        Ok(())
    }

    /// A backend on a namespace of its own for one phase.
    fn backend(&self, phase: &str) -> BoxResult<RedisQueueBackend> {
        Ok(
            RedisQueueBackend::new(&self.url)?
                .with_namespace(format!("{}:{phase}", self.namespace)),
        )
    }

    /// Deletes every key of a phase's namespace.
    fn end_phase(&mut self, backend: &RedisQueueBackend) -> BoxResult<()> {
        self.delete_matching(&format!("{}:*", backend.namespace()))
    }

    fn report(&mut self, name: &'static str, value: f64, unit: &'static str, ratio: Option<f64>) {
        let figure = Figure {
            name,
            value,
            unit,
            ratio,
        };
        if self.json {
            let rounded = Figure {
                value: round3(figure.value),
                ratio: figure.ratio.map(round3),
                ..figure
            };
            match serde_json::to_string(&rounded) {
                Ok(line) => println!("{line}"),
                Err(err) => eprintln!("bench: {name}: {err}"),
            }
        } else {
            let ratio = figure.ratio.map_or("-".to_owned(), |r| format!("{r:.3}"));
            println!(
                "{:<NAME_WIDTH$} {:>12}  {:<8} {ratio}",
                figure.name,
                format_value(figure.value, figure.unit),
                figure.unit
            );
        }
        self.figures.push(figure);
    }

    fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// A line that is not a figure: on stdout, or on stderr with `--json`.
    fn out(&self, line: String) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// A no-op task's payload as redisq stores it, to give the ceilings the same size.
    fn noop_payload(&mut self) -> BoxResult<Vec<u8>> {
        let backend = self.backend("probe")?;
        noop::enqueue(&backend, self.tasks / 2)?;
        let key = format!("{}:{{{}}}:pending", backend.namespace(), noop::QUEUE);
        let payload: Option<Vec<u8>> =
            redis::cmd("LINDEX").arg(&key).arg(0).query(&mut self.con)?;
        self.end_phase(&backend)?;
        Ok(payload.ok_or_else(|| format!("no payload at `{key}` after an enqueue"))?)
    }

    /// The sequential rates, one round trip at a time from one thread: `RPUSH` with the
    /// `redis` crate alone (the ceiling) and `noop::enqueue`. They are measured in
    /// alternating blocks, so that a change in the machine's speed during the run (a
    /// shared or virtual machine) weighs on both alike, and their ratio holds.
    fn sequential_rates(&mut self, payload: &[u8]) -> BoxResult<Sequential> {
        const BLOCKS: u64 = 10;
        progress("sequential RPUSH (redis crate) and enqueue (redisq), 1 thread, alternating");
        let n = self.tasks;
        let key = format!("{}:ceiling", self.namespace);
        let mut con = self.raw_connection()?;
        let backend = self.backend("enqueue-1t")?;
        backend.ping()?;
        let (mut rpush_time, mut enqueue_time) = (Duration::ZERO, Duration::ZERO);
        for block in 0..BLOCKS {
            let range = (block * n / BLOCKS)..((block + 1) * n / BLOCKS);
            // Each goes first in every other block.
            for rpush_turn in [block % 2 == 0, block % 2 == 1] {
                let started = Instant::now();
                if rpush_turn {
                    for _ in range.clone() {
                        redis::cmd("RPUSH")
                            .arg(&key)
                            .arg(payload)
                            .query::<()>(&mut con)?;
                    }
                    rpush_time += started.elapsed();
                } else {
                    for i in range.clone() {
                        noop::enqueue(&backend, i)?;
                    }
                    enqueue_time += started.elapsed();
                }
            }
        }
        redis::cmd("DEL").arg(&key).query::<()>(&mut con)?;
        self.check_pending(&backend, noop::QUEUE, n)?;
        self.end_phase(&backend)?;
        Ok(Sequential {
            rpush: rate(n, rpush_time),
            enqueue: rate(n, enqueue_time),
        })
    }

    /// A connection of the `redis` crate alone, for the ceilings.
    fn raw_connection(&self) -> BoxResult<redis::Connection> {
        let client = redis::Client::open(self.url.as_str())?;
        Ok(client.get_connection_with_timeout(Duration::from_secs(5))?)
    }

    /// The ceilings with the `redis` crate alone: the sequential `RPUSH` rate measured by
    /// [`Bench::sequential_rates`], pipelined `RPUSH`, then pipelined `LPOP` of what the
    /// pipelined `RPUSH` pushed (10,000 commands per round trip), each the best of three.
    fn ceilings(&mut self, payload: &[u8], rpush_sequential: f64) -> BoxResult<Ceilings> {
        progress("pipelined RPUSH and LPOP (redis crate)");
        let n = self.tasks;
        let key = format!("{}:ceiling", self.namespace);
        let mut con = self.raw_connection()?;

        // A ceiling is the best the machine does: the best of three rounds.
        let (mut rpush_pipelined, mut lpop_pipelined) = (0.0_f64, 0.0_f64);
        for _ in 0..3 {
            let started = Instant::now();
            for chunk in chunks(n) {
                let mut pipe = redis::pipe();
                for _ in chunk {
                    pipe.cmd("RPUSH").arg(&key).arg(payload).ignore();
                }
                pipe.query::<()>(&mut con)?;
            }
            rpush_pipelined = rpush_pipelined.max(rate(n, started.elapsed()));

            let started = Instant::now();
            let mut popped = 0;
            for chunk in chunks(n) {
                let mut pipe = redis::pipe();
                for _ in chunk {
                    pipe.cmd("LPOP").arg(&key);
                }
                let items: Vec<Option<Vec<u8>>> = pipe.query(&mut con)?;
                popped += items.iter().flatten().count();
            }
            lpop_pipelined = lpop_pipelined.max(rate(n, started.elapsed()));
            if popped as u64 != n {
                return Err(format!("the LPOP ceiling popped {popped} payloads of {n}").into());
            }
        }
        redis::cmd("DEL").arg(&key).query::<()>(&mut con)?;

        self.report(
            "ceiling_rpush_sequential",
            rpush_sequential,
            "ops/s",
            Some(1.0),
        );
        self.report(
            "ceiling_rpush_pipelined",
            rpush_pipelined,
            "ops/s",
            Some(1.0),
        );
        self.report("ceiling_lpop_pipelined", lpop_pipelined, "ops/s", Some(1.0));
        Ok(Ceilings {
            rpush_sequential,
            rpush_pipelined,
            lpop_pipelined,
        })
    }

    /// Enqueue rates: one call at a time from 1 thread (`one`, measured with the ceiling)
    /// and from 4 threads, and `enqueue_many`.
    fn enqueue_figures(&mut self, ceilings: &Ceilings, one: f64) -> BoxResult<()> {
        let n = self.tasks;
        self.report(
            "enqueue_sequential_1t",
            one,
            "tasks/s",
            Some(one / ceilings.rpush_sequential),
        );

        progress("enqueue, one call at a time, 4 threads");
        let backend = self.backend("enqueue-4t")?;
        // One pooled connection is open before the clock starts; the other threads open
        // theirs inside it (well under a millisecond each).
        backend.ping()?;
        let started = Instant::now();
        thread::scope(|scope| -> BoxResult<()> {
            let handles: Vec<_> = (0..THREADS as u64)
                .map(|t| {
                    let backend = &backend;
                    let share = (t * n / THREADS as u64)..((t + 1) * n / THREADS as u64);
                    scope.spawn(move || -> redisq::Result<()> {
                        for i in share {
                            noop::enqueue(backend, i)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| "an enqueue thread panicked")??;
            }
            Ok(())
        })?;
        let four = rate(n, started.elapsed());
        self.check_pending(&backend, noop::QUEUE, n)?;
        self.end_phase(&backend)?;
        self.report(
            "enqueue_sequential_4t",
            four,
            "tasks/s",
            Some(four / ceilings.rpush_sequential),
        );

        progress("enqueue_many, 10,000 per call");
        let backend = self.backend("enqueue-many")?;
        backend.ping()?;
        let started = Instant::now();
        prefill_noop(&backend, n)?;
        let many = rate(n, started.elapsed());
        self.check_pending(&backend, noop::QUEUE, n)?;
        self.end_phase(&backend)?;
        self.report(
            "enqueue_many",
            many,
            "tasks/s",
            Some(many / ceilings.rpush_pipelined),
        );
        Ok(())
    }

    /// End to end: the queue pre-filled, workers started, timed until they processed all.
    fn e2e_figures(&mut self, ceilings: &Ceilings) -> BoxResult<()> {
        let n = self.tasks;
        let runs: [(&'static str, &str, Delivery, usize); 5] = [
            (
                "e2e_at_least_once_1t",
                "e2e-alo-1t",
                Delivery::AtLeastOnce,
                1,
            ),
            (
                "e2e_at_least_once_4t",
                "e2e-alo-4t",
                Delivery::AtLeastOnce,
                THREADS,
            ),
            // With a suspect in the queue (a task a dead worker held): every claim then
            // checks its tasks against the queue's delivery counts, the quarantine's cost.
            (
                "e2e_at_least_once_4t_suspect",
                "e2e-alo-4t-suspect",
                Delivery::AtLeastOnce,
                THREADS,
            ),
            (
                "e2e_at_most_once_4t",
                "e2e-amo-4t",
                Delivery::AtMostOnce,
                THREADS,
            ),
            (
                "e2e_batch_1000",
                "e2e-batch",
                Delivery::AtLeastOnce,
                THREADS,
            ),
        ];
        for (name, phase, delivery, threads) in runs {
            progress(&format!("{name}: pre-filling {n}, then draining"));
            let backend = self.backend(phase)?.with_delivery(delivery);
            let batch = name == "e2e_batch_1000";
            let queue = if batch { sink::QUEUE } else { noop::QUEUE };
            if batch {
                for chunk in chunks(n) {
                    sink::enqueue_many(&backend, chunk)?;
                }
            } else {
                prefill_noop(&backend, n)?;
            }
            if name.ends_with("_suspect") {
                let deliveries = format!("{}:{{{queue}}}:deliveries", backend.namespace());
                redis::cmd("HSET")
                    .arg(deliveries)
                    .arg("no-such-task")
                    .arg(1)
                    .query::<()>(&mut self.raw_connection()?)?;
            }
            let elapsed = self.drain_with(&backend, queue, threads, n)?;
            let items = rate(n, elapsed);
            let unit = if batch { "items/s" } else { "tasks/s" };
            self.report(name, items, unit, Some(items / ceilings.lpop_pipelined));
        }
        self.ordered_figure(ceilings)?;
        self.keyed_figure(ceilings)
    }

    /// Drains the `n` tasks queued on `queue` with a worker of `threads` threads, checks
    /// that nothing is left and ends the phase; how long the drain took.
    fn drain_with(
        &mut self,
        backend: &RedisQueueBackend,
        queue: &str,
        threads: usize,
        n: u64,
    ) -> BoxResult<Duration> {
        let started = Instant::now();
        let worker = Worker::builder(backend.clone())
            .queues([queue])
            .threads(queue, threads)
            .start()?;
        let drained = drain(&worker, n, started);
        worker.shutdown();
        let elapsed = drained?;
        self.check_pending(backend, queue, 0)?;
        self.end_phase(backend)?;
        Ok(elapsed)
    }

    /// An ordered queue, pre-filled, drained by its one consumer (a worker of 1 thread):
    /// the twin of `e2e_at_least_once_1t`, against the same ceiling.
    fn ordered_figure(&mut self, ceilings: &Ceilings) -> BoxResult<()> {
        let n = self.tasks;
        let name = "e2e_ordered_1c";
        let queue = noop_ordered::QUEUE;
        progress(&format!("{name}: pre-filling {n}, then draining"));
        let backend = self.backend("e2e-ordered-1c")?;
        for chunk in chunks(n) {
            noop_ordered::enqueue_many(&backend, chunk)?;
        }
        self.check_pending(&backend, queue, n)?;
        let elapsed = self.drain_with(&backend, queue, 1, n)?;
        let tasks = rate(n, elapsed);
        self.report(
            name,
            tasks,
            "tasks/s",
            Some(tasks / ceilings.lpop_pipelined),
        );
        Ok(())
    }

    /// Tasks with ordering keys, round robin over 10,000 keys, pre-filled, drained by 4
    /// threads in two processes: 2 in this one, 2 in a second run of this binary
    /// (`--keyed-worker`), started and connected to Redis before the clock starts and told
    /// to start its worker when it does. Timed until the queue's processed count in Redis
    /// covers every task. The twin of `e2e_at_least_once_4t`, against the same ceiling,
    /// and also reported over it.
    fn keyed_figure(&mut self, ceilings: &Ceilings) -> BoxResult<()> {
        let n = self.tasks;
        let name = "e2e_keyed_10k_4t_2p";
        let queue = noop_keyed::QUEUE;
        let threads = THREADS / KEYED_PROCESSES;
        progress(&format!(
            "{name}: pre-filling {n} over {KEYED_KEYS} keys, then draining with \
             {KEYED_PROCESSES} processes of {threads} threads"
        ));
        let backend = self.backend("e2e-keyed")?;
        let mut child = KeyedChild::spawn(&self.url, backend.namespace())?;
        for chunk in chunks(n) {
            noop_keyed::enqueue_many(&backend, chunk.map(|i| (i % KEYED_KEYS, i)))?;
        }
        let queued = backend.queue_stats(queue)?;
        if queued.keyed != n || queued.keys != n.min(KEYED_KEYS) {
            return Err(format!(
                "`{queue}` holds {} tasks of {} keys, {n} of {} expected",
                queued.keyed,
                queued.keys,
                n.min(KEYED_KEYS)
            )
            .into());
        }
        let started = Instant::now();
        child.go()?;
        let worker = Worker::builder(backend.clone())
            .queues([queue])
            .threads(queue, threads)
            .start()?;
        let drained = self.drain_in_redis(&backend, queue, n, started, &worker, &mut child);
        let here = worker.counts();
        worker.shutdown();
        let there = child.finish();
        let elapsed = drained?;
        let there = there?;
        if here.processed + there.processed != n
            || here.failed + there.failed != 0
            || here.dead + there.dead != 0
        {
            return Err(format!(
                "{name}: {n} tasks, but this process counted {here:?}, the other {there:?}"
            )
            .into());
        }
        let left = backend.queue_stats(queue)?;
        if left.total_pending != 0 || left.keyed != 0 || left.keys != 0 {
            return Err(format!("`{queue}` did not drain: {left:?}").into());
        }
        self.end_phase(&backend)?;
        let tasks = rate(n, elapsed);
        self.report(
            name,
            tasks,
            "tasks/s",
            Some(tasks / ceilings.lpop_pipelined),
        );
        progress(&format!(
            "{name}: {} tasks in this process, {} in the other",
            here.processed, there.processed
        ));
        if let Some(unordered) = self.figure("e2e_at_least_once_4t").map(|f| f.value) {
            self.out(format!("keyed / unordered 4t: {:.2}", tasks / unordered));
        }
        Ok(())
    }

    /// Waits, polling `queue`'s statistics in Redis every 2 ms, until `n` of its tasks
    /// succeeded in any process; returns the time since `started`. Fails when a task
    /// fails (here or there), the other process exits, or no progress is made for 30 s.
    fn drain_in_redis(
        &mut self,
        backend: &RedisQueueBackend,
        queue: &str,
        n: u64,
        started: Instant,
        worker: &Worker,
        child: &mut KeyedChild,
    ) -> BoxResult<Duration> {
        let stats = format!("{}:{{{queue}}}:stats", backend.namespace());
        let mut last = 0;
        let mut last_progress = Instant::now();
        loop {
            let (processed, failed, dead): (Option<u64>, Option<u64>, Option<u64>) =
                redis::cmd("HMGET")
                    .arg(&stats)
                    .arg("processed")
                    .arg("failed")
                    .arg("dead")
                    .query(&mut self.con)?;
            let processed = processed.unwrap_or(0);
            let here = worker.counts();
            if failed.unwrap_or(0) > 0 || dead.unwrap_or(0) > 0 || here.failed > 0 {
                return Err(format!(
                    "tasks failed while draining: {failed:?} failed, {dead:?} dead in Redis, \
                     {here:?} here"
                )
                .into());
            }
            if processed >= n {
                return Ok(started.elapsed());
            }
            if let Some(status) = child.exited()? {
                return Err(format!("the other worker process exited early: {status}").into());
            }
            if processed != last {
                last = processed;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL {
                return Err(format!(
                    "no progress for {} s: {processed} of {n} tasks processed",
                    STALL.as_secs()
                )
                .into());
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Latency from the enqueue call to the task's start, at a steady rate with idle
    /// workers: one producer thread, 4 worker threads.
    fn latency_figures(&mut self) -> BoxResult<()> {
        progress(&format!(
            "latency: {LATENCY_RATE} tasks/s for {LATENCY_SECS} s, {THREADS} idle worker threads"
        ));
        let backend = self.backend("latency")?;
        let samples = paced_latencies(&backend, stamp::QUEUE, |_| {
            stamp::enqueue(&backend, unix_nanos()).map(drop)
        })?;
        self.end_phase(&backend)?;
        let ms = |nanos: u64| nanos as f64 / 1e6;
        let p50 = ms(percentile(&samples, 0.50));
        let p99 = ms(percentile(&samples, 0.99));
        let max = ms(samples.last().copied().unwrap_or(0));
        self.report("latency_p50_ms", p50, "ms", Some(p50 / 1.0));
        self.report("latency_p99_ms", p99, "ms", Some(p99 / 5.0));
        self.report("latency_max_ms", max, "ms", None);
        Ok(())
    }

    /// The same with ordering keys: task `i` of key `i mod 1,000`, so each key gets one
    /// task a second; against the same targets.
    fn keyed_latency_figures(&mut self) -> BoxResult<()> {
        progress(&format!(
            "keyed latency: {LATENCY_RATE} tasks/s over {LATENCY_KEYS} keys for {LATENCY_SECS} \
             s, {THREADS} idle worker threads"
        ));
        let backend = self.backend("keyed-latency")?;
        let samples = paced_latencies(&backend, keyed_stamp::QUEUE, |i| {
            keyed_stamp::enqueue(&backend, i % LATENCY_KEYS, unix_nanos()).map(drop)
        })?;
        let left = backend.queue_stats(keyed_stamp::QUEUE)?;
        if left.total_pending != 0 || left.keyed != 0 {
            return Err(format!("`{}` did not drain: {left:?}", keyed_stamp::QUEUE).into());
        }
        self.end_phase(&backend)?;
        let ms = |nanos: u64| nanos as f64 / 1e6;
        let p50 = ms(percentile(&samples, 0.50));
        let p99 = ms(percentile(&samples, 0.99));
        self.report(
            "keyed_latency_p50_ms_1000_per_s",
            p50,
            "ms",
            Some(p50 / 1.0),
        );
        self.report(
            "keyed_latency_p99_ms_1000_per_s",
            p99,
            "ms",
            Some(p99 / 5.0),
        );
        Ok(())
    }

    /// Redis memory per queued task (no status records) and per stored result (the
    /// status records of finished tasks), from `INFO memory` before and after.
    fn memory_figures(&mut self) -> BoxResult<()> {
        let n = MEMORY_TASKS;
        progress(&format!("Redis memory of {n} queued tasks"));
        let backend = self.backend("mem-queued")?;
        backend.ping()?;
        let before = self.used_memory()?;
        prefill_noop(&backend, n)?;
        let after = self.used_memory()?;
        self.check_pending(&backend, noop::QUEUE, n)?;
        self.end_phase(&backend)?;
        let per_task = (after - before) as f64 / n as f64;
        self.report(
            "redis_bytes_per_queued_task",
            per_task,
            "bytes",
            Some(per_task / 300.0),
        );

        progress(&format!("Redis memory of {n} stored results"));
        let backend = self.backend("mem-results")?;
        backend.ping()?;
        let before = self.used_memory()?;
        for chunk in chunks(n) {
            noop_rec::enqueue_many(&backend, chunk)?;
        }
        let started = Instant::now();
        let worker = Worker::builder(backend.clone())
            .queues([noop_rec::QUEUE])
            .threads(noop_rec::QUEUE, THREADS)
            .start()?;
        let drained = drain(&worker, n, started);
        worker.shutdown();
        drained?;
        self.check_pending(&backend, noop_rec::QUEUE, 0)?;
        let after = self.used_memory()?;
        let records = self.count_matching(&format!("{}:task:*", backend.namespace()))?;
        self.end_phase(&backend)?;
        if records != n {
            return Err(format!("{records} status records after {n} tasks ran").into());
        }
        let per_result = (after - before) as f64 / n as f64;
        self.report("redis_bytes_per_result", per_result, "bytes", None);
        Ok(())
    }

    /// A backlog of 1,000,000 tasks drains completely: nothing pending, every task
    /// processed once, no failure and no dead letter.
    fn backlog_figure(&mut self, ceilings: &Ceilings) -> BoxResult<()> {
        let n = BACKLOG_TASKS;
        progress(&format!("backlog: enqueueing {n} tasks"));
        let backend = self.backend("backlog")?;
        let started = Instant::now();
        prefill_noop(&backend, n)?;
        progress(&format!(
            "backlog: enqueued in {:.2} s, draining with {THREADS} threads",
            started.elapsed().as_secs_f64()
        ));
        self.check_pending(&backend, noop::QUEUE, n)?;
        let started = Instant::now();
        let worker = Worker::builder(backend.clone())
            .queues([noop::QUEUE])
            .threads(noop::QUEUE, THREADS)
            .start()?;
        let drained = drain(&worker, n, started);
        let counts = worker.counts();
        worker.shutdown();
        let elapsed = drained?;
        self.check_pending(&backend, noop::QUEUE, 0)?;
        let dead = backend.dead_count(noop::QUEUE)?;
        self.end_phase(&backend)?;
        if counts.processed != n || counts.failed != 0 || counts.dead != 0 || dead != 0 {
            return Err(format!(
                "the backlog did not drain cleanly: {counts:?}, {dead} dead letters"
            )
            .into());
        }
        let secs = elapsed.as_secs_f64();
        // The ratio is the time the LPOP ceiling would take over the time it took.
        let ideal = n as f64 / ceilings.lpop_pipelined;
        self.report("backlog_1m_drain_s", secs, "s", Some(ideal / secs));
        Ok(())
    }

    /// The peak resident set of this process, which was the worker of every figure (and
    /// the producer too): `VmHWM` from `/proc/self/status`.
    fn peak_rss_figure(&mut self) -> BoxResult<()> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or("no VmHWM in /proc/self/status")?;
        self.report("worker_peak_rss_mb", kib * 1024.0 / 1e6, "MB", None);
        Ok(())
    }

    /// The targets of the issue, met or not, and what the ratios mean.
    fn summary(&self, skipped_backlog: bool) {
        let out = |line: String| self.out(line);
        out(String::new());
        out(format!(
            "Summary ({} tasks per throughput figure; this process was both producer and worker):",
            self.tasks
        ));
        let mut met = 0;
        for (what, name, bound) in TARGETS {
            let (verdict, shown) = match self.figure(name) {
                None => ("n/a    ", "not measured".to_owned()),
                Some(figure) => {
                    let shown = format!(
                        "{} {} (ratio {})",
                        format_value(figure.value, figure.unit),
                        figure.unit,
                        figure.ratio.map_or("-".to_owned(), |r| format!("{r:.3}"))
                    );
                    let pass = match bound {
                        Bound::RatioAtLeast(b) => figure.ratio.is_some_and(|r| r >= b),
                        Bound::AtLeast(b) => figure.value >= b,
                        Bound::Below(b) => figure.value < b,
                    };
                    met += usize::from(pass);
                    (if pass { "met    " } else { "NOT MET" }, shown)
                }
            };
            out(format!("  {verdict}  {what:<50} {shown}"));
        }
        // The run fails before the summary when the backlog does not drain cleanly.
        let what = "a backlog of 1,000,000 tasks drains, no error";
        match self.figure("backlog_1m_drain_s") {
            Some(f) if !skipped_backlog => out(format!(
                "  met      {what:<50} in {:.2} s, nothing pending or dead",
                f.value
            )),
            _ => out(format!("  n/a      {what:<50} skipped (--skip-backlog)")),
        }
        let what = "keyed (10,000 keys, 2 processes) >= 0.5 of 4t";
        let keyed = self.figure("e2e_keyed_10k_4t_2p").map(|f| f.value);
        let unordered = self.figure("e2e_at_least_once_4t").map(|f| f.value);
        match keyed.zip(unordered) {
            Some((keyed, unordered)) => {
                let ratio = keyed / unordered;
                let verdict = if ratio >= 0.5 { "met    " } else { "NOT MET" };
                out(format!(
                    "  {verdict}  {what:<50} {ratio:.2} of e2e_at_least_once_4t"
                ));
            }
            None => out(format!("  n/a      {what:<50} not measured")),
        }
        out(format!(
            "  {met} of {} throughput, latency and memory targets met.",
            TARGETS.len()
        ));
        for line in [
            "Ratios: enqueue_sequential_1t/4t to ceiling_rpush_sequential (one connection),",
            "enqueue_many to ceiling_rpush_pipelined, e2e_* to ceiling_lpop_pipelined: higher",
            "is better. latency_p50/p99_ms, keyed_latency_p50/p99_ms_1000_per_s and",
            "redis_bytes_per_queued_task to their target (value / target: below 1 meets it).",
            "backlog_1m_drain_s: the LPOP ceiling's time for",
            "1,000,000 over the time taken. `-`: neither a ceiling nor a target.",
        ] {
            out(line.to_owned());
        }
    }

    /// Checks that `queue`'s normal lane holds `expected` tasks.
    fn check_pending(
        &self,
        backend: &RedisQueueBackend,
        queue: &str,
        expected: u64,
    ) -> BoxResult<()> {
        let pending = backend.pending(queue)? as u64;
        if pending != expected {
            return Err(format!("`{queue}` holds {pending} tasks, {expected} expected").into());
        }
        Ok(())
    }

    /// Redis `used_memory`, less the buffers of client connections (which hold the
    /// commands just sent, not data).
    fn used_memory(&mut self) -> BoxResult<i64> {
        let info: String = redis::cmd("INFO").arg("memory").query(&mut self.con)?;
        let field = |name: &str| -> BoxResult<i64> {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("no `{name}` in INFO memory").into())
        };
        Ok(field("used_memory")? - field("mem_clients_normal")?)
    }

    fn count_matching(&mut self, pattern: &str) -> BoxResult<u64> {
        Ok(self.scan(pattern)?.len() as u64)
    }

    fn scan(&mut self, pattern: &str) -> BoxResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut self.con)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Deletes every key matching `pattern`, 1,000 at a time.
    fn delete_matching(&mut self, pattern: &str) -> BoxResult<()> {
        let keys = self.scan(pattern)?;
        for batch in keys.chunks(1000) {
            redis::cmd("DEL").arg(batch).query::<()>(&mut self.con)?;
        }
        Ok(())
    }

    /// Deletes the keys of earlier runs whose process is gone (`bench-<pid>:…`).
    fn delete_crashed_runs(&mut self) -> BoxResult<()> {
        let stale: BTreeSet<String> = self
            .scan("bench-*")?
            .into_iter()
            .filter_map(|key| {
                let namespace = key.split(':').next()?.to_owned();
                let pid = namespace.strip_prefix("bench-")?;
                let is_pid = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
                let alive = std::path::Path::new("/proc").join(pid).exists();
                (is_pid && !alive).then_some(namespace)
            })
            .collect();
        for namespace in stale {
            progress(&format!(
                "deleting the keys of a crashed run, `{namespace}:*`"
            ));
            self.delete_matching(&format!("{namespace}:*"))?;
        }
        Ok(())
    }
}

/// Enqueues no-op tasks `0..n` with `enqueue_many`, 10,000 per call.
fn prefill_noop(backend: &RedisQueueBackend, n: u64) -> redisq::Result<()> {
    for chunk in chunks(n) {
        noop::enqueue_many(backend, chunk)?;
    }
    Ok(())
}

/// Samples of a latency figure, sorted: starts a worker of 4 threads on `queue`, lets
/// them block on the empty queue, then calls `send(i)` for `i` in `0..5,000` at 1,000 a
/// second on a fixed schedule (sleeping until each is due) and waits for every task to
/// record how long after its enqueue call it started.
fn paced_latencies(
    backend: &RedisQueueBackend,
    queue: &str,
    mut send: impl FnMut(u64) -> redisq::Result<()>,
) -> BoxResult<Vec<u64>> {
    let n = LATENCY_RATE * LATENCY_SECS;
    backend.ping()?;
    lock_latencies().clear();
    let worker = Worker::builder(backend.clone())
        .queues([queue])
        .threads(queue, THREADS)
        .start()?;
    // Let every thread find the queue empty and block.
    thread::sleep(Duration::from_millis(500));
    let interval = Duration::from_secs(1) / u32::try_from(LATENCY_RATE)?;
    let started = Instant::now();
    let sent: redisq::Result<()> = (0..n).try_for_each(|i| {
        // On a fixed schedule: a late send does not push the later ones back.
        let due = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        send(i)
    });
    let drained = sent
        .map_err(Into::into)
        .and_then(|()| drain(&worker, n, Instant::now()));
    worker.shutdown();
    drained?;
    let mut samples = std::mem::take(&mut *lock_latencies());
    if samples.len() as u64 != n {
        return Err(format!("{} latency samples of {n}", samples.len()).into());
    }
    samples.sort_unstable();
    Ok(samples)
}

/// The second worker process of `e2e_keyed_10k_4t_2p` (`--keyed-worker <namespace>`):
/// connects, says `ready` on stdout, starts a worker of 2 threads on the keyed queue when
/// a line `go` comes on stdin, and when stdin closes stops it and prints its counts
/// (`processed failed dead`). A closed stdin before `go` ends it at once.
fn keyed_worker_process(url: &str, namespace: &str) -> BoxResult<()> {
    let backend = RedisQueueBackend::new(url)?.with_namespace(namespace);
    backend.ping()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    if line.trim() != "go" {
        return Ok(());
    }
    let queue = noop_keyed::QUEUE;
    let worker = Worker::builder(backend)
        .queues([queue])
        .threads(queue, THREADS / KEYED_PROCESSES)
        .start()?;
    let closed = stdin.read_to_end(&mut Vec::new());
    let counts = worker.counts();
    worker.shutdown();
    closed?;
    writeln!(
        stdout,
        "{} {} {}",
        counts.processed, counts.failed, counts.dead
    )?;
    stdout.flush()?;
    Ok(())
}

/// What the other process of `e2e_keyed_10k_4t_2p` ran.
#[derive(Debug, Clone, Copy)]
struct ChildCounts {
    processed: u64,
    failed: u64,
    dead: u64,
}

/// The other worker process of `e2e_keyed_10k_4t_2p`: this binary with `--keyed-worker`,
/// driven through its stdin and stdout. Killed (it alone, by its id) when dropped before
/// it exited.
struct KeyedChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl KeyedChild {
    /// Starts it on `namespace` and waits until it has reached Redis.
    fn spawn(url: &str, namespace: &str) -> BoxResult<KeyedChild> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--keyed-worker")
            .arg(namespace)
            .arg("--url")
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let Some(stdout) = stdout else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the other worker process has no stdout".into());
        };
        let mut this = KeyedChild {
            child,
            stdin,
            stdout,
        };
        let line = this.line()?;
        if line != "ready" {
            return Err(format!("the other worker process said `{line}`, not `ready`").into());
        }
        Ok(this)
    }

    /// Its next line on stdout; an error when it closed its stdout (it exited).
    fn line(&mut self) -> BoxResult<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("the other worker process exited".into());
        }
        Ok(line.trim().to_owned())
    }

    /// Starts its worker.
    fn go(&mut self) -> BoxResult<()> {
        let stdin = self.stdin.as_mut().ok_or("no stdin to the other process")?;
        writeln!(stdin, "go")?;
        stdin.flush()?;
        Ok(())
    }

    fn exited(&mut self) -> BoxResult<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Closes its stdin, which stops its worker; returns what it ran once it exited.
    fn finish(mut self) -> BoxResult<ChildCounts> {
        drop(self.stdin.take());
        let line = self.line()?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("the other worker process ended with {status}").into());
        }
        let numbers: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|err| format!("the other worker process said `{line}`: {err}"))?;
        match numbers[..] {
            [processed, failed, dead] => Ok(ChildCounts {
                processed,
                failed,
                dead,
            }),
            _ => Err(format!("the other worker process said `{line}`").into()),
        }
    }
}

impl Drop for KeyedChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits, polling every millisecond, until `worker` has processed `n` tasks; returns the
/// time since `started`. Fails when a task fails or no progress is made for 30 s.
fn drain(worker: &Worker, n: u64, started: Instant) -> BoxResult<Duration> {
    let mut last = WorkerCounts::default();
    let mut last_progress = Instant::now();
    loop {
        let counts = worker.counts();
        if counts.failed > 0 || counts.dead > 0 {
            return Err(format!("tasks failed while draining: {counts:?}").into());
        }
        if counts.processed >= n {
            return Ok(started.elapsed());
        }
        if counts.processed != last.processed {
            last = counts;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            return Err(format!(
                "no progress for {} s: {} of {n} tasks processed",
                STALL.as_secs(),
                counts.processed
            )
            .into());
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// `0..n` in ranges of at most 10,000.
fn chunks(n: u64) -> impl Iterator<Item = std::ops::Range<u64>> {
    (0..n)
        .step_by(CHUNK as usize)
        .map(move |start| start..(start + CHUNK).min(n))
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn lock_latencies() -> std::sync::MutexGuard<'static, Vec<u64>> {
    LATENCIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{value:.3}"),
        "bytes" | "MB" => format!("{value:.1}"),
        "s" => format!("{value:.2}"),
        _ => format!("{value:.0}"),
    }
}

/// When the run started, for the progress lines.
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

fn progress(message: &str) {
    let at = STARTED.elapsed().as_secs_f64();
    eprintln!("bench: [{at:6.1} s] {message}");
}
