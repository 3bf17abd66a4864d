//! A fault-injection harness for redisq's delivery promises, in Jepsen's shape: worker
//! processes run tasks that append every execution to a history of their own, producers
//! record every enqueue and what it returned, a nemesis injects faults on a schedule made
//! from a seed (killed, paused and restarted workers, a proxy that delays, swallows and
//! cuts, a Redis server killed and restarted), and a checker reads everything afterwards
//! and names each violation with the tasks involved.
//!
//! Besides the delivery promises, the order streams: an ordered queue and a keyed queue
//! (40 keys), each stream fed by one producer thread in sequence order, served by every
//! worker process, with one task in eleven failing its first attempt; the checker's order
//! check compares their first starts, retries and finishes (`checker/order.rs`). With
//! [`run::Config::unordered`] the same streams go to plain queues instead, a negative
//! control that the order check must fail.
//!
//! - [`tasks`]: the `#[fifo]` tasks of a run and what should become of each.
//! - [`worker`]: the worker process (`chaos_worker`) and its history file.
//! - [`history`]: what a run records, as the checker reads it.
//! - [`checker`]: the checks, over a history.
//! - [`proxy`]: the TCP proxy between the workers and Redis.
//! - [`cluster`]: the Redis server, the proxy and the worker processes of a run, and the
//!   faults that strike them.
//! - [`nemesis`]: the fault schedule made from a seed, and its execution.
//! - [`run`]: a whole run: start, produce, inject, drain, observe, check.
//!
//! Only redisq's public API is used, but for one part of the checker: the keys check,
//! which knows the key names of ARCHITECTURE.md's key table.

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
mod probe;
mod producer;
pub mod proxy;
pub mod run;
pub mod servers;
pub mod tasks;
pub mod worker;
