//! The producers of a run: threads that enqueue tasks of every kind at a steady rate (in
//! bursts of a few), each
//! straight to Redis or through the proxy, and record every enqueue with what it returned.
//! They can be paused (for a probe) and wait, idle, until they are resumed.
//!
//! The order streams have producers of their own ([`StreamProducers`]): one thread per
//! stream (the ordered queue's, and each key's of the keyed queue), which enqueues that
//! stream's tasks one call after the other, so that a stream's enqueue order is its
//! sequence numbers' order. They are not paused by probes: the probes read other queues.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use redisq::RedisQueueBackend;

use super::history::{now_us, Enqueue, Outcome, Via};
use super::tasks::{Kind, Stream, ORDERED_KEY};

/// Enqueues a producer makes back to back, so that consumers find several tasks waiting
/// and claim more than one at a time.
const BURST: u32 = 8;

/// How often each kind is enqueued, in parts.
const MIX: [(Kind, u32); 5] = [
    (Kind::Fifo, 30),
    (Kind::Multi, 25),
    (Kind::Batch, 25),
    (Kind::Flaky, 15),
    (Kind::Doomed, 5),
];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What an enqueue's error proves.
pub(crate) fn classify(err: &redisq::Error) -> Outcome {
    match err {
        // Refused before a byte was sent.
        redisq::Error::Unavailable(e) if e.is_connection_refusal() => Outcome::Failed,
        // Sent, maybe: the reply did not come, or came as an error of the server.
        redisq::Error::Unavailable(_) | redisq::Error::Redis(_) => Outcome::Unknown,
        // Refused by redisq before any I/O.
        _ => Outcome::Failed,
    }
}

/// The enqueue log and the sequence numbers, shared by the producers and the probes.
#[derive(Default)]
pub(crate) struct Log {
    next_seq: AtomicU64,
    enqueues: Mutex<Vec<Enqueue>>,
}

impl Log {
    /// Enqueues a task of `kind` on `backend` under a new sequence number, and records it.
    pub(crate) fn enqueue(&self, backend: &RedisQueueBackend, kind: Kind, via: Via) -> Enqueue {
        self.enqueue_keyed(backend, kind, None, via)
    }

    /// [`Log::enqueue`] of a task that carries an ordering key. The sequence number is
    /// taken when the call starts: one thread's calls get increasing numbers.
    pub(crate) fn enqueue_keyed(
        &self,
        backend: &RedisQueueBackend,
        kind: Kind,
        key: Option<&str>,
        via: Via,
    ) -> Enqueue {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let sent_us = now_us();
        let result = kind.enqueue(backend, key, seq);
        let done_us = now_us();
        let (outcome, id, error) = match result {
            Ok(id) => (Outcome::Acked, Some(id.to_string()), None),
            Err(err) => (classify(&err), None, Some(err.to_string())),
        };
        let enqueue = Enqueue {
            seq,
            kind,
            key: key.map(str::to_owned),
            via,
            sent_us,
            done_us,
            outcome,
            id,
            error,
        };
        lock(&self.enqueues).push(enqueue.clone());
        enqueue
    }

    /// Every enqueue so far.
    pub(crate) fn enqueues(&self) -> Vec<Enqueue> {
        let mut all = lock(&self.enqueues).clone();
        all.sort_by_key(|e| e.seq);
        all
    }
}

#[derive(Default)]
struct PauseState {
    requested: bool,
    idle: usize,
}

/// The running producers; they stop when dropped.
pub(crate) struct Producers {
    stop: Arc<AtomicBool>,
    pause: Arc<(Mutex<PauseState>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl Producers {
    /// Starts one producer per backend, together `rate` enqueues a second.
    pub(crate) fn start(
        log: &Arc<Log>,
        backends: Vec<(Via, RedisQueueBackend)>,
        rate: u32,
        seed: u64,
    ) -> std::io::Result<Producers> {
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new((Mutex::new(PauseState::default()), Condvar::new()));
        let count = u32::try_from(backends.len()).unwrap_or(1).max(1);
        let interval = Duration::from_secs(1) * count * BURST / rate.max(1);
        let mut producers = Producers {
            stop: stop.clone(),
            pause: pause.clone(),
            threads: Vec::new(),
        };
        for (n, (via, backend)) in backends.into_iter().enumerate() {
            let (log, stop, pause) = (log.clone(), stop.clone(), pause.clone());
            let mut rng = fastrand::Rng::with_seed(seed ^ (0x9E37_79B9 * (n as u64 + 1)));
            let thread = thread::Builder::new()
                .name(format!("chaos-producer-{n}"))
                .spawn(move || {
                    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Acquire) {
                        for _ in 0..BURST {
                            wait_while_paused(&pause, &stop);
                            let mut pick = rng.u32(..total);
                            let kind = MIX
                                .iter()
                                .find(|(_, w)| {
                                    let hit = pick < *w;
                                    pick = pick.saturating_sub(*w);
                                    hit
                                })
                                .map_or(Kind::Multi, |(k, _)| *k);
                            log.enqueue(&backend, kind, via);
                        }
                        next += interval;
                        let now = Instant::now();
                        if next > now {
                            thread::sleep(next - now);
                        } else {
                            next = now;
                        }
                    }
                })?;
            producers.threads.push(thread);
        }
        Ok(producers)
    }

    /// Asks every producer to pause and waits until all are idle (at most `limit`); says
    /// whether they are.
    pub(crate) fn pause(&self, limit: Duration) -> bool {
        let (state, changed) = &*self.pause;
        let mut guard = lock(state);
        guard.requested = true;
        let deadline = Instant::now() + limit;
        while guard.idle < self.threads.len() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Lets the producers go on.
    pub(crate) fn resume(&self) {
        let (state, changed) = &*self.pause;
        lock(state).requested = false;
        changed.notify_all();
    }

    /// Stops the producers and waits for them.
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.resume();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Producers {
    fn drop(&mut self) {
        self.halt();
    }
}

fn wait_while_paused(pause: &(Mutex<PauseState>, Condvar), stop: &AtomicBool) {
    let (state, changed) = pause;
    let mut guard = lock(state);
    if !guard.requested {
        return;
    }
    guard.idle += 1;
    changed.notify_all();
    while guard.requested && !stop.load(Ordering::Acquire) {
        guard = changed
            .wait_timeout(guard, Duration::from_millis(100))
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    guard.idle -= 1;
}

/// What the order streams' producers enqueue.
#[derive(Debug, Clone)]
pub(crate) struct StreamPlan {
    /// Keys of the keyed stream, a producer thread each (0: no keyed stream).
    pub(crate) keys: usize,
    /// Enqueues per second of each key.
    pub(crate) per_key_rate: f64,
    /// Enqueues per second of the ordered queue's stream (0: none).
    pub(crate) ordered_rate: f64,
    /// Tasks a stream's producer enqueues back to back.
    pub(crate) burst: u32,
    /// Whether the streams go to their plain twins (the negative control).
    pub(crate) control: bool,
}

/// The running producers of the order streams; they stop when dropped.
pub(crate) struct StreamProducers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl StreamProducers {
    /// Starts one producer per stream: the ordered queue's and one per key, each on the
    /// backend of `backends` its number picks (round robin from the second, so that with a
    /// direct and a proxied backend the ordered queue's goes through the proxy), each in
    /// bursts of `plan.burst` at its own rate, starting at a random phase.
    pub(crate) fn start(
        log: &Arc<Log>,
        backends: &[(Via, RedisQueueBackend)],
        plan: &StreamPlan,
        seed: u64,
    ) -> std::io::Result<StreamProducers> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut producers = StreamProducers {
            stop: stop.clone(),
            threads: Vec::new(),
        };
        if backends.is_empty() {
            return Ok(producers);
        }
        let mut streams: Vec<(Kind, String, f64)> = Vec::new();
        if plan.ordered_rate > 0.0 {
            let kind = Kind::of_stream(Stream::Queue, plan.control);
            streams.push((kind, ORDERED_KEY.to_owned(), plan.ordered_rate));
        }
        let kind = Kind::of_stream(Stream::Key, plan.control);
        for k in 0..plan.keys {
            streams.push((kind, format!("k{k:02}"), plan.per_key_rate));
        }
        let burst = plan.burst.max(1);
        for (n, (kind, key, rate)) in streams.into_iter().enumerate() {
            let (via, backend) = backends[(n + 1) % backends.len()].clone();
            let (log, stop) = (log.clone(), stop.clone());
            let interval = Duration::from_secs_f64(f64::from(burst) / rate.max(0.01));
            let mut rng = fastrand::Rng::with_seed(seed ^ (0x5851_F42D * (n as u64 + 1)));
            let thread = thread::Builder::new()
                .name(format!("chaos-stream-{key}"))
                .spawn(move || {
                    let phase = interval.mul_f64(rng.f64());
                    let mut next = Instant::now() + phase;
                    while !stop.load(Ordering::Acquire) {
                        let now = Instant::now();
                        if next > now {
                            // In slices, so that a stop is seen soon.
                            thread::sleep((next - now).min(Duration::from_millis(100)));
                            continue;
                        }
                        for _ in 0..burst {
                            if stop.load(Ordering::Acquire) {
                                break;
                            }
                            log.enqueue_keyed(&backend, kind, Some(&key), via);
                        }
                        next = (next + interval).max(now);
                    }
                })?;
            producers.threads.push(thread);
        }
        Ok(producers)
    }

    /// Stops the producers and waits for them.
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for StreamProducers {
    fn drop(&mut self) {
        self.halt();
    }
}
