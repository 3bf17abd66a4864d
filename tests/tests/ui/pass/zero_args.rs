//! A task without parameters, returning a plain value.
#![deny(warnings)]

use redisq::fifo;

/// Counts to three.
#[fifo(queue = "counting")]
pub fn three() -> u64 {
    3
}

fn main() {
    assert_eq!(three::run(), 3);
    assert!(three::DEF.params.is_empty());
    let _enqueue: fn() -> redisq::Result<redisq::TaskId> = three;
    let _explicit: fn(&redisq::RedisQueueBackend) -> redisq::Result<redisq::TaskId> =
        three::enqueue;
}
