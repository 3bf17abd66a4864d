//! [`WorkerBuilder`]: choosing queues, threads, prefetch and batch wait, then starting a
//! [`Worker`] — a plan first (`plan.rs`), then the threads.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::plan::{self, Group, Plan, Request};
use super::{ConsumerThread, Worker};
use crate::backend::{Delivery, RedisQueueBackend};
use crate::clock::{millis, now_millis};
use crate::consumer::{Consumer, Counters};
use crate::error::{Error, Result};
use crate::heartbeat::{Beating, Heartbeat};
use crate::registry::Registry;
use crate::status::WorkerInfo;
use crate::task::TaskId;

/// Tasks claimed per round trip at most, unless set with [`WorkerBuilder::prefetch`].
const DEFAULT_PREFETCH: usize = 100;

/// How long a batch may wait to fill, unless set with [`WorkerBuilder::batch_wait`].
const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(50);

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
    pub(super) fn new(backend: RedisQueueBackend) -> WorkerBuilder {
        WorkerBuilder {
            backend,
            queues: None,
            pools: Vec::new(),
            threads: HashMap::new(),
            prefetch: DEFAULT_PREFETCH,
            batch_wait: DEFAULT_BATCH_WAIT,
        }
    }

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

    /// Starts the threads, after one probe of Redis (`PING` within the backend's timeout,
    /// then its settings, and the queues registered): refused credentials or permissions
    /// stop the start; an unreachable Redis is a warning only, since the threads connect,
    /// back off and reconnect by themselves. The log says what an acknowledged enqueue
    /// survives with the server's settings, and warns about those that can lose tasks
    /// (an evicting `maxmemory-policy`, no persistence).
    ///
    /// # Errors
    /// [`Error::DuplicateTask`] when two tasks share a wire name; [`Error::Config`] when
    /// there is no queue to serve or a queue name is empty, or when a worker of at-most-once
    /// delivery would serve an ordered queue or a task with an ordering key; [`Error::Auth`] when Redis
    /// refuses the credentials or a command to this user; [`Error::Spawn`] when a thread
    /// cannot be started.
    pub fn start(self) -> Result<Worker> {
        let registry = Arc::new(Registry::load()?);
        let request = Request {
            queues: self.queues.as_deref(),
            pools: &self.pools,
            threads: &self.threads,
        };
        let plan = plan::plan(&registry.tasks(), &request)?;
        let in_order = registry
            .tasks()
            .iter()
            .any(|t| (t.ordered || t.key.is_some()) && plan.queues.contains_key(t.queue));
        if in_order && self.backend.delivery() == Delivery::AtMostOnce {
            return Err(Error::Config(
                "ordered queues and ordering keys need at-least-once delivery (a popped task \
                 has no lease to hold its queue or key with)"
                    .to_owned(),
            ));
        }
        let id = TaskId::generate().to_string();
        log_start(&id, &registry, &plan, &self.backend);
        let queues: Vec<String> = plan.queues.keys().cloned().collect();
        probe(&id, &self.backend, &queues)?;
        self.spawn(id, registry, plan)
    }

    /// Starts the consumer threads of `plan`, then the heartbeat.
    fn spawn(self, id: String, registry: Arc<Registry>, plan: Plan) -> Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(0);
        let (beat_stop, beat_stopped) = crossbeam_channel::bounded::<()>(0);
        let counters = Arc::new(Counters::default());
        // Dropping a worker whose start failed half-way stops what did start.
        let mut worker = Worker {
            id: id.clone(),
            queues: plan.queues.clone(),
            backend: self.backend.clone(),
            stop: stop.clone(),
            wake: Some(wake_tx),
            beat_stop: Some(beat_stop),
            consumers: Vec::new(),
            heartbeat: None,
            counters: counters.clone(),
        };
        let mut beating = Vec::new();
        for group in &plan.groups {
            let names = group.names();
            for _ in 0..group.threads {
                let n = worker.consumers.len();
                let consumer = Consumer {
                    backend: self.backend.clone(),
                    queues: group.queues.clone(),
                    id: format!("{id}-{n}"),
                    registry: registry.clone(),
                    counters: counters.clone(),
                    stop: stop.clone(),
                    wake: wake_rx.clone(),
                    max_prefetch: self.prefetch,
                    batch_wait: self.batch_wait,
                    shared: Arc::default(),
                };
                let consumer_id = consumer.id.clone();
                beating.push(Beating {
                    id: consumer_id.clone(),
                    queues: names.clone(),
                    shared: consumer.shared.clone(),
                });
                let handle = thread::Builder::new()
                    .name(format!("redisq-{}-{n}", names.join("+")))
                    .spawn(move || consumer.run())
                    .map_err(Error::Spawn)?;
                worker.consumers.push(ConsumerThread {
                    queues: names.clone(),
                    id: consumer_id,
                    handle,
                });
            }
        }
        let info = WorkerInfo {
            id: id.clone(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            queues: plan.queues.keys().cloned().collect(),
            threads: worker.consumers.len(),
            started_at: now_millis(),
            last_beat: now_millis(),
            in_flight: 0,
            lease_ms: millis(self.backend.lease()),
            alive: true,
        };
        let heartbeat = Heartbeat {
            backend: self.backend.clone(),
            queues: info.queues.clone(),
            consumers: beating,
            stop: beat_stopped,
            info,
            counters,
        };
        let handle = thread::Builder::new()
            .name("redisq-heartbeat".to_owned())
            .spawn(move || heartbeat.run())
            .map_err(Error::Spawn)?;
        worker.heartbeat = Some(handle);
        Ok(worker)
    }
}

/// Probes Redis once before the threads start, and logs what its settings mean for the
/// tasks: refused credentials stop the start; anything else that fails only warns.
fn probe(id: &str, backend: &RedisQueueBackend, queues: &[String]) -> Result<()> {
    match backend.start_probe(queues) {
        Ok(report) => {
            log::info!(
                "worker {id}: redis {} answered in {:.1} ms ({})",
                report.version.as_deref().unwrap_or("(version unknown)"),
                report.latency.as_secs_f64() * 1000.0,
                report.settings.describe()
            );
            log::info!(
                "worker {id}: what an acknowledged enqueue survives, by these settings: {}",
                report
                    .settings
                    .durability(backend.delivery(), backend.replica_acks())
            );
            for warning in report.settings.warnings(report.used_memory) {
                log::warn!("worker {id}: {warning}");
            }
            Ok(())
        }
        Err(err @ Error::Auth(_)) => Err(err),
        Err(err) => {
            log::warn!(
                "worker {id}: probing redis at start failed ({err}); starting anyway: the \
                 threads connect, back off and retry until redis answers"
            );
            Ok(())
        }
    }
}

fn log_start(id: &str, registry: &Registry, plan: &Plan, backend: &RedisQueueBackend) {
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
    for Group { queues, threads } in &plan.groups {
        if let [queue] = queues.as_slice() {
            log::info!("  serving queue `{}` with {threads} thread(s)", queue.name);
        } else {
            log::info!(
                "  serving queues {} in this priority order with {threads} thread(s)",
                queues
                    .iter()
                    .map(|q| format!("`{}`", q.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}
