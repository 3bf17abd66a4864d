//! Turning a call into a task: encoding its payload, pushing it, and the global backend
//! that plain calls of a `#[fifo]` function use.

use std::io::Write;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::backend::RedisQueueBackend;
use crate::error::{Error, Result};
use crate::registry::{Registry, TaskDef};
use crate::task::{now_millis, TaskId};

static GLOBAL: RwLock<Option<RedisQueueBackend>> = RwLock::new(None);

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

/// Encodes one task: `{"id":…,"name":…,"queue":…,"args":…,"enqueued_at":…}`.
pub(crate) fn encode<A: Serialize + ?Sized>(
    id: &TaskId,
    name: &str,
    queue: &str,
    args: &A,
) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(b"{\"id\":\"");
    buf.extend_from_slice(id.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"name\":");
    serde_json::to_writer(&mut buf, name).map_err(Error::Serialize)?;
    buf.extend_from_slice(b",\"queue\":");
    serde_json::to_writer(&mut buf, queue).map_err(Error::Serialize)?;
    buf.extend_from_slice(b",\"args\":");
    serde_json::to_writer(&mut buf, args).map_err(Error::Serialize)?;
    // Writing to a Vec cannot fail.
    let _ = write!(buf, ",\"enqueued_at\":{}}}", now_millis());
    Ok(buf)
}

/// Enqueues a call of `def` with `args` (a tuple) on `queue`.
pub(crate) fn enqueue_on<A: Serialize + ?Sized>(
    backend: &RedisQueueBackend,
    def: &TaskDef,
    queue: &str,
    args: &A,
) -> Result<TaskId> {
    if queue.is_empty() {
        return Err(Error::Config("queue name must not be empty".to_owned()));
    }
    let id = TaskId::generate();
    let payload = encode(&id, def.name, queue, args)?;
    backend.push(queue, &payload)?;
    Ok(id)
}

/// Enqueues a call of `def` with `args` on `queue`, due at `at`.
pub(crate) fn schedule_on<A: Serialize + ?Sized>(
    backend: &RedisQueueBackend,
    def: &TaskDef,
    queue: &str,
    at: SystemTime,
    args: &A,
) -> Result<TaskId> {
    if queue.is_empty() {
        return Err(Error::Config("queue name must not be empty".to_owned()));
    }
    let due = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let id = TaskId::generate();
    let payload = encode(&id, def.name, queue, args)?;
    backend.schedule(queue, due, &payload)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_wire_format() {
        let id = TaskId::from("abc");
        let payload = encode(&id, "m::f", "q\"x", &("a", 2)).expect("encode");
        let text = String::from_utf8(payload).expect("utf8");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(value["id"], "abc");
        assert_eq!(value["name"], "m::f");
        assert_eq!(value["queue"], "q\"x");
        assert_eq!(value["args"], serde_json::json!(["a", 2]));
        assert!(value["enqueued_at"].as_u64().is_some_and(|t| t > 0));
    }
}
