//! The processes of a run — the Redis of the run (`servers.rs`: one server or a cluster,
//! each node with an append-only file and a proxy in front of it), and the worker
//! processes, which reach Redis only through the proxies — and the faults that strike
//! them. Each fault primitive blocks for the fault's length, heals it and appends
//! what happened, with its times, to the fault log.
//!
//! Signals go to worker processes this cluster started, by the id of a child it has not
//! reaped (so the id cannot name another process), with `kill(1)`: the workspace forbids
//! `unsafe`, and a process id is all `kill -STOP` needs.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::history::{now_us, End, Fault, FaultKind, Shutdown, WorkerProcess};
use super::proxy::Mode;
use super::servers::Servers;
use super::tasks::{
    BATCH_QUEUE, FIFO_QUEUE, KEYED_QUEUE, MULTI_QUEUE, ORDERED_QUEUE, RETRY_QUEUE, UNKEYED_QUEUE,
    UNORDERED_QUEUE,
};
use super::worker::format_threads;

/// How long a worker process asked to stop may take before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// How to run the worker processes of a run.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The worker program and its arguments (`chaos_worker`, or `chaos worker`).
    pub worker_command: Vec<OsString>,
    /// The namespace.
    pub namespace: String,
    /// Where the worker processes write their histories.
    pub history_dir: PathBuf,
    /// Where their logs go (`worker-<slot>.log`).
    pub log_dir: PathBuf,
    /// How many worker processes run.
    pub workers: usize,
    /// Their lease.
    pub lease: Duration,
    /// Their block timeout.
    pub block_timeout: Duration,
    /// Their command timeout.
    pub timeout: Duration,
    /// Their first retry backoff.
    pub retry: Duration,
    /// Their prefetch.
    pub prefetch: usize,
    /// Threads per worker process on the multi-thread queue.
    pub multi_threads: usize,
    /// Threads asked for per worker process on the ordered queue (the library runs one:
    /// an ordered queue has one consumer at a time).
    pub ordered_threads: usize,
    /// Threads per worker process on the keyed queue.
    pub keyed_threads: usize,
    /// Whether the order streams go to their plain twins (the negative control): the
    /// twins are served with the same threads instead of the ordered and keyed queues.
    pub control: bool,
}

impl ClusterConfig {
    /// The threads per queue of the worker in `slot`: only slot 0 serves the FIFO queue,
    /// with one thread, so that it has one consumer in the whole run; every worker serves
    /// the ordered and keyed queues, or their plain twins in a control run.
    #[must_use]
    pub fn threads(&self, slot: usize) -> Vec<(String, usize)> {
        let (ordered, keyed) = if self.control {
            (UNORDERED_QUEUE, UNKEYED_QUEUE)
        } else {
            (ORDERED_QUEUE, KEYED_QUEUE)
        };
        vec![
            (FIFO_QUEUE.to_owned(), usize::from(slot == 0)),
            (MULTI_QUEUE.to_owned(), self.multi_threads),
            (RETRY_QUEUE.to_owned(), 1),
            (BATCH_QUEUE.to_owned(), 1),
            (ordered.to_owned(), self.ordered_threads),
            (keyed.to_owned(), self.keyed_threads),
        ]
    }
}

/// One worker process's place: its current process, if any.
#[derive(Default)]
struct Slot {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    paused: bool,
}

/// The processes of a run. Dropping it kills every worker process it started.
pub struct Cluster {
    config: ClusterConfig,
    slots: Mutex<Vec<Slot>>,
    servers: Arc<Mutex<Servers>>,
    redis_url: String,
    proxy_url: String,
    faults: Mutex<Vec<Fault>>,
    processes: Mutex<Vec<WorkerProcess>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends signal `name` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, name: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("kill -{name} {pid}: {status}")))
    }
}

impl Cluster {
    /// Starts the worker processes behind the proxies of `servers`.
    ///
    /// # Errors
    /// When a worker process cannot start.
    pub fn start(config: ClusterConfig, servers: Arc<Mutex<Servers>>) -> io::Result<Cluster> {
        let (redis_url, proxy_url) = {
            let servers = lock(&servers);
            (servers.url(), servers.proxy_url())
        };
        let slots = (0..config.workers).map(|_| Slot::default()).collect();
        let cluster = Cluster {
            config,
            slots: Mutex::new(slots),
            servers,
            redis_url,
            proxy_url,
            faults: Mutex::new(Vec::new()),
            processes: Mutex::new(Vec::new()),
        };
        for slot in 0..cluster.config.workers {
            cluster.spawn(slot)?;
        }
        Ok(cluster)
    }

    /// The Redis server's URL (the same across restarts).
    #[must_use]
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// The URL through the proxies.
    #[must_use]
    pub fn proxy_url(&self) -> &str {
        &self.proxy_url
    }

    /// How the worker processes run.
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The process of `slot`, if one runs.
    #[must_use]
    pub fn pid(&self, slot: usize) -> Option<u32> {
        lock(&self.slots).get(slot)?.child.as_ref().map(Child::id)
    }

    /// Every fault injected so far, in order.
    #[must_use]
    pub fn faults(&self) -> Vec<Fault> {
        let mut faults = lock(&self.faults).clone();
        faults.sort_by_key(|f| f.start_us);
        faults
    }

    /// Every worker process started so far.
    #[must_use]
    pub fn processes(&self) -> Vec<WorkerProcess> {
        lock(&self.processes).clone()
    }

    fn ended(&self, pid: u32, end: End) {
        if let Some(process) = lock(&self.processes).iter_mut().find(|p| p.pid == pid) {
            process.ended.get_or_insert((now_us(), end));
        }
    }

    /// Appends a fault that began at `start_us` and ends now to the log.
    pub fn record(&self, kind: FaultKind, pid: Option<u32>, start_us: u64, detail: String) {
        self.log(kind, pid, start_us, detail, false);
    }

    /// Appends a fault that a probe made to the log.
    pub fn record_probe(&self, kind: FaultKind, pid: u32, start_us: u64, detail: String) {
        self.log(kind, Some(pid), start_us, detail, true);
    }

    fn log(
        &self,
        kind: FaultKind,
        pid: Option<u32>,
        start_us: u64,
        detail: String,
        by_probe: bool,
    ) {
        lock(&self.faults).push(Fault {
            kind,
            pid,
            start_us,
            end_us: now_us(),
            detail,
            by_probe,
        });
    }

    /// Starts a worker process in `slot` (which must have none).
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn spawn(&self, slot: usize) -> io::Result<u32> {
        let c = &self.config;
        let log = File::options()
            .create(true)
            .append(true)
            .open(c.log_dir.join(format!("worker-{slot}.log")))?;
        let (program, args) = c
            .worker_command
            .split_first()
            .ok_or_else(|| io::Error::other("no worker command"))?;
        let mut child = Command::new(program)
            .args(args)
            .env("REDIS_URL", &self.proxy_url)
            .env("CHAOS_NAMESPACE", &c.namespace)
            .env("CHAOS_HISTORY_DIR", &c.history_dir)
            .env("CHAOS_LEASE_MS", c.lease.as_millis().to_string())
            .env("CHAOS_BLOCK_MS", c.block_timeout.as_millis().to_string())
            .env("CHAOS_TIMEOUT_MS", c.timeout.as_millis().to_string())
            .env("CHAOS_RETRY_MS", c.retry.as_millis().to_string())
            .env("CHAOS_PREFETCH", c.prefetch.to_string())
            .env("CHAOS_THREADS", format_threads(&c.threads(slot)))
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_WORKER_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        let started_us = now_us();
        // Its first line, `ready <worker id>`, comes once its worker has started.
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        lock(&self.processes).push(WorkerProcess {
            slot,
            pid,
            worker_id: line
                .trim()
                .strip_prefix("ready ")
                .unwrap_or_default()
                .to_owned(),
            started_us,
            ended: None,
        });
        let mut slots = lock(&self.slots);
        let place = &mut slots[slot];
        debug_assert!(place.child.is_none());
        place.stdin = child.stdin.take();
        place.child = Some(child);
        place.paused = false;
        Ok(pid)
    }

    /// Kills the process of `slot` with SIGKILL and reaps it; returns its id.
    pub fn kill(&self, slot: usize) -> Option<u32> {
        let mut slots = lock(&self.slots);
        let place = &mut slots[slot];
        let mut child = place.child.take()?;
        place.stdin = None;
        place.paused = false;
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        drop(slots);
        self.ended(pid, End::Killed);
        Some(pid)
    }

    /// Stops (`true`) or continues (`false`) the process of `slot`; returns its id.
    pub fn pause(&self, slot: usize, stop: bool) -> Option<u32> {
        let mut slots = lock(&self.slots);
        let place = &mut slots[slot];
        let pid = place.child.as_ref()?.id();
        if place.paused != stop && signal(pid, if stop { "STOP" } else { "CONT" }).is_ok() {
            place.paused = stop;
        }
        Some(pid)
    }

    /// Asks the process of `slot` to shut down gracefully and waits for it to exit, up to
    /// a deadline, past which it is killed.
    pub fn stop_gracefully(&self, slot: usize) -> Option<Shutdown> {
        self.pause(slot, false);
        let mut child = {
            let mut slots = lock(&self.slots);
            let place = &mut slots[slot];
            if let Some(mut stdin) = place.stdin.take() {
                let _ = stdin.write_all(b"stop\n");
            }
            place.child.take()?
        };
        let pid = child.id();
        let deadline = Instant::now() + STOP_DEADLINE;
        let graceful = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
            }
        };
        self.ended(
            pid,
            if graceful {
                End::Stopped
            } else {
                End::KilledAtDeadline
            },
        );
        Some(Shutdown { pid, graceful })
    }

    /// Stops every worker process gracefully, all at once.
    pub fn stop_all(&self) -> Vec<Shutdown> {
        let slots: Vec<usize> = (0..self.config.workers).collect();
        thread::scope(|scope| {
            let stops: Vec<_> = slots
                .iter()
                .map(|slot| scope.spawn(move || self.stop_gracefully(*slot)))
                .collect();
            stops
                .into_iter()
                .filter_map(|s| s.join().ok().flatten())
                .collect()
        })
    }

    /// Heals everything: the proxy passes, Redis runs, every worker process runs and is
    /// not stopped.
    ///
    /// # Errors
    /// When a worker process cannot be started again.
    pub fn heal(&self) -> io::Result<()> {
        {
            let mut servers = lock(&self.servers);
            servers.heal_proxies();
            if servers.any_down() {
                servers.restart();
            }
        }
        for slot in 0..self.config.workers {
            if self.pid(slot).is_none() {
                self.spawn(slot)?;
            }
            self.pause(slot, false);
        }
        Ok(())
    }

    /// SIGKILLs the worker in `slot`, waits `down`, and starts another.
    ///
    /// # Errors
    /// When the new process cannot start.
    pub fn fault_kill(&self, slot: usize, down: Duration) -> io::Result<()> {
        let start = now_us();
        let Some(pid) = self.kill(slot) else {
            return Ok(());
        };
        thread::sleep(down);
        self.spawn(slot)?;
        self.record(
            FaultKind::Kill,
            Some(pid),
            start,
            format!("slot {slot}, down {down:?}"),
        );
        Ok(())
    }

    /// SIGSTOPs the worker in `slot` for `period`, then SIGCONTs it.
    pub fn fault_pause(&self, slot: usize, period: Duration) {
        let start = now_us();
        let Some(pid) = self.pause(slot, true) else {
            return;
        };
        thread::sleep(period);
        self.pause(slot, false);
        self.record(
            FaultKind::Pause,
            Some(pid),
            start,
            format!("slot {slot}, {period:?}"),
        );
    }

    /// Shuts the worker in `slot` down gracefully and starts another.
    ///
    /// # Errors
    /// When the new process cannot start.
    pub fn fault_restart(&self, slot: usize) -> io::Result<()> {
        let start = now_us();
        let Some(shutdown) = self.stop_gracefully(slot) else {
            return Ok(());
        };
        self.spawn(slot)?;
        let detail = format!("slot {slot}");
        if shutdown.graceful {
            self.record(FaultKind::Restart, Some(shutdown.pid), start, detail);
        } else {
            self.record(
                FaultKind::Kill,
                Some(shutdown.pid),
                start,
                format!("{detail}, killed at the shutdown deadline"),
            );
        }
        Ok(())
    }

    /// Switches the proxy to `mode` for `period`.
    pub fn fault_proxy(&self, mode: Mode, period: Duration) {
        let start = now_us();
        lock(&self.servers).set_mode(mode);
        thread::sleep(period);
        lock(&self.servers).set_mode(Mode::Pass);
        let kind = match mode {
            Mode::Latency(_) => FaultKind::Latency,
            Mode::DropReplies { .. } | Mode::Pass => FaultKind::DropReplies,
        };
        self.record(kind, None, start, format!("{mode:?} for {period:?}"));
    }

    /// Cuts every connection through the proxy; with a `period`, refuses new ones for
    /// that long.
    pub fn fault_cut(&self, period: Option<Duration>) {
        let start = now_us();
        if let Some(period) = period {
            lock(&self.servers).refuse_for(period);
        }
        let cut = lock(&self.servers).cut();
        match period {
            Some(period) => {
                thread::sleep(period);
                lock(&self.servers).heal_proxies();
                self.record(
                    FaultKind::Partition,
                    None,
                    start,
                    format!("{cut} cut, {period:?}"),
                );
            }
            None => self.record(FaultKind::Cut, None, start, format!("{cut} cut")),
        }
    }

    /// SIGKILLs the Redis server (every node of a cluster), waits `down`, and restarts it
    /// on its append-only file.
    pub fn fault_redis_restart(&self, down: Duration) {
        let start = now_us();
        lock(&self.servers).kill();
        thread::sleep(down);
        lock(&self.servers).restart();
        self.record(
            FaultKind::RedisRestart,
            None,
            start,
            format!("down {down:?}"),
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for slot in 0..self.config.workers {
            self.kill(slot);
        }
    }
}
