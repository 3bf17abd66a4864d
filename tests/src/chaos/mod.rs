//! A fault-injection harness for redisq's delivery promises, in Jepsen's shape: worker
//! processes run tasks that append every execution to a history of their own, producers
//! record every enqueue and what it returned, a nemesis injects faults on a schedule made
//! from a seed (killed, paused and restarted workers, a proxy that delays, swallows and
//! cuts, a Redis server killed and restarted), and a checker reads everything afterwards
//! and names each violation with the tasks involved.
//!
//! - [`tasks`]: the `#[fifo]` tasks of a run and what should become of each.
//! - [`worker`]: the worker process (`chaos_worker`) and its history file.
//! - [`history`]: what a run records, as the checker reads it.
//! - [`checker`]: the checks, over a history.
//! - [`proxy`]: the TCP proxy between the workers and Redis.
//!
//! Only redisq's public API is used, but for one part of the checker: the keys check,
//! which knows the key names of ARCHITECTURE.md's key table.

pub mod checker;
pub mod history;
pub mod proxy;
pub mod tasks;
pub mod worker;
