//! [`Worker`]: threads inside the application that serve queues, and its builder.
//!
//! A worker starts one [`Consumer`] thread per queue and thread count, plus one
//! heartbeat thread that renews the consumers' leases and recovers the tasks of
//! consumers (of any process) whose lease ran out.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::backend::RedisQueueBackend;
use crate::consumer::{Consumer, ConsumerQueue, Counters};
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::status::WorkerInfo;
use crate::task::{now_millis, TaskId};

/// Tasks claimed per round trip at most, unless set with [`WorkerBuilder::prefetch`].
const DEFAULT_PREFETCH: usize = 100;

/// How long a batch may wait to fill, unless set with [`WorkerBuilder::batch_wait`].
const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(50);

/// Starts worker threads for every queue of the tasks registered in this binary, with
/// the thread count their `#[fifo(workers = N)]` asks for (the largest, when several
/// tasks share a queue).
///
/// # Errors
/// [`Error::DuplicateTask`] when two tasks share a wire name; [`Error::Config`] when no
/// task is registered; [`Error::Spawn`] when a thread cannot be started.
///
/// ```no_run
/// # fn main() -> redisq::Result<()> {
/// let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:6379")?;
/// let workers = redisq::threaded_worker(backend)?;
/// // ... the application runs ...
/// workers.shutdown();
/// # Ok(()) }
/// ```
pub fn threaded_worker(backend: RedisQueueBackend) -> Result<Worker> {
    Worker::builder(backend).start()
}

/// Running worker threads. Dropping it shuts them down like [`Worker::shutdown`].
#[derive(Debug)]
#[must_use = "dropping a Worker shuts its threads down"]
pub struct Worker {
    id: String,
    queues: BTreeMap<String, usize>,
    backend: RedisQueueBackend,
    stop: Arc<AtomicBool>,
    wake: Option<Sender<()>>,
    consumers: Vec<ConsumerThread>,
    heartbeat: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// A running consumer thread and what identifies its claimed lists.
#[derive(Debug)]
struct ConsumerThread {
    queues: Vec<String>,
    id: String,
    handle: JoinHandle<()>,
}

/// Counts of what one [`Worker`] ran since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerCounts {
    /// Tasks that ran and succeeded.
    pub processed: u64,
    /// Attempts that returned `Err` or panicked.
    pub failed: u64,
    /// Failed attempts scheduled to run again.
    pub retried: u64,
    /// Tasks set aside in the dead letters (out of retries, undecodable, unknown, bad
    /// arguments).
    pub dead: u64,
}

impl Worker {
    /// A builder to choose queues and thread counts.
    ///
    /// ```no_run
    /// # fn main() -> redisq::Result<()> {
    /// # let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:6379")?;
    /// let workers = redisq::Worker::builder(backend)
    ///     .queues(["emails", "emails-eu"])
    ///     .threads("emails", 4)
    ///     .start()?;
    /// # Ok(()) }
    /// ```
    pub fn builder(backend: RedisQueueBackend) -> WorkerBuilder {
        WorkerBuilder {
            backend,
            queues: None,
            pools: Vec::new(),
            threads: HashMap::new(),
            prefetch: DEFAULT_PREFETCH,
            batch_wait: DEFAULT_BATCH_WAIT,
        }
    }

    /// This worker's id (unique per start).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queues served, with their thread counts.
    #[must_use]
    pub fn queues(&self) -> &BTreeMap<String, usize> {
        &self.queues
    }

    /// What the worker has run so far.
    #[must_use]
    pub fn counts(&self) -> WorkerCounts {
        WorkerCounts {
            processed: self.counters.processed.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
            dead: self.counters.dead.load(Ordering::Relaxed),
        }
    }

    /// Stops taking tasks, lets the ones running finish, returns the ones taken but not
    /// started to the head of their queue, and joins every thread.
    ///
    /// Idle threads notice within the backend's block timeout (1 s by default).
    pub fn shutdown(mut self) {
        self.stop_and_join(None);
    }

    /// Like [`shutdown`](Worker::shutdown), but waits at most `timeout` for running tasks.
    /// The claimed tasks of threads still busy then (the running one included) go back to
    /// the head of their queue at once, for other workers, instead of after the lease;
    /// those threads are left to finish on their own, and the task they run may so run
    /// twice. Returns whether every thread finished in time.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        self.stop_and_join(Some(Instant::now() + timeout))
    }

    fn stop_and_join(&mut self, deadline: Option<Instant>) -> bool {
        self.stop.store(true, Ordering::Release);
        // Disconnecting the channel wakes every thread sleeping on it.
        self.wake = None;
        if let Some(deadline) = deadline {
            while Instant::now() < deadline
                && self.consumers.iter().any(|c| !c.handle.is_finished())
            {
                thread::sleep(Duration::from_millis(2));
            }
        }
        let mut all_finished = true;
        for consumer in self.consumers.drain(..) {
            if deadline.is_some() && !consumer.handle.is_finished() {
                all_finished = false;
                for queue in &consumer.queues {
                    match self.backend.release_consumer(queue, &consumer.id) {
                        Ok(moved) => log::warn!(
                            "consumer {} still busy at the shutdown deadline: {moved} task(s) of `{queue}` handed back",
                            consumer.id
                        ),
                        Err(err) => log::warn!(
                            "consumer {} still busy at the shutdown deadline; its tasks of `{queue}` return when the lease runs out: {err}",
                            consumer.id
                        ),
                    }
                }
                continue; // detached: it finishes on its own
            }
            if consumer.handle.join().is_err() {
                log::error!("consumer thread {} panicked", consumer.id);
            }
        }
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.join();
        }
        all_finished
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_and_join(None);
    }
}

/// Chooses queues and thread counts, then starts a [`Worker`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct WorkerBuilder {
    backend: RedisQueueBackend,
    queues: Option<Vec<String>>,
    pools: Vec<(Vec<String>, usize)>,
    threads: HashMap<String, usize>,
    prefetch: usize,
    batch_wait: Duration,
}

impl WorkerBuilder {
    /// Serves exactly these queues (any names: a worker runs whatever registered task a
    /// payload names). Default: the queues of every registered task.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Adds `threads` threads that serve several queues in strict priority order: a thread
    /// takes from the first queue that has tasks, so a later queue waits while an earlier
    /// one has any (it can starve under a constant backlog of the earlier ones). These
    /// queues need not also be named in [`queues`](WorkerBuilder::queues); naming a pool
    /// and no `queues` serves only the pools. Zero threads adds nothing.
    ///
    /// ```no_run
    /// # fn main() -> redisq::Result<()> {
    /// # let backend = redisq::RedisQueueBackend::new("redis://127.0.0.1:6379")?;
    /// let workers = redisq::Worker::builder(backend)
    ///     .pool(["live_points", "upload_points", "flymaster_points"], 4)
    ///     .start()?;
    /// # Ok(()) }
    /// ```
    pub fn pool<I, S>(mut self, queues: I, threads: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let queues: Vec<String> = queues.into_iter().map(Into::into).collect();
        if threads > 0 {
            self.pools.push((queues, threads));
        }
        self
    }

    /// Sets how long a thread that took fewer items than a batch task's batch waits for
    /// more before it calls the function. Default 50 ms; zero calls at once with what
    /// there is.
    pub fn batch_wait(mut self, wait: Duration) -> Self {
        self.batch_wait = wait;
        self
    }

    /// Sets the threads serving `queue`. Default: the largest `workers = N` of the tasks
    /// on that queue, or 1. Zero leaves the queue unserved.
    pub fn threads(mut self, queue: impl Into<String>, threads: usize) -> Self {
        self.threads.insert(queue.into(), threads);
        self
    }

    /// Sets how many tasks a thread takes per round trip at most. Default 100; zero
    /// means 1. The thread takes fewer when tasks are slow (about 5 ms of work per round
    /// trip), so slow tasks are spread over all threads.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    /// [`Error::DuplicateTask`] when two tasks share a wire name; [`Error::Config`] when
    /// there is no queue to serve or a queue name is empty; [`Error::Spawn`] when a thread
    /// cannot be started.
    pub fn start(self) -> Result<Worker> {
        let registry = Arc::new(Registry::load()?);
        let mut defaults: BTreeMap<String, usize> = BTreeMap::new();
        for def in registry.tasks() {
            let threads = defaults.entry(def.queue.to_owned()).or_insert(0);
            *threads = (*threads).max(def.workers.max(1));
        }
        let mut batches: BTreeMap<&str, usize> = BTreeMap::new();
        let mut records: BTreeMap<&str, bool> = BTreeMap::new();
        for def in registry.tasks() {
            let batch = batches.entry(def.queue).or_insert(0);
            *batch = (*batch).max(def.batch);
            *records.entry(def.queue).or_insert(false) |= def.store_result;
        }
        let names: Vec<String> = match &self.queues {
            Some(queues) => queues.clone(),
            None if self.pools.is_empty() => defaults.keys().cloned().collect(),
            None => Vec::new(),
        };
        // Each group: the queues its threads serve, in priority order, and how many threads.
        let mut groups: Vec<(Vec<String>, usize)> = Vec::new();
        for name in names {
            let threads = self
                .threads
                .get(&name)
                .copied()
                .unwrap_or_else(|| defaults.get(&name).copied().unwrap_or(1));
            groups.push((vec![name], threads));
        }
        groups.extend(self.pools.iter().cloned());
        groups.retain(|(queues, threads)| *threads > 0 && !queues.is_empty());
        let mut queues: BTreeMap<String, usize> = BTreeMap::new();
        for (names, threads) in &groups {
            for name in names {
                if name.is_empty() {
                    return Err(Error::Config("queue name must not be empty".to_owned()));
                }
                *queues.entry(name.clone()).or_insert(0) += threads;
            }
        }
        if queues.is_empty() {
            return Err(Error::Config(
                "no queue to serve: no #[fifo] task is linked into this binary and no queue was named"
                    .to_owned(),
            ));
        }
        let id = TaskId::generate().to_string();
        log_start(&id, &registry, &groups, &self.backend);

        let stop = Arc::new(AtomicBool::new(false));
        let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(0);
        let counters = Arc::new(Counters::default());
        let mut worker = Worker {
            id: id.clone(),
            queues: queues.clone(),
            backend: self.backend.clone(),
            stop: stop.clone(),
            wake: Some(wake_tx),
            consumers: Vec::new(),
            heartbeat: None,
            counters: counters.clone(),
        };
        let mut consumers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut n = 0;
        for (names, threads) in &groups {
            for _ in 0..*threads {
                let consumer = Consumer {
                    backend: self.backend.clone(),
                    queues: names
                        .iter()
                        .map(|name| ConsumerQueue {
                            name: name.clone(),
                            keys: self.backend.keys(name),
                            batch: batches.get(name.as_str()).copied().unwrap_or(0),
                            // A queue no task names by default may get any task: look.
                            records: records.get(name.as_str()).copied().unwrap_or(true),
                        })
                        .collect(),
                    id: format!("{id}-{n}"),
                    registry: registry.clone(),
                    counters: counters.clone(),
                    stop: stop.clone(),
                    wake: wake_rx.clone(),
                    max_prefetch: self.prefetch,
                    batch_wait: self.batch_wait,
                };
                let consumer_id = consumer.id.clone();
                for name in names {
                    consumers
                        .entry(name.clone())
                        .or_default()
                        .push(consumer_id.clone());
                }
                let handle = thread::Builder::new()
                    .name(format!("redisq-{}-{n}", names.join("+")))
                    .spawn(move || consumer.run())
                    .map_err(Error::Spawn)?;
                worker.consumers.push(ConsumerThread {
                    queues: names.clone(),
                    id: consumer_id,
                    handle,
                });
                n += 1;
            }
        }
        let info = WorkerInfo {
            id: id.clone(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            queues: queues.keys().cloned().collect(),
            threads: worker.consumers.len(),
            started_at: now_millis(),
            last_beat: now_millis(),
            in_flight: 0,
            lease_ms: u64::try_from(self.backend.lease().as_millis()).unwrap_or(u64::MAX),
            alive: true,
        };
        if let Err(err) = self.backend.register_queues(&info.queues) {
            log::warn!("worker {id} could not register its queues: {err}");
        }
        let heartbeat = Heartbeat {
            backend: self.backend.clone(),
            consumers,
            wake: wake_rx,
            info,
            counters: counters.clone(),
        };
        let handle = thread::Builder::new()
            .name("redisq-heartbeat".to_owned())
            .spawn(move || heartbeat.run())
            .map_err(Error::Spawn)?;
        worker.heartbeat = Some(handle);
        Ok(worker)
    }
}

fn log_start(
    id: &str,
    registry: &Registry,
    groups: &[(Vec<String>, usize)],
    backend: &RedisQueueBackend,
) {
    let tasks = registry.tasks();
    log::info!(
        "worker {id} starting ({:?}, namespace `{}`): {} task(s) registered in this binary",
        backend.delivery(),
        backend.namespace(),
        tasks.len()
    );
    for def in tasks {
        log::info!("  task {} (queue `{}`)", def.name, def.queue);
    }
    for (queues, threads) in groups {
        if let [queue] = queues.as_slice() {
            log::info!("  serving queue `{queue}` with {threads} thread(s)");
        } else {
            log::info!(
                "  serving queues {} in this priority order with {threads} thread(s)",
                queues
                    .iter()
                    .map(|q| format!("`{q}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

/// Renews the leases of this worker's consumers and recovers expired ones.
struct Heartbeat {
    backend: RedisQueueBackend,
    consumers: BTreeMap<String, Vec<String>>,
    wake: Receiver<()>,
    /// This worker's entry in the registry.
    info: WorkerInfo,
    counters: Arc<Counters>,
}

impl Heartbeat {
    fn run(mut self) {
        let interval = (self.backend.lease() / 3).max(Duration::from_millis(20));
        loop {
            self.info.last_beat = now_millis();
            self.info.in_flight = self.counters.in_flight.load(Ordering::Relaxed);
            if let Err(err) = self.backend.beat(&self.info) {
                log::warn!("heartbeat of worker {}: {err}", self.info.id);
            }
            for (queue, consumers) in &self.consumers {
                if let Err(err) = self.beat(queue, consumers) {
                    log::warn!("heartbeat of queue `{queue}`: {err}");
                }
            }
            // Returns early, disconnected, when the worker shuts down.
            if let Err(crossbeam_channel::RecvTimeoutError::Disconnected) =
                self.wake.recv_timeout(interval)
            {
                if let Err(err) = self.backend.unregister(&self.info.id) {
                    log::warn!(
                        "worker {} could not leave the registry: {err}",
                        self.info.id
                    );
                }
                return;
            }
        }
    }

    fn beat(&self, queue: &str, consumers: &[String]) -> Result<()> {
        let keys = self.backend.keys(queue);
        let lease = self.backend.lease();
        let mut con = self.backend.connection()?;
        con.run(|c| crate::backend::ops::renew(c, &keys, consumers, lease))?;
        drop(con);
        let recovered = self.backend.recover_stale(queue)?;
        if recovered > 0 {
            log::warn!("recovered {recovered} task(s) of queue `{queue}` from expired leases");
        }
        Ok(())
    }
}
