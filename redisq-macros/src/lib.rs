//! The `#[fifo]` attribute of [redisq](https://docs.rs/redisq).
//!
//! This crate is an implementation detail of `redisq`, which re-exports the
//! attribute as `redisq::fifo`; depend on `redisq`, not on this crate. It knows
//! nothing about Redis: it checks the function and turns it into an enqueuing
//! function plus a registration, written against `redisq`'s hidden `__private`
//! module.
//!
//! The crate is split by stage: `args` parses the attribute's arguments,
//! `signature` checks the function's signature and returns its parameters,
//! `types` classifies and rewrites the types in it, `plan` derives once every
//! name, type and flag the generated items need, and `expand` writes each item
//! from the plan. On a misuse, `fallback` emits the errors with stand-ins for the
//! generated items, so that their uses do not fail too.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod args;
mod expand;
mod fallback;
mod plan;
mod signature;
mod types;

use proc_macro::TokenStream;

/// Turns a free function into a background task run by `redisq` workers.
///
/// The function keeps its name and parameters, but calling it no longer runs it:
/// it serializes the arguments to JSON, enqueues the call on a Redis queue and
/// returns the task's id. A worker that has this function linked in (every task
/// is registered at start-up, with no list to maintain) takes the call from the
/// queue and runs the original body.
///
/// For a function `send_email`, the attribute generates:
///
/// - `fn send_email(..) -> redisq::Result<redisq::TaskId>`: enqueues the call on
///   the global backend set up by `redisq::init`, with the function's docs and
///   visibility. With `fallback = "inline"` it returns
///   `redisq::Result<redisq::Dispatch<R>>` instead, like `enqueue_or_run` below on
///   the global backend;
/// - a module `send_email`, with the same visibility, holding:
///   - `send_email::NAME: &str`, the task's wire name: the `name` argument, or
///     else the function's module path and name (`my_crate::mail::send_email`);
///   - `send_email::QUEUE: &str`, the `queue` argument;
///   - `send_email::run(..)`, which runs the original body inline, in this thread,
///     without Redis, and returns what it returns (for tests, or to call one task
///     from another);
///   - `send_email::enqueue(backend: &redisq::RedisQueueBackend, ..)`, which
///     enqueues on an explicit backend;
///   - `send_email::enqueue_to(backend, queue: &str, ..)`, which enqueues on a
///     queue named at run time instead of `QUEUE` (an empty name is
///     `redisq::Error::InvalidArgument`). A worker serving that queue runs it, as a worker
///     runs whatever registered task a payload names;
///   - `send_email::enqueue_many(backend, items: impl IntoIterator<Item = ..>)
///     -> redisq::Result<Vec<redisq::TaskId>>`, which enqueues one call per item
///     on `QUEUE` in one round trip per thousand items (any number, for
///     `store_result = false`) and returns the ids in item order (the
///     queue holds the calls in that order too). An item is the tuple of the
///     argument types, `(String, String)` for `send_email(to: String, subject:
///     String)`; for one argument, its type itself; for none, `()`. No items, no
///     round trip. An item whose arguments do not serialize enqueues nothing; a
///     Redis failure part-way may leave a leading part enqueued;
///   - `send_email::enqueue_or_run(backend, ..) -> redisq::Result<redisq::Dispatch<R>>`,
///     where `R` is the function's return type (`()` when none): it enqueues and
///     returns `Dispatch::Queued(id)`, or, when and only when that fails because
///     Redis is unreachable (`redisq::Error::Unavailable`), logs a warning, runs
///     the body inline in this thread and returns `Dispatch::RanInline(output)`.
///     Other errors are returned and the body does not run. A lost reply (a
///     timeout after the push was sent) also counts as unreachable, so a call can
///     then both run inline and be queued: as with at-least-once delivery, make
///     such tasks idempotent. Each call still waits for Redis up to the backend's
///     `with_timeout` before running inline;
///   - `send_email::enqueue_in(backend, delay: Duration, ..)` and
///     `send_email::enqueue_at(backend, at: SystemTime, ..)`, which enqueue a
///     delayed call: it waits in the queue's scheduled set until it is due;
///   - `send_email::result(backend, &id)`, the task's result once done, typed:
///     `T` for a function returning `Result<T, E>` or `T`; `Err(TaskFailed)` once
///     dead; `None` until then;
///   - `send_email::with(backend)`, a builder for one call's options:
///     `.priority(redisq::Priority::High)` (the lane), `.queue("emails-eu")`,
///     `.key("device-7")` (the call's ordering key, instead of the value of the
///     parameter `key = ".."` names),
///     `.delay(d)` or `.at(t)`, then `.enqueue(..)` or `.enqueue_many(items)`.
///
/// Parameters of these functions that a task parameter's name would clash with
/// (`backend`, `queue`, `items`, `item`, `delay`, `at`) take the `__redisq_` prefix.
///
/// A batch task (`batch = N`) takes one argument, a `Vec` of items, and is
/// enqueued item by item: `enqueue(backend, item)`, `enqueue_many(backend,
/// items)`, and the plain call `insert_points(points)` enqueues each item of the
/// `Vec` as its own task and returns their ids (with `fallback = "inline"`, a
/// `Dispatch<R, Vec<TaskId>>`; `enqueue_or_run(backend, items)` likewise). A
/// worker takes up to N items in one round trip, waiting up to its batch wait
/// (50 ms) for a batch to fill, and calls the function once with all of them;
/// the batch succeeds, is retried or goes to the dead letters as a unit.
///
/// Inside the body, `send_email` is the enqueuing function: a recursive call
/// enqueues a new task. Call `send_email::run` to recurse inline.
///
/// # Arguments
///
/// - `queue = "name"` (required): the queue the task is sent to. Not empty.
/// - `name = "wire::name"` (optional): the task's stable wire name, stored in
///   every enqueued call and used by workers to find the function. Defaults to
///   the function's module path and name, which changes when the function is
///   renamed or moved: set `name` for tasks that may be in a queue while a new
///   version is deployed. Not empty, and unique within a binary (workers report
///   duplicates when they start).
/// - `workers = N` (optional): how many worker threads run this task, an integer
///   literal of at least 1. Defaults to 1, which also keeps the queue first in,
///   first out; with more than one worker, calls start in order but may finish
///   out of order.
/// - `retries = N` (optional): how many times a failed call (an `Err` or a
///   panic) is retried, with exponential backoff and jitter, before it goes to
///   the queue's dead letters. An integer literal; defaults to 3; 0 never retries.
/// - `priority = "high" | "normal" | "low"` (optional): the lane of the queue a
///   call waits in unless the caller chooses another with `with(..).priority(..)`.
///   Defaults to `"normal"`. Higher lanes are always taken first; each is FIFO.
/// - `batch = N` (optional): makes a batch task of a function whose one argument
///   is a `Vec` of items, called with up to N items at once (see above). At least 1.
/// - `store_result = false` (optional): keep no status record nor result for this
///   task's calls (fire and forget): `backend.task(&id)` then knows nothing of them,
///   and the fastest path pays nothing for records. Defaults to `true`.
/// - `fallback = "inline"` (optional): the plain call `send_email(..)` falls back
///   to running the body inline when Redis is unreachable, and returns
///   `redisq::Result<redisq::Dispatch<R>>` instead of
///   `redisq::Result<redisq::TaskId>`: `send_email::enqueue_or_run` on the global
///   backend. `"inline"` is the only value. Without it, the plain call returns
///   the `redisq::Error::Unavailable` error.
/// - `ordered = true` (optional): makes the queue ordered: it is consumed by one
///   consumer at a time across all processes, and its tasks start in enqueue
///   order, across crashes too. Defaults to `false`. Not with `key`: an ordered
///   queue already runs everything in order, so use one or the other.
/// - `key = "param"` (optional): orders the calls by the value of the parameter
///   `param`: tasks with the same key run one at a time, in enqueue order, across
///   all threads and processes; tasks of different keys run in parallel. For a
///   batch task, `key` names a field of the item (checked at run time, not by the
///   macro), and a batch never holds two items of one key. Not empty.
/// - `on_failure = "block" | "dead_letter"` (optional, only with `ordered = true`
///   or `key`): what a failed call does to the tasks behind it. With `"block"`, the
///   default, a retry holds back the later tasks of its queue (or of its key) until
///   it succeeds or is dead; with `"dead_letter"`, a failed call goes to the dead
///   letters at once and the later ones go on.
///
/// Priorities are ignored for ordered and keyed tasks, which wait in enqueue order.
///
/// The function itself must be a free function (not a method), neither `async`,
/// `const`, `unsafe`, `extern` nor generic, taking each argument as
/// `name: Type` (`mut name: Type` is fine). Each argument type must be owned and
/// implement `serde::Serialize` and `serde::de::DeserializeOwned`; the argument
/// names are the task's parameter names. The return value becomes the task's
/// outcome:
///
/// - nothing, or `()`: the task succeeds when the body returns;
/// - a type whose last path segment is `Result` (`Result<T, E>`,
///   `std::io::Result<T>`, `anyhow::Result<T>`): `Ok(value)` is a success with the
///   serialized `value`, `Err(error)` a failure reported with the error's message;
/// - anything else: a success with the serialized value. A `Result` behind a type
///   alias with another name is taken as a value, so prefer spelling `Result`.
///
/// # Examples
///
/// ```ignore
/// use redisq::{fifo, RedisQueueBackend};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Mail {
///     pub to: String,
///     pub subject: String,
/// }
///
/// /// Sends a mail.
/// #[fifo(queue = "emails", name = "mail::send", workers = 2)]
/// pub fn send_email(mail: Mail) -> Result<String, std::io::Error> {
///     Ok(format!("sent {} to {}", mail.subject, mail.to))
/// }
///
/// /// Resizes an image, with the default wire name and one worker.
/// #[fifo(queue = "images")]
/// pub(crate) fn resize(path: String, width: u32) {
///     let _ = (path, width);
/// }
///
/// /// Counts a visit; runs here and now when Redis is down.
/// #[fifo(queue = "stats", fallback = "inline")]
/// pub fn count_visit(page: String) -> usize {
///     page.len()
/// }
///
/// fn main() -> redisq::Result<()> {
///     assert_eq!(send_email::NAME, "mail::send");
///     assert_eq!(resize::QUEUE, "images");
///
///     // Runs the body here and now, without Redis.
///     let mail = Mail { to: "ada@example.com".into(), subject: "hi".into() };
///     let sent: Result<String, std::io::Error> = send_email::run(mail);
///
///     // Enqueues on the global backend; a worker runs it later.
///     let backend = RedisQueueBackend::new("redis://127.0.0.1:6379")?;
///     redisq::init(backend.clone())?;
///     let id: redisq::TaskId = resize("cat.png".to_owned(), 128)?;
///
///     // Enqueues on an explicit backend.
///     let mail = Mail { to: "bob@example.com".into(), subject: "hi".into() };
///     let id = send_email::enqueue(&backend, mail)?;
///
///     // Enqueues on a queue named at run time.
///     let mail = Mail { to: "eve@example.eu".into(), subject: "hi".into() };
///     let id = send_email::enqueue_to(&backend, "emails-eu", mail)?;
///
///     // Enqueues many calls in one round trip; one item per call.
///     let ids: Vec<redisq::TaskId> = resize::enqueue_many(
///         &backend,
///         [("a.png".to_owned(), 64), ("b.png".to_owned(), 64)],
///     )?;
///
///     // Enqueues, or runs inline when Redis is unreachable.
///     let mail = Mail { to: "ada@example.com".into(), subject: "hi".into() };
///     match send_email::enqueue_or_run(&backend, mail)? {
///         redisq::Dispatch::Queued(id) => println!("queued {id}"),
///         redisq::Dispatch::RanInline(sent) => println!("ran inline: {}", sent.is_ok()),
///     }
///     // With `fallback = "inline"`, the plain call does the same.
///     let counted: redisq::Dispatch<usize> = count_visit("/".to_owned())?;
///     Ok(())
/// }
/// ```
///
/// # Errors
///
/// Misuse is a compile error at the offending tokens, reported next to the
/// unchanged function and stand-ins for the generated function and module (with
/// their signatures, as far as the broken input tells them), so that nothing else
/// fails because of it, not even the code using them:
///
/// ```text
/// missing `queue` argument: write #[fifo(queue = "name")]
/// expected one of: `queue`, `name`, `workers`, `retries`, `fallback`, `priority`, `batch`,
///     `store_result`, `ordered`, `key`, `on_failure` (an unknown key)
/// expected only a single `queue` argument            (a repeated key)
/// queue name must not be empty
/// task name must not be empty
/// `workers` must be at least 1
/// expected integer literal                           (e.g. workers = "2")
/// `retries` must be a whole number: 0 or more
/// `fallback` must be "inline"
/// `priority` must be "high", "normal" or "low"
/// `batch` must be at least 1
/// `ordered` must be `true` or `false`
/// `key` must not be empty: ...
/// `key` must name one of the function's parameters: `device_id`, `reading`
/// `key` cannot be used with `ordered = true`: ...
/// `on_failure` must be "block" or "dead_letter"
/// `on_failure` only applies to ordered queues and keyed tasks: ...
/// a batch task takes exactly one argument, a `Vec` of items: ...
/// #[fifo] can only be applied to a free function     (a struct, an impl, ...)
/// #[fifo] functions cannot take `self`
/// task arguments must be owned types: ...            (`&T`, `&mut T`)
/// task arguments must be plain identifiers like `to: String`, ...
/// task arguments must be named, ...                  (`_: T`)
/// `impl Trait` is not supported in task arguments: ...
/// `impl Trait` is not supported in the return type of a #[fifo] function: ...
/// #[fifo] functions cannot be generic: ...
/// #[fifo] functions cannot have lifetime parameters: ...
/// #[fifo] functions cannot have a `where` clause
/// async functions are not supported yet by #[fifo]
/// #[fifo] functions cannot be `const`
/// #[fifo] functions cannot be `unsafe`: ...
/// #[fifo] functions cannot have an `extern` ABI
/// #[fifo] functions cannot be variadic
/// names starting with `__redisq_` are reserved for the code generated by #[fifo]
/// ```
///
/// An argument or return type that does not implement the serde traits is
/// reported by the compiler at that type.
#[proc_macro_attribute]
pub fn fifo(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::fifo(args.into(), item.into()).into()
}
