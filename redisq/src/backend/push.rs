//! Enqueueing: pushing encoded tasks onto a lane (with their status records) or into a
//! queue's scheduled set, and registering the queue.

use std::time::Duration;

use super::link::Handle;
use super::scripts::{ENQUEUE, ENQUEUE_KEYED, SCHEDULE};
use super::RedisQueueBackend;
use crate::clock::{millis, now_millis};
use crate::error::{Error, Result};
use crate::schema::{lane_index, pushed_counter};
use crate::task::Priority;

/// Tasks per command (without records) or per script call (with records).
const CHUNK: usize = 1_000;

/// Encoded tasks of one function bound for one queue, as `(id, payload)` pairs.
pub(crate) struct Batch<'a> {
    pub(crate) queue: &'a str,
    pub(crate) name: &'a str,
    /// Whether the tasks keep status records.
    pub(crate) records: bool,
    pub(crate) tasks: &'a [(&'a str, &'a [u8])],
    /// The tasks' ordering keys, one per task; empty when they have none.
    pub(crate) keys: &'a [String],
}

impl RedisQueueBackend {
    /// Pushes `batch` onto the tail of `priority`'s lane of its queue, in order, with
    /// status records when it keeps them, and rings the queue's signal list: one round
    /// trip for up to a thousand tasks with records, one for any number without.
    ///
    /// Without records it sends a plain pipeline — `HINCRBY` of the lane's count, `RPUSH`,
    /// `RPUSH` of one wake-up token (claims trim them) — because entering a Lua script
    /// costs about as much again as the `RPUSH` itself. With records, `enqueue.lua`
    /// numbers the tasks in their lane and writes each record with its number. Every key
    /// of one push is in the queue's slot; the queue joins the set of known queues (in
    /// another slot) by a command of its own, on this backend's first push there.
    pub(crate) fn push(&self, batch: &Batch<'_>, priority: Priority) -> Result<()> {
        if batch.tasks.is_empty() {
            return Ok(());
        }
        self.register_first_push(batch.queue)?;
        if !batch.keys.is_empty() {
            return self.push_keyed(batch);
        }
        let keys = self.keys(batch.queue);
        let lane = keys.lane(priority);
        let mut con = self.connection()?;
        if batch.records {
            let created_at = now_millis();
            for chunk in batch.tasks.chunks(CHUNK) {
                let mut invocation = ENQUEUE.call();
                invocation
                    .key(&lane)
                    .key(keys.signal())
                    .key(keys.counters());
                for (id, _) in chunk {
                    invocation.key(keys.record(id));
                }
                invocation
                    .arg(lane_index(priority))
                    .arg(batch.queue)
                    .arg(batch.name)
                    .arg(created_at);
                for (_, payload) in chunk {
                    invocation.arg(*payload);
                }
                let _last: i64 = con.run(|c| invocation.invoke(c))?;
            }
            return self.confirm_replicated(&mut con);
        }
        // The count first: at Redis's memory limit, where a command may be refused after
        // the one before it was not, a refused push then leaves no task the count misses
        // (a count without its task only makes the positions of the tasks queued before
        // it read low until they are taken). The wake-up token last, after the tasks.
        let mut pipe = redis::pipe();
        pipe.cmd("HINCRBY")
            .arg(keys.counters())
            .arg(pushed_counter(priority))
            .arg(batch.tasks.len())
            .ignore();
        for chunk in batch.tasks.chunks(CHUNK) {
            let mut rpush = redis::cmd("RPUSH");
            rpush.arg(&lane);
            for (_, payload) in chunk {
                rpush.arg(*payload);
            }
            pipe.add_command(rpush).ignore();
        }
        pipe.cmd("RPUSH").arg(keys.signal()).arg(1).ignore();
        con.run(|c| pipe.query::<()>(c))?;
        self.confirm_replicated(&mut con)
    }

    /// Pushes `batch`, whose tasks have ordering keys, onto their keys' lists
    /// (`enqueue_keyed.lua`, a thousand tasks a call), in order, with their records.
    fn push_keyed(&self, batch: &Batch<'_>) -> Result<()> {
        let keys = self.keys(batch.queue);
        let mut con = self.connection()?;
        let created_at = now_millis();
        for (chunk, task_keys) in batch.tasks.chunks(CHUNK).zip(batch.keys.chunks(CHUNK)) {
            let mut invocation = self.queue_script(&ENQUEUE_KEYED, batch.queue, "-");
            if batch.records {
                for (id, _) in chunk {
                    invocation.key(keys.record(id));
                }
            }
            invocation
                .arg(batch.queue)
                .arg(batch.name)
                .arg(created_at)
                .arg(if batch.records { "1" } else { "0" });
            for ((_, payload), key) in chunk.iter().zip(task_keys) {
                invocation.arg(key).arg(*payload);
            }
            let _pushed: i64 = con.run(|c| invocation.invoke(c))?;
        }
        self.confirm_replicated(&mut con)
    }

    /// Adds `batch` to its queue's scheduled set, due `delay` from now by the Redis
    /// server's clock, with `scheduled` status records when it keeps them: one round trip
    /// per thousand tasks.
    pub(crate) fn schedule(&self, batch: &Batch<'_>, delay: Duration) -> Result<()> {
        self.register_first_push(batch.queue)?;
        let keys = self.keys(batch.queue);
        let mut con = self.connection()?;
        for chunk in batch.tasks.chunks(CHUNK) {
            let mut invocation = self.queue_script(&SCHEDULE, batch.queue, "-");
            if batch.records {
                for (id, _) in chunk {
                    invocation.key(keys.record(id));
                }
            }
            invocation
                .arg(millis(delay))
                .arg(batch.queue)
                .arg(batch.name)
                .arg(if batch.records { "1" } else { "0" });
            for (_, payload) in chunk {
                invocation.arg(*payload);
            }
            let _added: i64 = con.run(|c| invocation.invoke(c))?;
        }
        self.confirm_replicated(&mut con)
    }

    /// With `with_replica_acks`: `WAIT` on `con`, whose last request was the push (on a
    /// cluster it goes to the node of that request).
    fn confirm_replicated(&self, con: &mut Handle<'_>) -> Result<()> {
        let Some((wanted, timeout)) = self.config.replica_acks else {
            return Ok(());
        };
        let timeout = timeout.min(self.config.timeout / 2);
        let acked: u64 = con.run(|c| {
            redis::cmd("WAIT")
                .arg(wanted)
                .arg(millis(timeout).max(1))
                .query(c)
        })?;
        if acked < wanted {
            return Err(Error::NotReplicated { acked, wanted });
        }
        Ok(())
    }

    /// Adds queues to the set of known queues.
    pub(crate) fn register_queues(&self, queues: &[String]) -> Result<()> {
        if queues.is_empty() {
            return Ok(());
        }
        let key = self.namespace_keys().queues();
        let mut con = self.connection()?;
        con.run(|c| redis::cmd("SADD").arg(&key).arg(queues).query::<()>(c))?;
        Ok(())
    }

    /// Adds `queue` to the set of known queues, unless this backend did already: one
    /// `SADD` on its first push there, before the tasks are pushed, so that a task is
    /// never in a queue the set does not name.
    fn register_first_push(&self, queue: &str) -> Result<()> {
        let known = self
            .registered
            .lock()
            .is_ok_and(|registered| registered.contains(queue));
        if known {
            return Ok(());
        }
        self.register_queues(&[queue.to_owned()])?;
        if let Ok(mut registered) = self.registered.lock() {
            registered.insert(queue.to_owned());
        }
        Ok(())
    }
}
