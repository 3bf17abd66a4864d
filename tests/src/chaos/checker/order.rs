//! The order check: the order streams (the ordered queue, and each key of the keyed queue)
//! start their tasks in enqueue order, one at a time, and a failed task's retry holds its
//! stream.
//!
//! A stream's producer is one thread that enqueues the stream's tasks one call after the
//! other, so enqueue order is sequence order, and a task whose enqueue was acknowledged
//! was in Redis before any later task of its stream was sent. Such a task `a` and any later
//! task `b` of its stream that ran give three requirements, none of which a fault can
//! excuse (a consumer that dies or stalls holding `a` hands `a` back to the head of its
//! stream, and nothing of the stream is taken until `a` is done):
//!
//! - **overtaken**: `b`'s first start comes after `a`'s first start (an acknowledged `a`
//!   that never started while `b` did is overtaken too);
//! - **held retries**: if `a`'s first attempt failed, `b`'s first start comes after the
//!   start of `a`'s retry;
//! - **one at a time**: `b`'s first start comes after `a` first finished successfully (its
//!   `ok` line): `b` is taken only once `a` is acknowledged, which comes after its body
//!   returned. (An `a` that never finished is the lost check's.)
//!
//! Every time compared is the machine's wall clock, read by the worker processes in the
//! task bodies, on one machine: each requirement compares two events of which one caused
//! the other through at least a Redis round trip (`a`'s line, its settle, the claim of
//! `b`, `b`'s line), so a correct run meets them however the processes are scheduled.
//! Only first starts are ordered: a task that runs again after a fault (at least once) is
//! a duplicate, and a retry's attempts are not first starts.
//!
//! Besides, no start of a stream's task (a first start, a retry or a duplicate) may fall
//! while another task of the stream runs (**overlap**), unless a fault explains that run:
//! a kill or a pause of its process, or a network or Redis fault, in the window the
//! duplicates check uses (a process cut off from Redis may still be running what it took
//! while its lease runs out and its tasks go elsewhere).

use std::collections::BTreeMap;

use super::{Check, Index, Summary, Violation};
use crate::chaos::history::{Event, Execution, FaultKind, Outcome};
use crate::chaos::tasks::{Kind, Stream, ORDERED_KEY};

/// One task of a stream, as the check sees it.
struct Task<'a> {
    seq: u64,
    acked: bool,
    /// When its acknowledged enqueue returned.
    acked_us: u64,
    first: Option<&'a Execution>,
    /// Its first attempt's failure, if it failed.
    failed: Option<&'a Execution>,
    /// The first start of an attempt after the first.
    retry: Option<&'a Execution>,
    /// Its first successful finish.
    ok: Option<&'a Execution>,
}

/// The streams of the history: (kind, key) → its tasks' sequence numbers, in order.
fn streams(index: &Index<'_>) -> BTreeMap<(Kind, String), Vec<u64>> {
    let mut streams: BTreeMap<(Kind, String), Vec<u64>> = BTreeMap::new();
    for (seq, enqueue) in &index.enqueues {
        let Some(stream) = enqueue.kind.stream() else {
            continue;
        };
        let key = match stream {
            Stream::Queue => ORDERED_KEY.to_owned(),
            Stream::Key => enqueue
                .key
                .clone()
                .or_else(|| index.runs(*seq).iter().find_map(|e| e.key.clone()))
                .unwrap_or_default(),
        };
        streams.entry((enqueue.kind, key)).or_default().push(*seq);
    }
    streams
}

fn task<'a>(index: &Index<'a>, seq: u64) -> Task<'a> {
    let runs = index.runs(seq);
    let first_where = |f: &dyn Fn(&Execution) -> bool| runs.iter().copied().find(|e| f(e));
    let enqueue = index.enqueues.get(&seq);
    Task {
        seq,
        acked: enqueue.is_some_and(|e| e.outcome == Outcome::Acked),
        acked_us: enqueue.map_or(0, |e| e.done_us),
        first: first_where(&|e| e.event == Event::Start),
        failed: first_where(&|e| e.event == Event::Err && e.attempt == 1),
        retry: first_where(&|e| e.event == Event::Start && e.attempt > 1),
        ok: first_where(&|e| e.event == Event::Ok),
    }
}

/// How a stream is named in a violation.
fn label(kind: Kind, key: &str) -> String {
    match kind {
        Kind::Ordered => "ordered queue".to_owned(),
        Kind::Unordered => "ordered workload on a plain queue (control)".to_owned(),
        Kind::Keyed => format!("key {key}"),
        _ => format!("key {key} on a plain queue (control)"),
    }
}

fn at(e: &Execution) -> String {
    format!("{} (pid {})", e.at_us, e.pid)
}

/// What a later task's first start must come after, among the acknowledged tasks of its
/// stream seen so far (each with the task's sequence number).
#[derive(Default)]
struct Latest<'a> {
    /// The latest first start.
    first: Option<(&'a Execution, u64)>,
    /// A task that never started, and when its enqueue was acknowledged.
    unstarted: Option<(u64, u64)>,
    /// The latest retry's start, with the failure of its first attempt.
    retry: Option<(&'a Execution, &'a Execution, u64)>,
    /// The latest first successful finish, with the task's first start.
    ok: Option<(&'a Execution, &'a Execution, u64)>,
}

impl<'a> Latest<'a> {
    fn add(&mut self, t: &Task<'a>) {
        if !t.acked {
            return;
        }
        let later =
            |old: Option<&Execution>, new: &Execution| old.is_none_or(|o| o.at_us < new.at_us);
        match t.first {
            None => {
                self.unstarted.get_or_insert((t.seq, t.acked_us));
            }
            Some(first) => {
                if later(self.first.map(|f| f.0), first) {
                    self.first = Some((first, t.seq));
                }
                if let (Some(failed), Some(retry)) = (t.failed, t.retry) {
                    if later(self.retry.map(|r| r.1), retry) {
                        self.retry = Some((failed, retry, t.seq));
                    }
                }
                if let Some(ok) = t.ok {
                    if later(self.ok.map(|o| o.1), ok) {
                        self.ok = Some((first, ok, t.seq));
                    }
                }
            }
        }
    }

    /// What `b`'s first start `start` breaks, if anything: the message and the earlier
    /// task.
    fn broken_by(&self, stream: &str, b: u64, start: &Execution) -> Option<(String, u64)> {
        let t = start.at_us;
        if let Some((a, acked)) = self.unstarted {
            return Some((
                format!(
                    "{stream}: task {b} first started at {}, but the earlier task {a}, acknowledged at {acked}, never started (overtaken)",
                    at(start)
                ),
                a,
            ));
        }
        if let Some((first, a)) = self.first.filter(|(f, _)| t < f.at_us) {
            return Some((
                format!(
                    "{stream}: task {b} first started at {}, before the earlier task {a}, acknowledged before {b} was sent, first started at {} (overtaken)",
                    at(start),
                    at(first)
                ),
                a,
            ));
        }
        if let Some((failed, retry, a)) = self.retry.filter(|(f, r, _)| f.at_us <= t && t < r.at_us)
        {
            return Some((
                format!(
                    "{stream}: task {b} first started at {} while the earlier task {a}'s retry should have held the stream: its first attempt failed at {} and its retry started at {} (held retry overtaken)",
                    at(start),
                    at(failed),
                    at(retry)
                ),
                a,
            ));
        }
        if let Some((first, ok, a)) = self.ok.filter(|(_, o, _)| t < o.at_us) {
            return Some((
                format!(
                    "{stream}: task {b} first started at {} while the earlier task {a} (first started at {}) had not finished: it first finished at {} (not one at a time)",
                    at(start),
                    at(first),
                    at(ok)
                ),
                a,
            ));
        }
        None
    }
}

pub(super) fn check(index: &Index<'_>, summary: &mut Summary) -> Vec<Violation> {
    let mut found = Vec::new();
    for ((kind, key), seqs) in streams(index) {
        let stream = label(kind, &key);
        let tasks: Vec<Task<'_>> = seqs.iter().map(|s| task(index, *s)).collect();
        let mut latest = Latest::default();
        let mut checked = 0;
        let mut reported = Vec::new();
        for b in &tasks {
            if let Some(start) = b.first {
                checked += 1;
                if let Some((what, a)) = latest.broken_by(&stream, b.seq, start) {
                    reported.push(b.seq);
                    found.push(index.violation(Check::Order, what, &[b.seq, a]));
                }
            }
            if b.failed.is_some() && b.retry.is_some() {
                summary.held_retries += 1;
            }
            latest.add(b);
        }
        match kind.stream() {
            Some(Stream::Queue) => {
                summary.order_queue_checked += checked;
                summary.order_queue_handovers += handovers(&tasks);
            }
            _ if checked > 0 => {
                summary.order_keyed_checked += checked;
                summary.order_keys += 1;
            }
            _ => {}
        }
        found.extend(overlaps(index, summary, &stream, &seqs, &reported));
    }
    found
}

/// How many times the process that first-started the stream's tasks changed, in the order
/// of those starts: the handovers of an ordered queue from one owner to the next.
fn handovers(tasks: &[Task<'_>]) -> usize {
    let mut firsts: Vec<&Execution> = tasks.iter().filter_map(|t| t.first).collect();
    firsts.sort_by_key(|e| e.at_us);
    firsts.windows(2).filter(|w| w[0].pid != w[1].pid).count()
}

/// One run of a task: its start, and when it ended (its finish line, else the end of its
/// process, else never).
struct Span<'a> {
    start: &'a Execution,
    end_us: u64,
}

fn spans<'a>(index: &Index<'a>, seqs: &[u64]) -> Vec<Span<'a>> {
    let ended: BTreeMap<u32, u64> = index
        .history
        .processes
        .iter()
        .filter_map(|p| Some((p.pid, p.ended?.0)))
        .collect();
    let mut spans = Vec::new();
    for seq in seqs {
        let runs = index.runs(*seq);
        for (i, start) in runs.iter().enumerate() {
            if start.event != Event::Start {
                continue;
            }
            let end_us = runs[i + 1..]
                .iter()
                .find(|e| {
                    e.event != Event::Start && e.pid == start.pid && e.attempt == start.attempt
                })
                .map(|e| e.at_us)
                .or_else(|| ended.get(&start.pid).copied())
                .unwrap_or(u64::MAX);
            spans.push(Span { start, end_us });
        }
    }
    spans.sort_by_key(|s| s.start.at_us);
    spans
}

/// Starts of the stream that fell while another of its tasks ran, with no fault of that
/// run's process (or of the network) to explain it; `reported` are tasks whose first
/// start is already named.
fn overlaps(
    index: &Index<'_>,
    summary: &mut Summary,
    stream: &str,
    seqs: &[u64],
    reported: &[u64],
) -> Vec<Violation> {
    let spans = spans(index, seqs);
    let mut found = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let t = s.start.at_us;
        let running = spans[..i]
            .iter()
            .filter(|x| x.start.seq != s.start.seq && x.end_us > t && x.start.at_us < t);
        let (mut unexplained, mut excused) = (None, false);
        for x in running {
            let fault = index.fault_during(
                x.start.at_us,
                t,
                Some(&[x.start.pid]),
                FaultKind::may_duplicate,
            );
            match fault {
                Some(_) => excused = true,
                None => {
                    unexplained.get_or_insert(x);
                }
            }
        }
        let Some(x) = unexplained else {
            summary.order_overlaps_excused += usize::from(excused);
            continue;
        };
        let first = index
            .first_start(s.start.seq)
            .is_some_and(|f| std::ptr::eq(f, s.start));
        if first && reported.contains(&s.start.seq) {
            continue;
        }
        let end = if x.end_us == u64::MAX {
            "never finished".to_owned()
        } else {
            format!("until {}", x.end_us)
        };
        found.push(index.violation(
            Check::Order,
            format!(
                "{stream}: task {} (attempt {}) started at {} while task {} (attempt {}) ran on pid {} from {}, {end}; no fault of pid {} explains it (overlap)",
                s.start.seq,
                s.start.attempt,
                at(s.start),
                x.start.seq,
                x.start.attempt,
                x.start.pid,
                x.start.at_us,
                x.start.pid
            ),
            &[s.start.seq, x.start.seq],
        ));
    }
    found
}
