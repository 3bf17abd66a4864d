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

    /// Runs `f` with `self` as the current task, then restores the one before (also when
    /// `f` panics), so that a task that runs another inline finds itself again after.
    pub(crate) fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        /// Puts the previous context back when dropped.
        struct Restore(Option<TaskContext>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|current| *current.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|current| current.borrow_mut().replace(self));
        let _restore = Restore(previous);
        f()
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::*;

    fn context(id: &str) -> TaskContext {
        TaskContext {
            id: TaskId::from(id),
            name: "m::f".to_owned(),
            queue: "q".to_owned(),
            namespace: "ns".to_owned(),
            attempt: 1,
        }
    }

    fn current_id() -> Option<String> {
        TaskContext::current().map(|c| c.id.to_string())
    }

    #[test]
    fn a_nested_scope_restores_the_outer_one() {
        let seen = context("outer").scope(|| {
            let inner = context("inner").scope(current_id);
            (inner, current_id())
        });
        assert_eq!(seen, (Some("inner".to_owned()), Some("outer".to_owned())));
        assert_eq!(current_id(), None);
    }

    #[test]
    fn a_panic_restores_the_outer_one() {
        let after = context("outer").scope(|| {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                context("inner").scope(|| panic!("task failed"))
            }));
            assert!(caught.is_err());
            current_id()
        });
        assert_eq!(after, Some("outer".to_owned()));
        assert_eq!(current_id(), None);
    }
}
