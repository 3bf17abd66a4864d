//! One call of `settle.lua`: this file alone knows the script's argument layout
//! (documented at the top of `lua/settle.lua`).

use super::claim::Take;
use super::report::{Marked, Outcome, Report, Tally};
use super::scripts::{Call, SETTLE};
use super::RedisQueueBackend;
use crate::clock::millis;
use crate::schema::{status_name, QueueKeys};
use crate::status::TaskStatus;

/// Outcomes one script call records at most; a larger report sends its leading outcomes
/// in calls of their own first (recording twice is harmless, acknowledging early is not).
const OUTCOMES_PER_CALL: usize = 500;

/// The outcomes too many for the last call, in calls of their own, and the rest. Every
/// retry goes in the last call (with the acknowledgement, which a lost reply repeats only
/// when it did not land): a retry of an ordered queue or of a key puts the task back at a
/// head, which must happen once.
pub(super) fn split_outcomes(
    outcomes: &[Outcome],
) -> (std::slice::Chunks<'_, Outcome>, &[Outcome]) {
    let last = outcomes.len().saturating_sub(1) / OUTCOMES_PER_CALL * OUTCOMES_PER_CALL;
    let first_retry = outcomes
        .iter()
        .position(|o| matches!(o, Outcome::Retry { .. }))
        .unwrap_or(last);
    let (leading, rest) =
        outcomes.split_at(last.min(first_retry) / OUTCOMES_PER_CALL * OUTCOMES_PER_CALL);
    (leading.chunks(OUTCOMES_PER_CALL), rest)
}

/// One call of `settle.lua`, argument by argument.
pub(super) struct SettleCall<'a> {
    backend: &'a RedisQueueBackend,
    keys: &'a QueueKeys,
    consumer: &'a str,
    mode: &'static str,
    token: u64,
    seq: u64,
    done: usize,
    max: usize,
    take: Take,
    forget: &'a [String],
    outcomes: &'a [Outcome],
    tally: Option<&'a Tally>,
}

/// A settle of nothing for `consumer` on the queue of `keys`: set what it carries.
pub(super) fn settle_call<'a>(
    backend: &'a RedisQueueBackend,
    keys: &'a QueueKeys,
    consumer: &'a str,
) -> SettleCall<'a> {
    SettleCall {
        backend,
        keys,
        consumer,
        mode: "record",
        token: 0,
        seq: 0,
        done: 0,
        max: 0,
        take: Take::default(),
        forget: &[],
        outcomes: &[],
        tally: None,
    }
}

impl<'a> SettleCall<'a> {
    pub(super) fn mode(mut self, mode: &'static str) -> Self {
        self.mode = mode;
        self
    }

    /// The consumer's fencing token (0: none) and this call's number.
    pub(super) fn fence(mut self, token: u64, seq: u64) -> Self {
        self.token = token;
        self.seq = seq;
        self
    }

    pub(super) fn outcomes(mut self, outcomes: &'a [Outcome]) -> Self {
        self.outcomes = outcomes;
        self
    }

    /// Everything of `report` but its outcomes, which are `outcomes`.
    pub(super) fn report(mut self, report: &'a Report, outcomes: &'a [Outcome]) -> Self {
        self.done = report.done;
        self.forget = &report.forget;
        self.outcomes = outcomes;
        self.tally = Some(&report.tally);
        self
    }

    pub(super) fn take(mut self, max: usize, take: Take) -> Self {
        self.max = max;
        self.take = take;
        self
    }

    /// The script call: the layout documented at the top of `settle.lua`.
    pub(super) fn invocation(&self) -> Call {
        let config = self.backend.config();
        let mut invocation = SETTLE.call();
        for key in self.keys.script_keys(self.consumer) {
            invocation.key(key);
        }
        for outcome in self.outcomes {
            invocation
                .key(self.keys.record(outcome.id()))
                .key(self.keys.record_done(outcome.id()));
        }
        let nothing = Tally::default();
        let tally = self.tally.unwrap_or(&nothing);
        invocation
            .arg(self.consumer)
            .arg(millis(config.lease))
            .arg(self.mode)
            .arg(self.token)
            .arg(self.seq)
            .arg(self.done)
            .arg(self.max)
            .arg(format!(
                "{}{}k{}s{}",
                if self.take.track { "t" } else { "-" },
                if self.take.ordered { "o" } else { "-" },
                self.take.per_key.max(1),
                config.quarantine_after.clamp(1, 2)
            ))
            .arg(config.dead_max)
            .arg(config.dead_max_age_ms())
            .arg(config.dead_max_bytes)
            .arg(config.result_ttl_secs())
            .arg(config.dead_ttl_secs())
            .arg(tally.processed)
            .arg(tally.failed)
            .arg(tally.retried)
            .arg(tally.dead)
            .arg(&tally.samples)
            .arg(self.forget.len());
        for id in self.forget {
            invocation.arg(id);
        }
        invocation.arg(self.outcomes.len());
        for outcome in self.outcomes {
            add_outcome(&mut invocation, outcome);
        }
        invocation
    }
}

/// The seven script arguments of an outcome (see `apply_outcomes` in `outcomes.lua`).
fn add_outcome(invocation: &mut Call, outcome: &Outcome) {
    let (kind, id, attempts, started_at, text, member, delay): (_, _, _, _, &str, &[u8], u64) =
        match outcome {
            Outcome::Retry {
                id,
                attempts,
                error,
                started_at,
                payload,
                delay_ms,
            } => ("retry", id, attempts, started_at, error, payload, *delay_ms),
            Outcome::Dead {
                id,
                attempts,
                reason,
                started_at,
                letter,
            } => ("dead", id, attempts, started_at, reason, letter, 0),
            Outcome::Done {
                id,
                attempts,
                result,
                started_at,
            } => ("done", id, attempts, started_at, result, b"", 0),
            Outcome::Mark {
                id,
                status,
                attempts,
                error,
                started_at,
            } => {
                let status = match status {
                    Marked::Failed => TaskStatus::Failed,
                    Marked::Dead => TaskStatus::Dead,
                };
                let status = status_name(status).as_bytes();
                ("mark", id, attempts, started_at, error, status, 0)
            }
        };
    invocation
        .arg(kind)
        .arg(id)
        .arg(attempts)
        .arg(started_at)
        .arg(text)
        .arg(member)
        .arg(delay);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(n: usize) -> Vec<Outcome> {
        (0..n)
            .map(|i| Outcome::Done {
                id: i.to_string(),
                attempts: 1,
                result: "null".to_owned(),
                started_at: 0,
            })
            .collect()
    }

    #[test]
    fn large_reports_are_split_with_the_rest_last() {
        let sizes = |n: usize| {
            let outcomes = done(n);
            let (leading, last) = split_outcomes(&outcomes);
            (
                leading.map(<[Outcome]>::len).collect::<Vec<_>>(),
                last.len(),
            )
        };
        assert_eq!(sizes(0), (vec![], 0));
        assert_eq!(sizes(1), (vec![], 1));
        assert_eq!(sizes(500), (vec![], 500));
        assert_eq!(sizes(501), (vec![500], 1));
        assert_eq!(sizes(1_200), (vec![500, 500], 200));
        let mut outcomes = done(1_200);
        outcomes[700] = Outcome::Retry {
            id: "r".to_owned(),
            attempts: 1,
            error: String::new(),
            started_at: 0,
            payload: Vec::new(),
            delay_ms: 0,
        };
        let (leading, last) = split_outcomes(&outcomes);
        assert_eq!(leading.map(<[Outcome]>::len).collect::<Vec<_>>(), [500]);
        assert_eq!(last.len(), 700, "the retry and everything after it go last");
    }
}
