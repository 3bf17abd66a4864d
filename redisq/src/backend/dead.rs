//! Dead-letter administration: counting, listing, requeueing and purging the tasks a
//! queue set aside.

use std::collections::HashSet;

use super::scripts::REQUEUE;
use super::RedisQueueBackend;
use crate::dead::DeadLetter;
use crate::error::Result;
use crate::schema::DEAD_BYTES_COUNTER;
use crate::wire;

/// Records read per round trip when searching or requeueing.
const PAGE: usize = 1_000;

impl RedisQueueBackend {
    /// How many dead letters `queue` holds.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn dead_count(&self, queue: &str) -> Result<usize> {
        let key = self.keys(queue).dead();
        let mut con = self.connection()?;
        Ok(con.run(|c| redis::cmd("ZCARD").arg(&key).query(c))?)
    }

    /// A page of `queue`'s dead letters, newest first: `limit` records from `offset`.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn dead_letters(
        &self,
        queue: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .dead_records(queue, offset, limit)?
            .into_iter()
            .filter_map(|record| decode(queue, &record))
            .collect())
    }

    /// Moves the dead letter of task `id` back to the tail of `queue` with its attempt
    /// count reset (its past errors stay in the payload). False when no such record exists.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn requeue_dead(&self, queue: &str, id: &str) -> Result<bool> {
        let mut offset = 0;
        loop {
            let page = self.dead_records(queue, offset, PAGE)?;
            let found = page.iter().find_map(|record| {
                decode(queue, record)
                    .filter(|l| l.id == id)
                    .map(|l| (record, l))
            });
            if let Some((record, letter)) = found {
                return self.requeue(queue, record, &letter);
            }
            if page.len() < PAGE {
                return Ok(false);
            }
            offset += PAGE;
        }
    }

    /// Moves every dead letter of `queue` back to its tail, oldest first, with attempt
    /// counts reset; says how many moved. Letters that die while it runs stay dead.
    ///
    /// # Errors
    /// When Redis cannot be reached; the letters moved until then stay moved.
    pub fn requeue_all_dead(&self, queue: &str) -> Result<usize> {
        let key = self.keys(queue).dead();
        let mut con = self.connection()?;
        let newest: Vec<(Vec<u8>, f64)> = con.run(|c| {
            redis::cmd("ZREVRANGE")
                .arg(&key)
                .arg(0)
                .arg(0)
                .arg("WITHSCORES")
                .query(c)
        })?;
        drop(con);
        let Some((_, cutoff)) = newest.into_iter().next() else {
            return Ok(0);
        };
        let mut seen = HashSet::new();
        let mut moved = 0;
        loop {
            let mut con = self.connection()?;
            let oldest: Vec<Vec<u8>> = con.run(|c| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(cutoff)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(100)
                    .query(c)
            })?;
            drop(con);
            let fresh: Vec<Vec<u8>> = oldest
                .into_iter()
                .filter(|r| seen.insert(r.clone()))
                .collect();
            if fresh.is_empty() {
                return Ok(moved);
            }
            for record in &fresh {
                let requeued = match decode(queue, record) {
                    Some(letter) => self.requeue(queue, record, &letter)?,
                    // Not a record of ours: hand it on as it is rather than lose it.
                    None => self.requeue_raw(queue, record, record, "")?,
                };
                moved += usize::from(requeued);
            }
        }
    }

    /// Deletes every dead letter of `queue`; says how many there were.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn purge_dead(&self, queue: &str) -> Result<usize> {
        let keys = self.keys(queue);
        let mut con = self.connection()?;
        let (count, _, _): (usize, i64, i64) = con.run(|c| {
            redis::pipe()
                .atomic()
                .cmd("ZCARD")
                .arg(keys.dead())
                .cmd("DEL")
                .arg(keys.dead())
                .cmd("HSET")
                .arg(keys.counters())
                .arg(DEAD_BYTES_COUNTER)
                .arg(0)
                .query(c)
        })?;
        Ok(count)
    }

    /// Raw records, newest first.
    fn dead_records(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<Vec<u8>>> {
        let key = self.keys(queue).dead();
        let last = offset.saturating_add(limit).saturating_sub(1);
        let mut con = self.connection()?;
        Ok(con.run(|c| {
            redis::cmd("ZREVRANGE")
                .arg(&key)
                .arg(offset)
                .arg(last)
                .query(c)
        })?)
    }

    /// Moves one dead letter's task back, its attempts reset.
    fn requeue(&self, queue: &str, record: &[u8], letter: &DeadLetter) -> Result<bool> {
        let payload = wire::reset_attempts(&letter.payload, &letter.id);
        self.requeue_raw(queue, record, &payload, &letter.id)
    }

    /// Removes `record` from the dead letters and pushes `payload`, once; `id`'s status
    /// record, if any, says it is queued again.
    fn requeue_raw(&self, queue: &str, record: &[u8], payload: &[u8], id: &str) -> Result<bool> {
        let mut invocation = self.queue_script(&REQUEUE, queue, "-");
        invocation
            .key(self.keys(queue).record(id))
            .arg(record)
            .arg(payload);
        let mut con = self.connection()?;
        let moved: i64 = con.run(|c| invocation.invoke(c))?;
        Ok(moved == 1)
    }
}

/// A dead-letter record, or `None` (logged) when it is not one of ours.
fn decode(queue: &str, record: &[u8]) -> Option<DeadLetter> {
    match serde_json::from_slice::<DeadLetter>(record) {
        Ok(letter) => Some(letter),
        Err(err) => {
            log::warn!("skipping an unreadable dead-letter record in `{queue}`: {err}");
            None
        }
    }
}
