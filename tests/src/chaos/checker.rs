//! The checker: reads a run's [`History`] afterwards and names every violation of
//! redisq's promises, with the tasks involved. Plain code over plain data, so that its unit
//! tests can hand it histories that must fail.
//!
//! Each check can be switched off ([`Checks`]):
//!
//! - **lost**: every acknowledged task started; every task that started (acknowledged or
//!   not) finished successfully, or, if it is meant to die, made all its attempts; nothing
//!   ran that was never enqueued or whose enqueue was refused; a task runs under its own id.
//! - **duplicates**: a task whose attempt started more than once is a duplicate; each one
//!   is put down to a fault that explains it (a kill or a pause of the process that made
//!   the earlier run, a proxy fault or a Redis restart whose window, stretched by the
//!   recovery delay, overlaps the two runs), and those that none explains are violations
//!   — among them a paused process that, once continued, runs a task that another one took
//!   over while it was stopped (it was not fenced off).
//! - **fifo**: on the one-thread queue, a task acknowledged before another was sent starts
//!   (its first run) before it, unless a fault was in effect while the first one waited.
//! - **order**: on the order streams (the ordered queue, each key of the keyed queue),
//!   an acknowledged task and a later task of its stream: the later one's first start
//!   comes after the earlier one's first start, after its retry's start when its first
//!   attempt failed (held retries), and after it first finished (one at a time); and no
//!   start falls while another task of the stream runs unless a fault explains that run.
//!   See `order.rs`.
//! - **records**: after the run, every task's status record is final and right: done with
//!   the attempts of its successful run, or dead after all its attempts for a task meant to
//!   die (with a dead letter; no other task has one).
//! - **positions**: in each probe, the queued tasks' positions are distinct and below the
//!   number of tasks queued; on the one-consumer queue they follow the order in which the
//!   tasks were then taken, and after a recovery they equal it exactly.
//! - **keys**: after the run, every key of the namespace expires or belongs to a bounded
//!   set (the key table of ARCHITECTURE.md): lanes, scheduled sets, claimed lists, leases
//!   and state hashes empty, bounded lists and hashes within their bounds, the worker
//!   registry pruned; and every worker process shut down gracefully.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use redisq::TaskStatus;

use super::history::{Enqueue, Event, Execution, Fault, FaultKind, History, Outcome};

mod keys;
mod order;
mod positions;
mod report;
#[cfg(test)]
mod tests;

pub use report::{Report, Summary};

/// One of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Lost and phantom tasks.
    Lost,
    /// Duplicate runs that no fault explains.
    Duplicates,
    /// Order of first runs on the one-thread queue.
    Fifo,
    /// Order, one at a time and held retries on the ordered queue and per key.
    Order,
    /// Final status records and dead letters.
    Records,
    /// Queue positions in probes.
    Positions,
    /// Unbounded keys and unclean shutdowns.
    Keys,
}

impl Check {
    /// Every check.
    pub const ALL: [Check; 7] = [
        Check::Lost,
        Check::Duplicates,
        Check::Fifo,
        Check::Order,
        Check::Records,
        Check::Positions,
        Check::Keys,
    ];

    /// Its name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Check::Lost => "lost",
            Check::Duplicates => "duplicates",
            Check::Fifo => "fifo",
            Check::Order => "order",
            Check::Records => "records",
            Check::Positions => "positions",
            Check::Keys => "keys",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which checks to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks(pub BTreeSet<Check>);

impl Checks {
    /// Every check.
    #[must_use]
    pub fn all() -> Checks {
        Checks(Check::ALL.into_iter().collect())
    }

    /// Whether `check` runs.
    #[must_use]
    pub fn has(&self, check: Check) -> bool {
        self.0.contains(&check)
    }
}

/// A broken promise, with the tasks involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check that found it.
    pub check: Check,
    /// What is wrong, with times and processes.
    pub what: String,
    /// The sequence numbers of the tasks involved.
    pub seqs: Vec<u64>,
    /// Their ids, where known.
    pub ids: Vec<String>,
}

/// The history indexed by task.
pub(crate) struct Index<'a> {
    pub(crate) history: &'a History,
    pub(crate) enqueues: BTreeMap<u64, &'a Enqueue>,
    /// A task's executions, in time order.
    pub(crate) runs: BTreeMap<u64, Vec<&'a Execution>>,
    /// How long after a fault heals its effects may still show: a lease for the lease to run
    /// out, another for the heartbeat that recovers, and a second.
    pub(crate) slack_us: u64,
}

impl<'a> Index<'a> {
    pub(crate) fn new(history: &'a History) -> Index<'a> {
        let enqueues = history.enqueues.iter().map(|e| (e.seq, e)).collect();
        let mut runs: BTreeMap<u64, Vec<&Execution>> = BTreeMap::new();
        for execution in &history.executions {
            runs.entry(execution.seq).or_default().push(execution);
        }
        for list in runs.values_mut() {
            list.sort_by_key(|e| (e.at_us, e.event));
        }
        Index {
            history,
            enqueues,
            runs,
            slack_us: 2 * history.lease_us + 1_000_000,
        }
    }

    pub(crate) fn runs(&self, seq: u64) -> &[&'a Execution] {
        self.runs.get(&seq).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn starts(&self, seq: u64) -> impl Iterator<Item = &'a Execution> + '_ {
        self.runs(seq)
            .iter()
            .copied()
            .filter(|e| e.event == Event::Start)
    }

    pub(crate) fn first_start(&self, seq: u64) -> Option<&'a Execution> {
        self.starts(seq).next()
    }

    /// The attempt of the last successful finish.
    pub(crate) fn ok_attempt(&self, seq: u64) -> Option<u32> {
        self.runs(seq)
            .iter()
            .filter(|e| e.event == Event::Ok)
            .map(|e| e.attempt)
            .max()
    }

    /// The id a task is known by: the acknowledged one, or the one it ran under.
    pub(crate) fn id(&self, seq: u64) -> String {
        if let Some(id) = self.enqueues.get(&seq).and_then(|e| e.id.clone()) {
            return id;
        }
        let own = self
            .enqueues
            .get(&seq)
            .is_none_or(|e| e.kind.runs_under_own_id());
        self.runs(seq)
            .first()
            .filter(|_| own)
            .map(|e| e.id.clone())
            .unwrap_or_default()
    }

    /// Whether the task is over: finished successfully, or, if meant to die, failed its
    /// last attempt.
    pub(crate) fn finished(&self, seq: u64) -> bool {
        let Some(enqueue) = self.enqueues.get(&seq) else {
            return false;
        };
        match enqueue.kind.attempts_to_die() {
            None => self.ok_attempt(seq).is_some(),
            Some(last) => self
                .runs(seq)
                .iter()
                .any(|e| e.event == Event::Err && e.attempt >= last),
        }
    }

    pub(crate) fn violation(&self, check: Check, what: String, seqs: &[u64]) -> Violation {
        Violation {
            check,
            what,
            seqs: seqs.to_vec(),
            ids: seqs
                .iter()
                .map(|s| self.id(*s))
                .filter(|i| !i.is_empty())
                .collect(),
        }
    }

    /// The first fault of `kinds` whose window, stretched by the slack, overlaps
    /// `[from, to]`; with `pids`, one that strikes a process must strike one of them.
    pub(crate) fn fault_during(
        &self,
        from: u64,
        to: u64,
        pids: Option<&[u32]>,
        kinds: impl Fn(FaultKind) -> bool,
    ) -> Option<&'a Fault> {
        self.history.faults.iter().find(|f| {
            kinds(f.kind)
                && f.start_us <= to
                && from <= f.end_us + self.slack_us
                && (!f.kind.targets_worker()
                    || pids.is_none_or(|pids| f.pid.is_some_and(|p| pids.contains(&p))))
        })
    }
}

/// Runs `checks` over `history`.
#[must_use]
pub fn check(history: &History, checks: &Checks) -> Report {
    let index = Index::new(history);
    let mut summary = Summary::of(history);
    let mut violations = Vec::new();
    if checks.has(Check::Lost) {
        violations.extend(lost(&index, &mut summary));
    }
    if checks.has(Check::Duplicates) {
        violations.extend(duplicates(&index, &mut summary));
    }
    if checks.has(Check::Fifo) {
        violations.extend(fifo(&index, &mut summary));
    }
    if checks.has(Check::Order) {
        violations.extend(order::check(&index, &mut summary));
    }
    if checks.has(Check::Records) {
        violations.extend(records(&index, &mut summary));
    }
    if checks.has(Check::Positions) {
        violations.extend(positions::check(&index, &mut summary));
    }
    if checks.has(Check::Keys) {
        violations.extend(keys::check(&index, &mut summary));
    }
    Report {
        summary,
        violations,
        checks: checks.clone(),
        seed: history.seed,
    }
}

fn lost(index: &Index<'_>, summary: &mut Summary) -> Vec<Violation> {
    let mut found = Vec::new();
    for (seq, enqueue) in &index.enqueues {
        let starts: Vec<&Execution> = index.starts(*seq).collect();
        match enqueue.outcome {
            Outcome::Acked if starts.is_empty() => {
                summary.lost += 1;
                found.push(index.violation(
                    Check::Lost,
                    format!(
                        "{:?} task acknowledged at {} never started",
                        enqueue.kind, enqueue.done_us
                    ),
                    &[*seq],
                ));
            }
            Outcome::Failed if !starts.is_empty() => found.push(index.violation(
                Check::Lost,
                format!(
                    "phantom: ran although its enqueue was refused ({})",
                    enqueue.error.as_deref().unwrap_or("?")
                ),
                &[*seq],
            )),
            _ => {}
        }
        if let Some(last) = starts.last() {
            if !index.finished(*seq) {
                summary.lost += 1;
                found.push(index.violation(
                    Check::Lost,
                    format!(
                        "{:?} task started {} time(s), last attempt {} by pid {} at {}, and never {}",
                        enqueue.kind,
                        starts.len(),
                        last.attempt,
                        last.pid,
                        last.at_us,
                        if enqueue.kind.dies() { "made its last attempt" } else { "finished successfully" }
                    ),
                    &[*seq],
                ));
            }
        }
        if let (Some(id), true) = (&enqueue.id, enqueue.kind.runs_under_own_id()) {
            if let Some(other) = index.runs(*seq).iter().find(|e| &e.id != id) {
                found.push(index.violation(
                    Check::Lost,
                    format!(
                        "enqueued as {id}, ran under id {} (pid {})",
                        other.id, other.pid
                    ),
                    &[*seq],
                ));
            }
        }
    }
    for (seq, runs) in &index.runs {
        if !index.enqueues.contains_key(seq) {
            found.push(index.violation(
                Check::Lost,
                format!("phantom: ran {} time(s) but was never enqueued", runs.len()),
                &[*seq],
            ));
        }
    }
    found
}

fn duplicates(index: &Index<'_>, summary: &mut Summary) -> Vec<Violation> {
    let mut found = Vec::new();
    for seq in index.runs.keys() {
        let mut by_attempt: BTreeMap<u32, Vec<&Execution>> = BTreeMap::new();
        for start in index.starts(*seq) {
            by_attempt.entry(start.attempt).or_default().push(start);
        }
        for (attempt, starts) in by_attempt {
            for pair in starts.windows(2) {
                let (before, again) = (pair[0], pair[1]);
                // A fault of one process explains a rerun only when it struck the process
                // of the earlier run: a process that was stopped and then runs a task
                // someone else took over in the meantime should have known it had lost it.
                match index.fault_during(
                    before.at_us,
                    again.at_us,
                    Some(&[before.pid]),
                    FaultKind::may_duplicate,
                ) {
                    Some(fault) => {
                        *summary.duplicates_explained.entry(fault.kind).or_insert(0) += 1
                    }
                    None => {
                        summary.duplicates_unexplained += 1;
                        let fenced = index
                            .fault_during(before.at_us, again.at_us, Some(&[again.pid]), |k| {
                                k == FaultKind::Pause
                            })
                            .map_or(String::new(), |f| {
                                format!(
                                    " (pid {} was paused from {} to {}, and ran it after another process had taken it over)",
                                    again.pid, f.start_us, f.end_us
                                )
                            });
                        found.push(index.violation(
                            Check::Duplicates,
                            format!(
                                "attempt {attempt} started at {} (pid {}) and again at {} (pid {}); no fault explains it{fenced}",
                                before.at_us, before.pid, again.at_us, again.pid
                            ),
                            &[*seq],
                        ));
                    }
                }
            }
        }
    }
    found
}

fn fifo(index: &Index<'_>, summary: &mut Summary) -> Vec<Violation> {
    use super::tasks::Kind;
    // Every task of the queue that ran, by the time it was sent.
    let mut sent: Vec<(&Enqueue, &Execution)> = index
        .enqueues
        .values()
        .filter(|e| e.kind == Kind::Fifo)
        .filter_map(|e| Some((*e, index.first_start(e.seq)?)))
        .collect();
    sent.sort_by_key(|(e, _)| (e.sent_us, e.seq));
    // earliest[i]: the earliest first run among sent[i..].
    let mut earliest: Vec<Option<(&Enqueue, &Execution)>> = vec![None; sent.len() + 1];
    for i in (0..sent.len()).rev() {
        earliest[i] = match earliest[i + 1] {
            Some(best) if best.1.at_us <= sent[i].1.at_us => Some(best),
            _ => Some(sent[i]),
        };
    }
    let mut found = Vec::new();
    for (x, x_start) in sent.iter().filter(|(e, _)| e.outcome == Outcome::Acked) {
        summary.fifo_checked += 1;
        let later = sent.partition_point(|(e, _)| e.sent_us <= x.done_us);
        let Some((y, y_start)) = earliest[later] else {
            continue;
        };
        if y_start.at_us >= x_start.at_us {
            continue;
        }
        if index
            .fault_during(x.sent_us, x_start.at_us, None, FaultKind::may_reorder)
            .is_some()
        {
            summary.fifo_excused += 1;
            continue;
        }
        found.push(index.violation(
            Check::Fifo,
            format!(
                "acknowledged at {} but first started at {}, after a task sent later (at {}) that started at {} (pid {}), with no fault in between",
                x.done_us, x_start.at_us, y.sent_us, y_start.at_us, y_start.pid
            ),
            &[x.seq, y.seq],
        ));
    }
    found
}

fn records(index: &Index<'_>, summary: &mut Summary) -> Vec<Violation> {
    let mut found = Vec::new();
    let recorded: BTreeSet<u64> = index.history.records.iter().map(|r| r.seq).collect();
    for (seq, enqueue) in &index.enqueues {
        if enqueue.outcome == Outcome::Acked && !recorded.contains(seq) {
            found.push(index.violation(
                Check::Records,
                "no status record was read".to_owned(),
                &[*seq],
            ));
        }
    }
    for record in &index.history.records {
        summary.records_checked += 1;
        let Some(enqueue) = index.enqueues.get(&record.seq) else {
            continue;
        };
        let (status, attempts) = match enqueue.kind.attempts_to_die() {
            Some(last) => (TaskStatus::Dead, Some(last)),
            None => (TaskStatus::Done, index.ok_attempt(record.seq)),
        };
        let right = record.status == Some(status) && attempts.is_none_or(|a| a == record.attempts);
        if !right {
            let expected = attempts.map_or(String::new(), |a| format!(" after {a} attempt(s)"));
            found.push(Violation {
                check: Check::Records,
                what: format!(
                    "{:?} task's record reads {:?} after {} attempt(s), expected {status:?}{expected}",
                    enqueue.kind, record.status, record.attempts
                ),
                seqs: vec![record.seq],
                ids: vec![record.id.clone()],
            });
        }
    }
    // Ids as acknowledged, or as run (for tasks whose enqueue's reply was lost).
    let by_id: HashMap<String, &Enqueue> = index
        .enqueues
        .values()
        .map(|e| (index.id(e.seq), *e))
        .filter(|(id, _)| !id.is_empty())
        .collect();
    let dead: BTreeSet<&str> = index
        .history
        .dead_letters
        .iter()
        .map(String::as_str)
        .collect();
    for id in &dead {
        match by_id.get(*id) {
            Some(e) if e.kind.dies() => {}
            other => found.push(Violation {
                check: Check::Records,
                what: format!(
                    "a dead letter for a task not meant to die ({})",
                    other.map_or("unknown id".to_owned(), |e| format!("{:?}", e.kind))
                ),
                seqs: other.map(|e| e.seq).into_iter().collect(),
                ids: vec![(*id).to_owned()],
            }),
        }
    }
    for (id, enqueue) in &by_id {
        if enqueue.kind.dies() && enqueue.outcome == Outcome::Acked && !dead.contains(id.as_str()) {
            found.push(index.violation(
                Check::Records,
                "a task meant to die has no dead letter".to_owned(),
                &[enqueue.seq],
            ));
        }
    }
    found
}
