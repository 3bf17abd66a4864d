//! What the checker found: the figures of a run ([`Summary`]) and its violations
//! ([`Report`]), printed in that order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Check, Checks, Violation};
use crate::chaos::history::{Event, FaultKind, History, Outcome, Via};

/// How many kinds of violation of each check a printed report shows.
const LISTED: usize = 12;

/// The figures of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, usize>,
    /// Enqueue calls, by how the producer reached Redis and what they returned.
    pub enqueues: BTreeMap<(Via, Outcome), usize>,
    /// Execution starts.
    pub executions: usize,
    /// Tasks that started at least once.
    pub tasks_run: usize,
    /// Tasks whose enqueue's outcome was unknown and that ran.
    pub unknown_ran: usize,
    /// Duplicate runs, by the kind of fault that explains them.
    pub duplicates_explained: BTreeMap<FaultKind, usize>,
    /// Duplicate runs that no fault explains.
    pub duplicates_unexplained: usize,
    /// Tasks lost: acknowledged and never run, or run and never finished.
    pub lost: usize,
    /// Tasks of the FIFO queue whose order was checked.
    pub fifo_checked: usize,
    /// Of those, overtaken while a fault was in effect.
    pub fifo_excused: usize,
    /// First starts checked on the ordered queue's stream.
    pub order_queue_checked: usize,
    /// Times the ordered queue's first starts passed from one process to another.
    pub order_queue_handovers: usize,
    /// First starts checked on the keyed queue's streams.
    pub order_keyed_checked: usize,
    /// Keys of the keyed queue with a first start checked.
    pub order_keys: usize,
    /// Tasks of the order streams whose first attempt failed and whose retry started.
    pub held_retries: usize,
    /// Starts of an order stream's task while another of its tasks ran on a process that
    /// a fault explains (a kill, a pause, a network or Redis fault).
    pub order_overlaps_excused: usize,
    /// Whether the order streams ran on plain queues (the negative control).
    pub order_control: bool,
    /// Status records checked.
    pub records_checked: usize,
    /// Probes made.
    pub probes: usize,
    /// Probes during which something moved.
    pub probes_inconclusive: usize,
    /// Queue positions read in probes.
    pub positions_sampled: usize,
    /// Keys of the namespace examined after the run.
    pub keys_scanned: usize,
    /// Whether the queues drained before the deadline.
    pub drained: bool,
    /// History lines that did not parse.
    pub unparsed_lines: usize,
}

impl Summary {
    pub(super) fn of(history: &History) -> Summary {
        let mut enqueues = BTreeMap::new();
        for enqueue in &history.enqueues {
            *enqueues.entry((enqueue.via, enqueue.outcome)).or_insert(0) += 1;
        }
        let started: BTreeSet<u64> = history
            .executions
            .iter()
            .filter(|e| e.event == Event::Start)
            .map(|e| e.seq)
            .collect();
        Summary {
            faults: history.faults_by_kind(),
            enqueues,
            executions: history
                .executions
                .iter()
                .filter(|e| e.event == Event::Start)
                .count(),
            tasks_run: started.len(),
            unknown_ran: history
                .enqueues
                .iter()
                .filter(|e| e.outcome == Outcome::Unknown && started.contains(&e.seq))
                .count(),
            order_control: history.enqueues.iter().any(|e| e.kind.control()),
            drained: history.drained,
            unparsed_lines: history.unparsed_lines,
            ..Summary::default()
        }
    }

    /// Enqueue calls that returned `outcome`, however the producer reached Redis.
    #[must_use]
    pub fn enqueued(&self, outcome: Outcome) -> usize {
        self.enqueues
            .iter()
            .filter(|((_, o), _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }
}

/// What the checker found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The run's seed, to replay it.
    pub seed: u64,
    /// The checks that ran.
    pub checks: Checks,
    /// The figures.
    pub summary: Summary,
    /// Every violation, by check.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether no check found anything.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// How many violations each check that ran found.
    #[must_use]
    pub fn by_check(&self) -> BTreeMap<Check, usize> {
        let mut counts: BTreeMap<Check, usize> = self.checks.0.iter().map(|c| (*c, 0)).collect();
        for violation in &self.violations {
            *counts.entry(violation.check).or_insert(0) += 1;
        }
        counts
    }
}

fn list<K: fmt::Debug>(counts: &BTreeMap<K, usize>, name: impl Fn(&K) -> String) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{} {n}", name(k)))
        .collect();
    parts.join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(f, "chaos report (seed {})", self.seed)?;
        writeln!(
            f,
            "  faults:     {}",
            list(&s.faults, |k| k.name().to_owned())
        )?;
        writeln!(
            f,
            "  enqueued:   {} ({} acknowledged, {} failed, {} unknown of which {} ran); {}",
            s.enqueues.values().sum::<usize>(),
            s.enqueued(Outcome::Acked),
            s.enqueued(Outcome::Failed),
            s.enqueued(Outcome::Unknown),
            s.unknown_ran,
            list(&s.enqueues, |(via, o)| format!("{via:?}/{o:?}")
                .to_lowercase())
        )?;
        writeln!(
            f,
            "  executions: {} starts of {} tasks; drained: {}",
            s.executions,
            s.tasks_run,
            if s.drained { "yes" } else { "NO" }
        )?;
        writeln!(
            f,
            "  duplicates: {} explained ({}), {} unexplained",
            s.duplicates_explained.values().sum::<usize>(),
            list(&s.duplicates_explained, |k| k.name().to_owned()),
            s.duplicates_unexplained
        )?;
        writeln!(f, "  lost:       {}", s.lost)?;
        writeln!(
            f,
            "  fifo:       {} tasks checked, {} overtaken during faults",
            s.fifo_checked, s.fifo_excused
        )?;
        let order = if self.checks.has(Check::Order) {
            let n = self.by_check().get(&Check::Order).copied().unwrap_or(0);
            format!("{n} violations")
        } else {
            "check skipped".to_owned()
        };
        writeln!(
            f,
            "  order:      {}ordered {} first starts checked ({} handovers), keyed {} over {} keys, {order}; held retries {}, {} overlaps excused by faults",
            if s.order_control { "CONTROL (plain queues): " } else { "" },
            s.order_queue_checked,
            s.order_queue_handovers,
            s.order_keyed_checked,
            s.order_keys,
            s.held_retries,
            s.order_overlaps_excused
        )?;
        writeln!(
            f,
            "  records:    {} checked; probes: {} ({} inconclusive), {} positions read; keys: {} scanned",
            s.records_checked, s.probes, s.probes_inconclusive, s.positions_sampled, s.keys_scanned
        )?;
        if s.unparsed_lines > 0 {
            writeln!(
                f,
                "  history:    {} line(s) did not parse",
                s.unparsed_lines
            )?;
        }
        let counts = self.by_check();
        writeln!(
            f,
            "  violations: {} ({})",
            self.violations.len(),
            list(&counts, |c| c.name().to_owned())
        )?;
        for check in Check::ALL {
            if !self.checks.has(check) {
                writeln!(f, "  [{check}] skipped")?;
                continue;
            }
            let found: Vec<&Violation> = self
                .violations
                .iter()
                .filter(|v| v.check == check)
                .collect();
            for (shown, group) in groups(&found).iter().enumerate() {
                if shown == LISTED {
                    writeln!(f, "  [{check}] … and more")?;
                    break;
                }
                let first = group[0];
                writeln!(
                    f,
                    "  [{check}] {}x {} (seq {:?}, ids {:?})",
                    group.len(),
                    first.what,
                    first.seqs,
                    first.ids
                )?;
                if group.len() > 1 {
                    let others: Vec<u64> = group[1..]
                        .iter()
                        .flat_map(|v| v.seqs.first().copied())
                        .take(8)
                        .collect();
                    writeln!(f, "  [{check}]     also seq {others:?}")?;
                }
            }
        }
        if !self.is_ok() {
            writeln!(f, "  replay with --seed {}", self.seed)?;
        }
        Ok(())
    }
}

/// Violations of the same shape (the same message but for numbers and ids), in the order
/// of their first appearance.
fn groups<'a>(violations: &[&'a Violation]) -> Vec<Vec<&'a Violation>> {
    let mut order: Vec<String> = Vec::new();
    let mut by_shape: BTreeMap<String, Vec<&Violation>> = BTreeMap::new();
    for violation in violations {
        let key = shape(&violation.what);
        if !by_shape.contains_key(&key) {
            order.push(key.clone());
        }
        by_shape.entry(key).or_default().push(violation);
    }
    order
        .into_iter()
        .filter_map(|key| by_shape.remove(&key))
        .collect()
}

/// A message with its ids (16 or more hex digits) and numbers blanked out.
fn shape(what: &str) -> String {
    let mut out = String::with_capacity(what.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() >= 16 && word.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str("<id>");
        } else {
            let mut digits = false;
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !digits {
                        out.push('#');
                    }
                    digits = true;
                } else {
                    out.push(c);
                    digits = false;
                }
            }
        }
        word.clear();
    };
    for c in what.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::shape;

    #[test]
    fn shapes_blank_numbers_and_ids() {
        assert_eq!(
            shape("task:0123456789abcdef0123 at 12 of q1 after 3.5 s"),
            "task:<id> at # of q# after #.# s"
        );
    }
}
