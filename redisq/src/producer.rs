//! Turning a call into a task: encoding its payload, pushing it (one or many at once),
//! the global backend that plain calls of a `#[fifo]` function use, and the inline
//! fallback ([`Dispatch`]) for when Redis cannot be reached.

use std::sync::RwLock;
use std::time::SystemTime;

use serde::Serialize;

use crate::backend::{Batch, RedisQueueBackend};
use crate::clock::now_millis;
use crate::context::TaskContext;
use crate::error::{Error, Result};
use crate::registry::{Registry, TaskDef};
use crate::schema::KEY_MAX;
use crate::task::{Priority, TaskId};
use crate::wire;

static GLOBAL: RwLock<Option<RedisQueueBackend>> = RwLock::new(None);

/// What became of a call that may fall back to running inline.
///
/// Returned by `enqueue_or_run`, which `#[fifo]` generates for every task, and by the plain
/// call of a task marked `#[fifo(fallback = "inline")]`.
///
/// ```
/// use redisq::{Dispatch, TaskId};
///
/// let queued: Dispatch<u32> = Dispatch::Queued(TaskId::from("abc"));
/// assert!(queued.is_queued());
/// assert_eq!(queued.task_id().map(TaskId::as_str), Some("abc"));
///
/// let ran: Dispatch<u32> = Dispatch::RanInline(7);
/// assert_eq!(ran.into_inline(), Some(7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Dispatch<R, I = TaskId> {
    /// Enqueued: a worker will run it; the task's id (the items' ids, for a batch task).
    Queued(I),
    /// Redis was unreachable: it ran inline in the caller's thread; this is what it returned.
    RanInline(R),
}

impl<R, I> Dispatch<R, I> {
    /// Whether the call was enqueued (and will run on a worker).
    #[must_use]
    pub fn is_queued(&self) -> bool {
        matches!(self, Dispatch::Queued(_))
    }

    /// The id of the enqueued task; `None` when it ran inline.
    #[must_use]
    pub fn task_id(&self) -> Option<&I> {
        match self {
            Dispatch::Queued(id) => Some(id),
            Dispatch::RanInline(_) => None,
        }
    }

    /// What the inline run returned; `None` when the call was enqueued.
    #[must_use]
    pub fn into_inline(self) -> Option<R> {
        match self {
            Dispatch::Queued(_) => None,
            Dispatch::RanInline(out) => Some(out),
        }
    }
}

/// Turns the result of enqueuing a call of `def` into a [`Dispatch`]: when, and only when,
/// it failed with [`Error::Unavailable`], logs a warning and calls `run` (the body, inline),
/// with a [`TaskContext`] of `namespace`, as a worker would, so that the body finds the
/// same per-deployment resources either way.
pub(crate) fn or_run_inline<R, I>(
    def: &TaskDef,
    namespace: &str,
    enqueued: Result<I>,
    run: impl FnOnce() -> R,
) -> Result<Dispatch<R, I>> {
    match enqueued {
        Ok(id) => Ok(Dispatch::Queued(id)),
        Err(err) if err.is_unavailable() => {
            log::warn!(
                "running task `{}` inline in this thread, as it could not be enqueued on `{}`: {err}",
                def.name,
                def.queue,
            );
            let context = TaskContext {
                id: TaskId::generate(),
                name: def.name.to_owned(),
                queue: def.queue.to_owned(),
                namespace: namespace.to_owned(),
                attempt: 1,
            };
            Ok(Dispatch::RanInline(context.scope(run)))
        }
        Err(err) => Err(err),
    }
}

/// Sets the global backend that plain calls of `#[fifo]` functions enqueue through.
///
/// Calling it again replaces the backend. Before any call to `init`, the first plain call
/// initializes the global backend from the environment ([`RedisQueueBackend::from_env`]).
///
/// # Errors
/// [`Error::DuplicateTask`] when two tasks linked into this binary share a wire name.
///
/// ```no_run
/// # fn main() -> redisq::Result<()> {
/// redisq::init(redisq::RedisQueueBackend::new("redis://127.0.0.1:6379")?)?;
/// # Ok(()) }
/// ```
pub fn init(backend: RedisQueueBackend) -> Result<()> {
    Registry::load()?;
    let mut global = GLOBAL
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *global = Some(backend);
    Ok(())
}

/// The global backend, initialized from the environment on first use.
pub(crate) fn global() -> Result<RedisQueueBackend> {
    if let Some(backend) = GLOBAL
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
    {
        return Ok(backend.clone());
    }
    let mut global = GLOBAL
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(backend) = global.as_ref() {
        return Ok(backend.clone());
    }
    let backend = RedisQueueBackend::from_env()?;
    log::info!("global backend initialized from the environment");
    *global = Some(backend.clone());
    Ok(backend)
}

/// Where and when one call goes: the generated `with(&backend)` builders fill it in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// The queue; the task's own when `None`.
    pub queue: Option<&'a str>,
    /// The lane; the task's default (`#[fifo(priority = ...)]`) when `None`.
    pub priority: Option<Priority>,
    /// When it is due; at once when `None`. A delayed task waits in the queue's
    /// scheduled set and, once due, joins the normal lane.
    pub at: Option<SystemTime>,
    /// The ordering key, overriding the one `#[fifo(key = "...")]` takes from the
    /// arguments: tasks of one key run one at a time, in enqueue order.
    pub key: Option<&'a str>,
}

/// Enqueues one call of `def` (`args`: the argument tuple) as `options` say.
pub(crate) fn submit<A: Serialize + ?Sized>(
    backend: &RedisQueueBackend,
    def: &TaskDef,
    options: &Options<'_>,
    args: &A,
) -> Result<TaskId> {
    let mut ids = submit_many(backend, def, options, std::iter::once(args))?;
    ids.pop()
        .ok_or_else(|| Error::Internal("one call enqueued no task".to_owned()))
}

/// Enqueues one call of `def` per item of `calls` (each the argument tuple) as `options`
/// say, and returns their ids in item order: one round trip for up to a thousand tasks
/// that keep records, or any number that keep none. No items, no round trip.
///
/// Every payload is encoded before anything is sent, so an argument that does not
/// serialize enqueues nothing.
pub(crate) fn submit_many<A: Serialize>(
    backend: &RedisQueueBackend,
    def: &TaskDef,
    options: &Options<'_>,
    calls: impl IntoIterator<Item = A>,
) -> Result<Vec<TaskId>> {
    let queue = options.queue.unwrap_or(def.queue);
    if queue.is_empty() {
        return Err(Error::InvalidArgument(
            "queue name must not be empty".to_owned(),
        ));
    }
    let calls = calls.into_iter();
    let mut ids = Vec::with_capacity(calls.size_hint().0);
    let mut keys: Vec<String> = Vec::new();
    // One buffer for every payload; `ends[i]` is where payload `i` ends.
    let mut buf = Vec::with_capacity(ids.capacity().saturating_mul(128));
    let mut ends = Vec::with_capacity(ids.capacity());
    let enqueued_at = now_millis();
    let slot = backend.queue_slot(queue);
    for args in calls {
        let id = TaskId::for_slot(slot);
        let start = buf.len();
        let key = call_key(def, options, &args)?;
        wire::encode_new(
            &mut buf,
            &id,
            key.as_deref(),
            def.name,
            queue,
            &args,
            enqueued_at,
        )
        .map_err(Error::Serialize)?;
        keys.extend(key);
        let bytes = buf.len() - start;
        let max = backend.config().max_payload;
        if bytes > max {
            return Err(Error::TooLarge { bytes, max });
        }
        ends.push(buf.len());
        ids.push(id);
    }
    if ids.is_empty() {
        return Ok(ids);
    }
    let mut start = 0;
    let tasks: Vec<(&str, &[u8])> = ends
        .iter()
        .zip(&ids)
        .map(|(&end, id)| {
            let payload = &buf[start..end];
            start = end;
            (id.as_str(), payload)
        })
        .collect();
    let batch = Batch {
        queue,
        name: def.name,
        records: def.store_result,
        tasks: &tasks,
        keys: &keys,
    };
    match options.at {
        Some(at) => {
            // The caller's clock says how far off `at` is; the server's clock says when.
            let delay = at.duration_since(SystemTime::now()).unwrap_or_default();
            backend.schedule(&batch, delay)?;
        }
        None => backend.push(&batch, options.priority.unwrap_or(def.priority))?,
    }
    Ok(ids)
}

/// The ordering key of a call of `def` with `args`: the one `options` set, else the one
/// `#[fifo(key = "...")]` names, else none; at most [`KEY_MAX`] bytes.
fn call_key<A: Serialize>(
    def: &TaskDef,
    options: &Options<'_>,
    args: &A,
) -> Result<Option<String>> {
    let key = match options.key {
        Some(key) => key.to_owned(),
        None if def.key.is_some() => key_of(def, args)?,
        None => return Ok(None),
    };
    if key.len() > KEY_MAX {
        return Err(Error::InvalidArgument(format!(
            "an ordering key may have at most {KEY_MAX} bytes; this one has {}",
            key.len()
        )));
    }
    Ok(Some(key))
}

/// The ordering key of a call of `def` (which has `#[fifo(key = "...")]`): the value of
/// the parameter it names (for a batch task, of the item's field), as a string — a JSON
/// string as it is, any other value as its JSON text.
fn key_of<A: Serialize>(def: &TaskDef, args: &A) -> Result<String> {
    let param = def.key.unwrap_or_default();
    let value = serde_json::to_value(args).map_err(Error::Serialize)?;
    let arg = if def.batch > 0 {
        value.get(0).and_then(|item| item.get(param))
    } else {
        def.params
            .iter()
            .position(|p| *p == param)
            .and_then(|i| value.get(i))
    };
    match arg {
        Some(serde_json::Value::String(key)) => Ok(key.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(Error::InvalidArgument(format!(
            "task `{}` is ordered by `{param}`, which this call's arguments do not have",
            def.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_called(_: crate::dispatch::Args<'_>) -> crate::dispatch::CallResult {
        Ok(String::new())
    }

    const DEF: TaskDef = TaskDef::new("m::f", "q", &[], never_called);

    #[test]
    fn runs_inline_only_when_redis_is_unavailable() {
        let queued = or_run_inline(&DEF, "ns", Ok(TaskId::from("x")), || -> u8 {
            panic!("must not run")
        });
        assert_eq!(queued.ok(), Some(Dispatch::Queued(TaskId::from("x"))));

        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let ran = or_run_inline::<u8, TaskId>(&DEF, "ns", Err(Error::from(refused)), || 7_u8);
        assert_eq!(ran.ok(), Some(Dispatch::RanInline(7)));

        let bad = Err(Error::InvalidArgument(
            "queue name must not be empty".to_owned(),
        ));
        let failed =
            or_run_inline::<u8, TaskId>(&DEF, "ns", bad, || -> u8 { panic!("must not run") });
        assert!(matches!(failed, Err(Error::InvalidArgument(_))));
    }
}
