//! `pub(crate)`, `pub(super)` and private tasks, with a private argument type, and a
//! parameter named `backend`.
#![deny(warnings)]

mod jobs {
    use redisq::fifo;

    /// Crate-visible.
    #[fifo(queue = "jobs")]
    pub(crate) fn crate_task(n: u8) -> u8 {
        n + 1
    }

    /// Visible to the parent module.
    #[fifo(queue = "jobs")]
    pub(super) fn parent_task(backend: String) -> String {
        backend
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Private(u8);

    /// Private, with a private argument type.
    #[fifo(queue = "jobs")]
    fn private_task(p: Private) -> u8 {
        p.0
    }

    pub(crate) fn use_private() -> u8 {
        private_task::run(Private(7))
    }
}

fn main() {
    assert_eq!(jobs::crate_task::run(1), 2);
    assert_eq!(jobs::crate_task::NAME, concat!(module_path!(), "::jobs::crate_task"));
    assert_eq!(jobs::parent_task::run("x".to_owned()), "x");
    let _explicit: fn(&redisq::RedisQueueBackend, String) -> redisq::Result<redisq::TaskId> =
        jobs::parent_task::enqueue;
    assert_eq!(jobs::use_private(), 7);
    let _ = jobs::crate_task;
    let _ = jobs::parent_task;
}
