//! A whole chaos run: start a private Redis server, the proxy and the worker processes;
//! produce tasks while the nemesis runs its schedule; heal everything and let the workers
//! drain the queues (with a deadline); stop them gracefully; read the status records, the
//! dead letters, the keys and the worker registry; and check the history.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redisq::{RedisQueueBackend, TaskId};
use redisq_test_support::Namespace;

use super::checker::{check, Checks, Index, Report};
use super::cluster::{Cluster, ClusterConfig};
use super::history::{
    now_us, read_executions, FaultKind, History, KeyInfo, Outcome, Record, RegistryEntry, Via,
};
use super::nemesis::{self, Plan, Schedule};
use super::probe::{retry, Prober};
use super::producer::{Log, Producers, StreamPlan, StreamProducers};
use super::servers::Servers;
use super::tasks::ALL_QUEUES;

/// Everything a run can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long faults are injected (the drain comes after).
    pub duration: Duration,
    /// The seed of the fault schedule and of the producers' choices.
    pub seed: u64,
    /// Worker processes.
    pub workers: usize,
    /// The workers' lease.
    pub lease: Duration,
    /// The workers' block timeout.
    pub block_timeout: Duration,
    /// The workers' and producers' command timeout.
    pub timeout: Duration,
    /// The tasks a worker thread claims per round trip at most.
    pub prefetch: usize,
    /// Threads per worker process on the multi-thread queue.
    pub multi_threads: usize,
    /// Enqueues per second, all producers together.
    pub rate: u32,
    /// Keys of the keyed queue's stream, a producer thread each (0: none).
    pub keys: usize,
    /// Enqueues per second of each key.
    pub per_key_rate: f64,
    /// Enqueues per second of the ordered queue's stream (0: none).
    pub ordered_rate: f64,
    /// Tasks an order stream's producer enqueues back to back.
    pub stream_burst: u32,
    /// Threads asked for per worker process on the ordered queue.
    pub ordered_threads: usize,
    /// Threads per worker process on the keyed queue.
    pub keyed_threads: usize,
    /// The negative control of the order check: the order streams go to plain queues
    /// (the same bodies, without `ordered` or `key`), so the order check must fail.
    pub unordered: bool,
    /// Run against a Redis Cluster of three masters (each node behind a proxy of its own)
    /// instead of one server.
    pub cluster: bool,
    /// One producer per entry: straight to Redis ([`Via::Direct`]) or through the proxy
    /// ([`Via::Proxy`]).
    pub producers: Vec<Via>,
    /// The kinds of fault the nemesis injects.
    pub faults: BTreeSet<FaultKind>,
    /// Whether to probe queue positions.
    pub probes: bool,
    /// The checks to run.
    pub checks: Checks,
    /// How long the workers may take to drain the queues after the faults.
    pub drain_timeout: Duration,
    /// The worker program and its arguments.
    pub worker_command: Vec<OsString>,
    /// Whether to keep the run's directory (histories, logs) even when it passes; it is
    /// kept whenever a check fails.
    pub keep: bool,
}

impl Config {
    /// The defaults, with `worker_command` as the worker program: 60 s, three workers, a
    /// one-second lease, 100 enqueues a second from one direct and one proxied producer,
    /// the order streams (12 a second on the ordered queue, 40 keys at 1.5 a second on the
    /// keyed queue with three threads per worker, in bursts of 6), every fault, probes and
    /// every check, 60 s to drain.
    #[must_use]
    pub fn new(worker_command: Vec<OsString>) -> Config {
        Config {
            duration: Duration::from_secs(60),
            seed: 0,
            workers: 3,
            lease: Duration::from_secs(1),
            block_timeout: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            prefetch: 4,
            multi_threads: 2,
            rate: 100,
            keys: 40,
            per_key_rate: 1.5,
            ordered_rate: 12.0,
            stream_burst: 6,
            ordered_threads: 2,
            keyed_threads: 3,
            unordered: false,
            cluster: false,
            producers: vec![Via::Direct, Via::Proxy],
            faults: FaultKind::ALL.into_iter().collect(),
            probes: true,
            checks: Checks::all(),
            drain_timeout: Duration::from_secs(60),
            worker_command,
            keep: false,
        }
    }

    /// What the order streams' producers enqueue.
    pub(crate) fn streams(&self) -> StreamPlan {
        StreamPlan {
            keys: self.keys,
            per_key_rate: self.per_key_rate,
            ordered_rate: self.ordered_rate,
            burst: self.stream_burst,
            control: self.unordered,
        }
    }

    /// The nemesis's plan.
    #[must_use]
    pub fn plan(&self) -> Plan {
        Plan {
            duration: self.duration,
            workers: self.workers,
            lease: self.lease,
            faults: self.faults.clone(),
            probes: self.probes,
        }
    }
}

/// What a run produced: the checker's report, the history it read, and where the run's
/// files were kept, if they were.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report.
    pub report: Report,
    /// The history.
    pub history: History,
    /// The run's directory (`history.json`, the worker histories and logs), when kept.
    pub kept: Option<PathBuf>,
}

fn err(what: &str) -> impl Fn(redisq::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Runs the harness once.
///
/// # Errors
/// When the harness itself fails: a process that cannot start, Redis unreachable after the
/// run. A broken promise is not an error but a violation in the report.
pub fn run(config: &Config) -> Result<RunOutcome, String> {
    let schedule = Schedule::generate(config.seed, &config.plan());
    eprintln!(
        "chaos: seed {} ({} worker(s), {:?}{})",
        config.seed,
        config.workers,
        config.duration,
        if config.unordered {
            ", order streams on plain queues: the negative control"
        } else {
            ""
        }
    );
    eprint!("{schedule}");
    let dir = tempfile::Builder::new()
        .prefix("redisq-chaos-")
        .tempdir()
        .map_err(|e| format!("run directory: {e}"))?;
    let history_dir = dir.path().join("history");
    let log_dir = dir.path().join("logs");
    for d in [&history_dir, &log_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // Dropped last: the namespace is cleaned while the servers still run, after the
    // workers were killed.
    let servers = if config.cluster {
        Servers::cluster(config.seed)
    } else {
        Servers::single(config.seed)
    }
    .map_err(|e| format!("redis: {e}"))?;
    let servers = Arc::new(Mutex::new(servers));
    let url = servers.lock().map_err(|_| "redis lock")?.url();
    let ns = Namespace::on(url.clone()).with_label("chaos");
    let cluster = Cluster::start(
        ClusterConfig {
            worker_command: config.worker_command.clone(),
            namespace: ns.name().to_owned(),
            history_dir: history_dir.clone(),
            log_dir,
            workers: config.workers,
            lease: config.lease,
            block_timeout: config.block_timeout,
            timeout: config.timeout,
            retry: Duration::from_millis(100),
            prefetch: config.prefetch,
            multi_threads: config.multi_threads,
            ordered_threads: config.ordered_threads,
            keyed_threads: config.keyed_threads,
            control: config.unordered,
        },
        servers.clone(),
    )
    .map_err(|e| format!("cluster: {e}"))?;
    let backend = |url: &str| {
        RedisQueueBackend::new(url)
            .map(|b| b.with_namespace(ns.name()).with_timeout(config.timeout))
            .map_err(err("backend"))
    };
    let direct = backend(&url)?;
    wait_for_workers(&direct, config.workers)?;

    let log = Arc::new(Log::default());
    let proxy_url = cluster.proxy_url().to_owned();
    let backends = config
        .producers
        .iter()
        .map(|via| {
            let target = if *via == Via::Proxy { &proxy_url } else { &url };
            Ok((*via, backend(target)?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let streams = StreamProducers::start(&log, &backends, &config.streams(), config.seed)
        .map_err(|e| e.to_string())?;
    let producers =
        Producers::start(&log, backends, config.rate, config.seed).map_err(|e| e.to_string())?;
    let prober = Prober {
        cluster: &cluster,
        producers: &producers,
        log: &log,
        backend: direct.clone(),
        history_dir: history_dir.clone(),
        probes: Mutex::new(Vec::new()),
    };
    let deadline = Instant::now() + config.duration;
    let steps = nemesis::run(&schedule, &cluster, deadline, |after| prober.probe(after))
        .map_err(|e| format!("nemesis: {e}"))?;
    if let Some(rest) = deadline.checked_duration_since(Instant::now()) {
        std::thread::sleep(rest);
    }
    let probes = prober
        .probes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    producers.stop();
    streams.stop();
    eprintln!("chaos: {steps} step(s) of the schedule ran; draining");
    cluster.heal().map_err(|e| format!("heal: {e}"))?;

    let mut history = History {
        seed: config.seed,
        lease_us: u64::try_from(config.lease.as_micros()).unwrap_or(u64::MAX),
        enqueues: log.enqueues(),
        probes,
        ..History::default()
    };
    // Leases of workers killed just before the end must have run out and been recovered
    // before the keys are examined.
    let recovered_by = Instant::now() + config.lease * 2 + Duration::from_secs(1);
    history.drained = drain(&direct, &mut history, &history_dir, config.drain_timeout)?;
    if let Some(rest) = recovered_by.checked_duration_since(Instant::now()) {
        std::thread::sleep(rest);
    }
    history.stopped_us = now_us();
    history.shutdowns = cluster.stop_all();
    history.faults = cluster.faults();
    history.processes = cluster.processes();
    observe(&direct, &ns, &mut history)?;
    let report = check(&history, &config.checks);
    let saved = dir.path().join("history.json");
    history
        .save(&saved)
        .map_err(|e| format!("{}: {e}", saved.display()))?;
    drop(cluster);
    drop(ns);
    drop(servers);
    let kept = if config.keep || !report.is_ok() {
        Some(dir.keep())
    } else {
        None
    };
    Ok(RunOutcome {
        report,
        history,
        kept,
    })
}

/// Waits until `workers` worker processes are in the registry.
fn wait_for_workers(backend: &RedisQueueBackend, workers: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive = retry("worker registry", || backend.workers())?
            .iter()
            .filter(|w| w.alive)
            .count();
        if alive >= workers {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {alive} of {workers} worker(s) started within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every acknowledged task is over and the queues are empty, up to `limit`;
/// reads the executions into `history` and says whether it drained.
fn drain(
    backend: &RedisQueueBackend,
    history: &mut History,
    dir: &std::path::Path,
    limit: Duration,
) -> Result<bool, String> {
    let deadline = Instant::now() + limit;
    loop {
        let (executions, unparsed) = read_executions(dir).map_err(|e| e.to_string())?;
        history.executions = executions;
        history.unparsed_lines = unparsed;
        let index = Index::new(history);
        let over = history
            .enqueues
            .iter()
            .filter(|e| e.outcome == Outcome::Acked)
            .all(|e| index.finished(e.seq));
        let empty = over
            && ALL_QUEUES.iter().all(|q| {
                backend
                    .queue_stats(q)
                    .is_ok_and(|s| s.total_pending == 0 && s.processing == 0 && s.scheduled == 0)
            });
        if empty {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Reads what the run left in Redis: records, dead letters, keys, the worker registry.
fn observe(
    backend: &RedisQueueBackend,
    ns: &Namespace,
    history: &mut History,
) -> Result<(), String> {
    let index = Index::new(history);
    let mut records = Vec::new();
    for enqueue in &history.enqueues {
        let id = index.id(enqueue.seq);
        if id.is_empty()
            || (enqueue.outcome != Outcome::Acked && index.first_start(enqueue.seq).is_none())
        {
            continue;
        }
        let task = TaskId::from(id.as_str());
        let info = retry("task record", || backend.task(&task))?;
        records.push(Record {
            seq: enqueue.seq,
            id,
            status: info.as_ref().map(|i| i.status),
            attempts: info.map_or(0, |i| i.attempts),
        });
    }
    let mut dead = Vec::new();
    for queue in ALL_QUEUES {
        let letters = retry("dead letters", || backend.dead_letters(queue, 0, 100_000))?;
        dead.extend(letters.into_iter().map(|d| d.id));
    }
    let registry = retry("worker registry", || backend.workers())?
        .into_iter()
        .map(|w| RegistryEntry {
            id: w.id,
            pid: w.pid,
            last_beat_ms: w.last_beat,
        })
        .collect();
    history.records = records;
    history.dead_letters = dead;
    history.registry = registry;
    history.keys = scan_keys(ns).map_err(|e| format!("key scan: {e}"))?;
    Ok(())
}

/// Every key of the namespace, with its type, expiry, length and a few members (task ids
/// where a member is a payload or a record).
fn scan_keys(ns: &Namespace) -> redis::RedisResult<Vec<KeyInfo>> {
    let mut con = ns.connection();
    let prefix = format!("{}:", ns.name());
    // Every key of the namespace, on every master of a cluster.
    let names = ns.keys();
    let mut keys = Vec::new();
    for name in names {
        let kind: String = redis::cmd("TYPE").arg(&name).query(&mut con)?;
        let ttl_ms: i64 = redis::cmd("PTTL").arg(&name).query(&mut con)?;
        let (len, sample): (u64, Vec<String>) = match kind.as_str() {
            "list" => (
                redis::cmd("LLEN").arg(&name).query(&mut con)?,
                redis::cmd("LRANGE")
                    .arg(&name)
                    .arg(0)
                    .arg(4)
                    .query(&mut con)?,
            ),
            "hash" => {
                let fields: Vec<String> = redis::cmd("HKEYS").arg(&name).query(&mut con)?;
                (fields.len() as u64, fields.into_iter().take(5).collect())
            }
            "zset" => (
                redis::cmd("ZCARD").arg(&name).query(&mut con)?,
                redis::cmd("ZRANGE")
                    .arg(&name)
                    .arg(0)
                    .arg(4)
                    .query(&mut con)?,
            ),
            "set" => (redis::cmd("SCARD").arg(&name).query(&mut con)?, Vec::new()),
            _ => (1, Vec::new()),
        };
        keys.push(KeyInfo {
            key: name.strip_prefix(&prefix).unwrap_or(&name).to_owned(),
            kind,
            ttl_ms,
            len,
            sample: sample.iter().map(|s| short(s)).collect(),
        });
    }
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(keys)
}

/// A member as the report shows it: the id of a payload (`{"id":"…"`), else its first 40
/// characters.
fn short(member: &str) -> String {
    if let Some(rest) = member.strip_prefix(r#"{"id":""#) {
        if let Some(end) = rest.find('"') {
            return rest[..end].to_owned();
        }
    }
    member.chars().take(40).collect()
}
