//! Reading task status records: [`RedisQueueBackend::task`] (with the queue position of a
//! queued task) and [`RedisQueueBackend::wait`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::scripts::WAIT;
use super::RedisQueueBackend;
use crate::error::Result;
use crate::schema::{self, field, pushed_counter, QueueKeys, State, LANES};
use crate::status::{TaskInfo, TaskStatus};
use crate::task::{Priority, TaskId};

impl RedisQueueBackend {
    /// The status record of task `id`: `None` when there is none (unknown, expired, or a
    /// task of a `store_result = false` function). While it is queued, the record says how
    /// many tasks will be taken before it and how long that should take at the queue's
    /// rate over the last minute.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn task(&self, id: &TaskId) -> Result<Option<TaskInfo>> {
        let Some((_, fields)) = self.find_record(id)? else {
            return Ok(None);
        };
        let mut con = self.connection()?;
        let Some(status) = fields
            .get(field::STATUS)
            .and_then(|s| schema::parse_status(s))
        else {
            return Ok(None);
        };
        let text = |name: &str| fields.get(name).cloned();
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
        let queue = text(field::QUEUE).unwrap_or_default();
        let mut info = TaskInfo {
            id: id.clone(),
            status,
            queue: queue.clone(),
            name: text(field::NAME).unwrap_or_default(),
            priority: fields
                .get(field::LANE)
                .and_then(|l| Priority::from_lane_name(l))
                .unwrap_or_default(),
            key: text(field::KEY),
            created_at: number(field::CREATED_AT).unwrap_or(0),
            started_at: number(field::STARTED_AT).filter(|t| *t > 0),
            finished_at: number(field::FINISHED_AT),
            attempts: number(field::ATTEMPTS)
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
            worker: text(field::WORKER).filter(|w| !w.is_empty()),
            result: fields
                .get(field::RESULT)
                .and_then(|r| serde_json::from_str(r).ok()),
            error: text(field::ERROR),
            queue_position: None,
            estimated_wait_seconds: None,
        };
        let mut seq = fields.get(field::SEQ).and_then(|v| v.parse::<i64>().ok());
        // Where it moved since the record was written (claimed, promoted, handed back).
        let state: Option<String> = con.run(|c| {
            redis::cmd("HGET")
                .arg(self.keys(&queue).state())
                .arg(id.as_str())
                .query(c)
        })?;
        drop(con);
        match state.as_deref().and_then(State::parse) {
            Some(State::Queued { lane, seq: place }) => {
                info.status = TaskStatus::Queued;
                info.priority = lane;
                seq = Some(place);
            }
            Some(State::Processing {
                started_at,
                consumer,
            }) => {
                info.status = TaskStatus::Processing;
                info.started_at = Some(started_at);
                info.worker = Some(consumer);
            }
            Some(State::Keyed) => info.status = TaskStatus::Queued,
            None => {}
        }
        if info.status == TaskStatus::Queued {
            if let Some(seq) = seq {
                let (position, wait) = self.position(&queue, info.priority, seq)?;
                info.queue_position = Some(position);
                info.estimated_wait_seconds = Some(wait);
            }
        }
        Ok(Some(info))
    }

    /// The queue of task `id` and its record's fields, found by the slot its id names: in
    /// the known queues of that slot (read again once when none has it, for a queue that
    /// is new to this backend); for an id of another form, in every known queue.
    fn find_record(&self, id: &TaskId) -> Result<Option<(String, HashMap<String, String>)>> {
        let slot = id.slot();
        for fresh in [false, true] {
            let queues = self.known_queues(fresh)?;
            let candidates = queues
                .iter()
                .filter(|q| slot.is_none_or(|slot| self.queue_slot(q) == slot));
            for queue in candidates {
                let key = self.keys(queue).record(id.as_str());
                let mut con = self.connection()?;
                let fields: HashMap<String, String> =
                    con.run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
                if !fields.is_empty() {
                    return Ok(Some((queue.clone(), fields)));
                }
            }
        }
        Ok(None)
    }

    /// The known queues, as last read (`fresh`: read now).
    fn known_queues(&self, fresh: bool) -> Result<Vec<String>> {
        if !fresh {
            if let Ok(known) = self.known.lock() {
                if !known.is_empty() {
                    return Ok(known.clone());
                }
            }
        }
        let queues = self.queues()?;
        if let Ok(mut known) = self.known.lock() {
            known.clone_from(&queues);
        }
        Ok(queues)
    }

    /// How many tasks will be taken before the task with place `seq` in `priority`'s lane,
    /// and how long that should take. The tasks behind it in its lane are those pushed
    /// after it (`pushed − seq`), so the ones ahead are the rest of the lane, plus the
    /// higher lanes: a few O(1) reads, exact whatever was taken from or put back at the
    /// head (claims, hand-backs, at-most-once pops).
    fn position(&self, queue: &str, priority: Priority, seq: i64) -> Result<(u64, f64)> {
        let keys = self.keys(queue);
        let higher = LANES.iter().take_while(|lane| **lane != priority);
        let mut pipe = redis::pipe();
        pipe.cmd("HGET")
            .arg(keys.counters())
            .arg(pushed_counter(priority));
        pipe.cmd("LLEN").arg(keys.lane(priority));
        for lane in higher {
            pipe.cmd("LLEN").arg(keys.lane(*lane));
        }
        let mut con = self.connection()?;
        let replies: Vec<Option<i64>> = con.run(|c| pipe.query(c))?;
        drop(con);
        let pushed = replies.first().copied().flatten().unwrap_or(0);
        let lane_len = replies.get(1).copied().flatten().unwrap_or(0).max(0);
        let behind = pushed.saturating_sub(seq);
        let ahead_in_lane = (lane_len - 1 - behind).clamp(0, (lane_len - 1).max(0));
        let ahead_higher: i64 = replies.iter().skip(2).map(|r| r.unwrap_or(0)).sum();
        let position = u64::try_from(ahead_in_lane + ahead_higher).unwrap_or(0);
        Ok((position, self.estimate(&keys, position)?))
    }

    /// Seconds until a task with `position` tasks ahead starts: `(position + 1)` over the
    /// queue's rate in the last minute; without one, the mean run time of the recent
    /// samples times `(position + 1)`, spread over the consumers holding leases; 0 when
    /// nothing has been observed. Non-decreasing in `position`, never negative.
    fn estimate(&self, keys: &QueueKeys, position: u64) -> Result<f64> {
        let rate = self.rate(keys)?;
        let tasks = (position + 1) as f64;
        if rate > 0.0 {
            return Ok(tasks / rate);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("LRANGE").arg(keys.latency()).arg(0).arg(99);
        pipe.cmd("ZCARD").arg(keys.leases());
        let mut con = self.connection()?;
        let (samples, consumers): (Vec<String>, u64) = con.run(|c| pipe.query(c))?;
        let runs: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.split_once(':')?.1.parse::<f64>().ok())
            .collect();
        if runs.is_empty() {
            return Ok(0.0);
        }
        let mean_ms = runs.iter().sum::<f64>() / runs.len() as f64;
        Ok((tasks * mean_ms / 1000.0 / consumers.max(1) as f64).max(0.0))
    }

    /// Tasks processed per second over the last minute, by the Redis server's clock: this
    /// minute's count and the part of the last minute's that the window still covers.
    pub(super) fn rate(&self, keys: &QueueKeys) -> Result<f64> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        pipe.cmd("HGETALL").arg(keys.throughput());
        let mut con = self.connection()?;
        let ((secs, micros), counts): ((u64, u64), HashMap<u64, u64>) =
            con.run(|c| pipe.query(c))?;
        let now = secs * 1000 + micros / 1000;
        let minute = schema::minute(now);
        let into = (now % schema::MINUTE_MS) as f64 / schema::MINUTE_MS as f64;
        let current = counts.get(&minute).copied().unwrap_or(0);
        let previous = counts.get(&minute.saturating_sub(1)).copied().unwrap_or(0);
        let count = current as f64 + previous as f64 * (1.0 - into);
        Ok(count / 60.0)
    }

    /// Waits until task `id` is finished (done or dead) or `timeout` passes, blocking on
    /// Redis (no polling), and returns its record as it is then; `None` when it has none.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub fn wait(&self, id: &TaskId, timeout: Duration) -> Result<Option<TaskInfo>> {
        let deadline = Instant::now() + timeout;
        let Some((queue, _)) = self.find_record(id)? else {
            return Ok(None);
        };
        let keys = self.keys(&queue);
        let key = keys.record(id.as_str());
        let done = keys.record_done(id.as_str());
        // Mark the record as waited on first: a worker finishing it from now on rings.
        let mut con = self.connection()?;
        let marked: bool = con.run(|c| WAIT.call().key(&key).invoke(c))?;
        drop(con);
        if !marked {
            return Ok(None);
        }
        loop {
            let info = self.task(id)?;
            match &info {
                Some(info) if !info.status.is_finished() => {}
                _ => return Ok(info),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(info);
            }
            // A blocking wait needs its own connection: its read may last `left`.
            let mut con = self.blocking_connection(left)?;
            let woke: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(&done)
                .arg(left.as_secs_f64().max(0.01))
                .query(&mut con)?;
            if woke.is_none() {
                return self.task(id);
            }
        }
    }
}
