//! [`TaskContext`]: what a running task can know about itself — its id, queue, namespace
//! and attempt — so that a task body can pick per-deployment resources (a database pool
//! keyed by namespace, say) without taking them as arguments.

use std::cell::RefCell;

use crate::task::TaskId;

thread_local! {
    static CURRENT: RefCell<Option<TaskContext>> = const { RefCell::new(None) };
}

/// The task running on this thread, as seen from inside its body.
///
/// ```
/// use redisq::fifo;
///
/// #[fifo(queue = "emails")]
/// fn send(to: String) -> Result<(), String> {
///     if let Some(task) = redisq::TaskContext::current() {
///         println!("sending to {to} (task {}, attempt {})", task.id, task.attempt);
///     }
///     Ok(())
/// }
///
/// fn main() {
///     // Outside a worker, there is none.
///     assert_eq!(send::run("a@b.c".into()), Ok(()));
///     assert!(redisq::TaskContext::current().is_none());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskContext {
    /// The task's id (for a batch, the id of its first item).
    pub id: TaskId,
    /// The task's wire name.
    pub name: String,
    /// The queue it was taken from.
    pub queue: String,
    /// The backend's namespace.
    pub namespace: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
}

impl TaskContext {
    /// The task running on this thread: set by workers, and by the inline fallback
    /// (`enqueue_or_run`, `fallback = "inline"`) for its inline run; `None` elsewhere (in
    /// `run`, say).
    #[must_use]
    pub fn current() -> Option<TaskContext> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Runs `f` with `self` as the current task.
    pub(crate) fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.with(|current| *current.borrow_mut() = Some(self));
        let out = f();
        CURRENT.with(|current| *current.borrow_mut() = None);
        out
    }
}
