//! Background tasks on Redis: mark a function with [`fifo`], call it to enqueue a task,
//! and run worker threads inside your application that execute it.
//!
//! ```no_run
//! use redisq::{fifo, RedisQueueBackend};
//!
//! #[fifo(queue = "emails")]
//! pub fn send_email(to: String, subject: String) -> Result<String, std::io::Error> {
//!     Ok(format!("sent {subject} to {to}"))
//! }
//!
//! fn main() -> redisq::Result<()> {
//!     let backend = RedisQueueBackend::new("redis://127.0.0.1:6379")?.with_namespace("myapp");
//!     redisq::init(backend.clone())?;
//!     let id: redisq::TaskId = send_email("a@b.c".into(), "hi".into())?; // enqueued, not run
//!     let id = send_email::enqueue(&backend, "a@b.c".into(), "hi".into())?;
//!     let out = send_email::run("a@b.c".into(), "hi".into()); // the body, inline
//!     let workers = redisq::threaded_worker(backend)?; // threads for every queue
//!     workers.shutdown();
//!     Ok(())
//! }
//! ```
//!
//! Delivery is at-least-once by default: see [`Delivery`]. The wire format and every
//! Redis key are described in the repository's `ARCHITECTURE.md`.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod backend;
mod clock;
mod consumer;
mod context;
mod dead;
mod dispatch;
mod error;
mod heartbeat;
mod metrics;
mod partition;
mod producer;
mod registry;
mod retry;
mod schema;
mod status;
mod task;
mod wire;
mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use backend::{cluster_seeds, redact_url, Delivery, RedisQueueBackend, Tls};
pub use context::TaskContext;
pub use dead::DeadLetter;
pub use error::{Error, Result};
pub use partition::Partitions;
pub use producer::{init, Dispatch};
pub use status::{
    Durability, Health, KeyLoad, Percentiles, ProcessorStats, QueueOwner, QueueStats,
    RedisSettings, Stats, Survival, TaskInfo, TaskStatus, WorkerInfo,
};
pub use task::{Priority, TaskId};
pub use worker::{threaded_worker, Worker, WorkerBuilder, WorkerCounts};

/// Turns a function into a task: see the attribute's own documentation.
#[doc(inline)]
pub use redisq_macros::fifo;
