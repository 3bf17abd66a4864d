//! The positions check: what the probes read against how the tasks were then taken.

use std::collections::{BTreeMap, HashMap};

use redisq::TaskStatus;

use super::{Check, Index, Summary, Violation};
use crate::chaos::history::{Event, Execution, Probe, Sample};

pub(super) fn check(index: &Index<'_>, summary: &mut Summary) -> Vec<Violation> {
    let mut found = Vec::new();
    for probe in &index.history.probes {
        summary.probes += 1;
        if probe.lane_before != probe.lane_after {
            // Something moved while the records were read: nothing to compare with.
            summary.probes_inconclusive += 1;
            continue;
        }
        let queued: Vec<&Sample> = probe
            .samples
            .iter()
            .filter(|s| s.status == Some(TaskStatus::Queued))
            .collect();
        summary.positions_sampled += queued.len();
        found.extend(bounds(index, probe, &queued));
        if probe.single_consumer {
            found.extend(order(index, probe, &queued));
        }
    }
    found
}

/// Positions are distinct, and below the number of tasks queued.
fn bounds(index: &Index<'_>, probe: &Probe, queued: &[&Sample]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut at: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for sample in queued {
        match sample.position {
            None => found.push(index.violation(
                Check::Positions,
                format!(
                    "queued in {} without a position (probe at {})",
                    probe.queue, probe.at_us
                ),
                &[sample.seq],
            )),
            Some(p) if p >= probe.lane_before => found.push(index.violation(
                Check::Positions,
                format!(
                    "position {p} in {}, but only {} task(s) were queued (probe at {}{})",
                    probe.queue,
                    probe.lane_before,
                    probe.at_us,
                    recovery(probe)
                ),
                &[sample.seq],
            )),
            Some(p) => at.entry(p).or_default().push(sample.seq),
        }
    }
    for (position, seqs) in at.into_iter().filter(|(_, s)| s.len() > 1) {
        found.push(index.violation(
            Check::Positions,
            format!(
                "{} tasks at position {position} of {} (probe at {}{})",
                seqs.len(),
                probe.queue,
                probe.at_us,
                recovery(probe)
            ),
            &seqs,
        ));
    }
    found
}

fn recovery(probe: &Probe) -> &'static str {
    if probe.after_recovery {
        ", after a recovery"
    } else {
        ""
    }
}

/// On a queue with one consumer, positions follow the order in which the tasks were taken
/// after the probe; after a recovery (when nothing was claimed), they equal it.
fn order(index: &Index<'_>, probe: &Probe, queued: &[&Sample]) -> Vec<Violation> {
    let horizon = index
        .history
        .faults
        .iter()
        .map(|f| f.start_us)
        .filter(|t| *t > probe.resumed_us)
        .min()
        .unwrap_or(u64::MAX);
    // Every start on the queue after the probe, before the next fault: one per claim.
    let taken: Vec<&Execution> = index
        .history
        .executions
        .iter()
        .filter(|e| e.event == Event::Start && e.queue == probe.queue)
        .filter(|e| e.at_us > probe.at_us && e.at_us < horizon)
        .collect();
    let mut first: HashMap<u64, usize> = HashMap::new();
    for (i, start) in taken.iter().enumerate() {
        first.entry(start.seq).or_insert(i);
    }
    let lane = usize::try_from(probe.lane_before).unwrap_or(usize::MAX);
    let mut found = Vec::new();
    if probe.after_recovery {
        for sample in queued {
            let Some(p) = sample.position else { continue };
            let what = match first.get(&sample.seq) {
                Some(&i) if i < lane && u64::try_from(i) != Ok(p) => format!(
                    "position {p} in {} after a recovery, but {i} task(s) were taken before it (probe at {})",
                    probe.queue, probe.at_us
                ),
                Some(&i) if i < lane => continue,
                _ if taken.len() >= lane => format!(
                    "position {p} in {}, but it was not among the {lane} task(s) queued that were taken next (probe at {})",
                    probe.queue, probe.at_us
                ),
                _ => continue,
            };
            found.push(index.violation(Check::Positions, what, &[sample.seq]));
        }
    }
    let mut by_position: Vec<(u64, usize, u64)> = queued
        .iter()
        .filter_map(|s| Some((s.position?, *first.get(&s.seq)?, s.seq)))
        .collect();
    by_position.sort_unstable();
    for pair in by_position.windows(2) {
        let ((p, i, a), (q, j, b)) = (pair[0], pair[1]);
        if p < q && i > j {
            found.push(index.violation(
                Check::Positions,
                format!(
                    "position {p} in {} was taken after position {q} (probe at {}{})",
                    probe.queue,
                    probe.at_us,
                    recovery(probe)
                ),
                &[a, b],
            ));
        }
    }
    found
}
