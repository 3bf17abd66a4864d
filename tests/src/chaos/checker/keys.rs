//! The keys check: after the run, nothing of redisq's grows without bound. The key names
//! are those of ARCHITECTURE.md's key table; this is the one part of the harness that
//! knows them.

use super::{Check, Index, Summary, Violation};
use crate::chaos::history::{End, History, KeyInfo};

/// What a key may hold after a run that drained, once every worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Nothing: Redis drops an empty list, set or hash, so the key must not exist.
    Empty(&'static str),
    /// At most this many items.
    AtMost(u64, &'static str),
    /// Anything, but it must expire.
    Expires(&'static str),
    /// Not in the key table: it must expire.
    Unknown,
}

fn rule(key: &str) -> Rule {
    if key.starts_with("task:") {
        return Rule::Expires("a status record or its wake-up list");
    }
    match key {
        "queues" => return Rule::AtMost(64, "the known-queues set"),
        "workers" => return Rule::AtMost(1000, "the worker registry"),
        _ => {}
    }
    let Some(what) = key
        .strip_prefix('{')
        .and_then(|rest| rest.split_once("}:"))
        .map(|(_, what)| what)
    else {
        return Rule::Unknown;
    };
    match what {
        "pending" | "pending:high" | "pending:low" => Rule::Empty("a lane"),
        "scheduled" => Rule::Empty("the scheduled set"),
        "leases" => Rule::Empty("the leases"),
        "state" => Rule::Empty("the state hash"),
        w if w.starts_with("claimed:") => Rule::Empty("a claimed list"),
        w if w.starts_with("key:") => Rule::Empty("an ordering key's list"),
        "ready" => Rule::Empty("the ready keys"),
        "held" => Rule::Empty("the held keys"),
        "owner" => Rule::AtMost(2, "an ordered queue's owner"),
        "hold" => Rule::Expires("an ordered queue's retry hold"),
        "signal" => Rule::AtMost(64, "the wake-up tokens"),
        "dead" => Rule::AtMost(10_000, "the dead letters"),
        "counters" => Rule::AtMost(16, "the lane counters"),
        "stats" => Rule::AtMost(16, "the statistics"),
        "latency" => Rule::AtMost(1000, "the latency samples"),
        "throughput" => Rule::Expires("the throughput"),
        _ => Rule::Unknown,
    }
}

fn violation(key: &KeyInfo, what: String) -> Violation {
    Violation {
        check: Check::Keys,
        what,
        seqs: Vec::new(),
        ids: key.sample.clone(),
    }
}

/// Which worker process the consumers named by a leases set or a claimed list belonged
/// to, and how it ended: `; consumer <id> of pid <pid> (slot <n>), killed at <t>`.
fn owners(history: &History, key: &KeyInfo) -> String {
    let consumers: Vec<&str> = match key.key.split_once("}:claimed:") {
        Some((_, consumer)) => vec![consumer],
        None if key.key.ends_with("}:leases") => key.sample.iter().map(String::as_str).collect(),
        None => return String::new(),
    };
    let mut out = String::new();
    for consumer in consumers {
        let worker = consumer.rsplit_once('-').map_or(consumer, |(w, _)| w);
        let process = history.processes.iter().find(|p| p.worker_id == worker);
        out.push_str(&match process {
            None => format!("; consumer {consumer} of no known worker process"),
            Some(p) => {
                let end = match p.ended {
                    Some((at, End::Killed)) => format!("killed at {at}"),
                    Some((at, End::Stopped)) => format!("stopped gracefully at {at}"),
                    Some((at, End::KilledAtDeadline)) => {
                        format!("killed at {at}, past its shutdown deadline")
                    }
                    None => "never stopped".to_owned(),
                };
                format!(
                    "; consumer {consumer} of pid {} (slot {}), {end}",
                    p.pid, p.slot
                )
            }
        });
    }
    out
}

pub(super) fn check(index: &Index<'_>, summary: &mut Summary) -> Vec<Violation> {
    let history = index.history;
    let mut found = Vec::new();
    for key in &history.keys {
        summary.keys_scanned += 1;
        let sample = if key.sample.is_empty() {
            String::new()
        } else {
            format!(": {}", key.sample.join(" "))
        };
        match rule(&key.key) {
            Rule::Empty(what) => found.push(violation(
                key,
                format!(
                    "{what} `{}` ({}) still holds {} item(s) after the run{sample}{}",
                    key.key,
                    key.kind,
                    key.len,
                    owners(history, key)
                ),
            )),
            Rule::AtMost(most, what) if key.len > most => found.push(violation(
                key,
                format!(
                    "{what} `{}` holds {} item(s), more than {most}",
                    key.key, key.len
                ),
            )),
            Rule::AtMost(..) => {}
            Rule::Expires(what) if key.ttl_ms < 0 => found.push(violation(
                key,
                format!("{what} `{}` ({}) never expires{sample}", key.key, key.kind),
            )),
            Rule::Expires(_) => {}
            Rule::Unknown if key.ttl_ms < 0 => found.push(violation(
                key,
                format!(
                    "`{}` ({}, {} item(s)) is in no bounded set and never expires",
                    key.key, key.kind, key.len
                ),
            )),
            Rule::Unknown => {}
        }
    }
    // A silent worker is pruned by any heartbeat after ten leases.
    let prune_us = 11 * history.lease_us + 1_000_000;
    for entry in &history.registry {
        if entry.last_beat_ms * 1000 + prune_us < history.stopped_us {
            found.push(Violation {
                check: Check::Keys,
                what: format!(
                    "worker {} (pid {}) last beat at {} ms, long before the workers stopped, and was never pruned",
                    entry.id, entry.pid, entry.last_beat_ms
                ),
                seqs: Vec::new(),
                ids: Vec::new(),
            });
        }
    }
    for shutdown in history.shutdowns.iter().filter(|s| !s.graceful) {
        found.push(Violation {
            check: Check::Keys,
            what: format!(
                "worker process {} did not shut down within its deadline and was killed",
                shutdown.pid
            ),
            seqs: Vec::new(),
            ids: Vec::new(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::{rule, Rule};

    #[test]
    fn keys_are_classified_by_the_key_table() {
        assert_eq!(rule("{q}:pending"), Rule::Empty("a lane"));
        assert_eq!(rule("{q}:claimed:w-1"), Rule::Empty("a claimed list"));
        assert_eq!(rule("{q}:leases"), Rule::Empty("the leases"));
        assert!(matches!(rule("{q}:dead"), Rule::AtMost(10_000, _)));
        assert!(matches!(rule("task:abc:done"), Rule::Expires(_)));
        assert!(matches!(rule("{q}:throughput"), Rule::Expires(_)));
        assert_eq!(rule("{q}:key:k01"), Rule::Empty("an ordering key's list"));
        assert_eq!(rule("{q}:ready"), Rule::Empty("the ready keys"));
        assert!(matches!(rule("{q}:owner"), Rule::AtMost(2, _)));
        assert!(matches!(rule("{q}:hold"), Rule::Expires(_)));
        assert_eq!(rule("{q}:something-new"), Rule::Unknown);
        assert_eq!(rule("stray"), Rule::Unknown);
    }
}
