//! [`Worker`]: threads inside the application that serve queues, and how they stop.
//!
//! A worker runs one consumer thread per queue and thread count (`crate::consumer`),
//! plus one heartbeat thread (`crate::heartbeat`). [`WorkerBuilder`] (`builder.rs`) works
//! out a plan (`plan.rs`) and spawns them.

mod builder;
mod plan;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub use builder::WorkerBuilder;

use crate::backend::RedisQueueBackend;
use crate::consumer::Counters;
use crate::error::Result;

/// Starts worker threads for every queue of the tasks registered in this binary, with
/// the thread count their `#[fifo(workers = N)]` asks for (the largest, when several
/// tasks share a queue).
///
/// # Errors
/// [`Error::DuplicateTask`](crate::Error::DuplicateTask) when two tasks share a wire name;
/// [`Error::Config`](crate::Error::Config) when no task is registered;
/// [`Error::Auth`](crate::Error::Auth) when Redis refuses the credentials;
/// [`Error::Spawn`](crate::Error::Spawn) when a thread cannot be started.
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
    /// Dropped to wake the consumers at shutdown.
    wake: Option<Sender<()>>,
    /// Dropped to stop the heartbeat, once the consumers have stopped.
    beat_stop: Option<Sender<()>>,
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
        WorkerBuilder::new(backend)
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
        // Disconnecting the channel wakes every consumer sleeping on it.
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
        // Only now: the leases of the tasks that were running held until they settled.
        self.beat_stop = None;
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
