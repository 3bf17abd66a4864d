//! The nemesis: a fault schedule made from a seed ([`Schedule::generate`]), so that a run
//! can be replayed, and its execution against a [`Cluster`] ([`run`]). Steps run one after
//! the other, each after a pause of its own, so that fault windows do not overlap and each
//! duplicate can be put down to one fault.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::history::FaultKind;
use super::proxy::Mode;

/// One thing the nemesis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL the worker in `slot`, start another after `down`.
    Kill {
        /// The worker.
        slot: usize,
        /// How long it stays dead.
        down: Duration,
    },
    /// SIGSTOP the worker in `slot` for `period` (longer than the lease), then SIGCONT.
    Pause {
        /// The worker.
        slot: usize,
        /// How long it stays stopped.
        period: Duration,
    },
    /// Shut the worker in `slot` down gracefully and start another.
    Restart {
        /// The worker.
        slot: usize,
    },
    /// Delay every chunk through the proxy by `delay` for `period`.
    Latency {
        /// The delay per chunk and direction.
        delay: Duration,
        /// How long.
        period: Duration,
    },
    /// Swallow one reply in `one_in` (closing its connection) for `period`.
    DropReplies {
        /// The odds.
        one_in: u32,
        /// How long.
        period: Duration,
    },
    /// Cut every connection through the proxy.
    Cut,
    /// Cut every connection and refuse new ones for `period`.
    Partition {
        /// How long.
        period: Duration,
    },
    /// SIGKILL the Redis server, restart it after `down`.
    RedisRestart {
        /// How long it stays dead.
        down: Duration,
    },
    /// Read queue positions while nothing moves; first kill the FIFO consumer and wait
    /// for its tasks' recovery if `after_recovery`.
    Probe {
        /// Whether to kill and recover first.
        after_recovery: bool,
    },
}

impl Action {
    /// About how long it takes.
    #[must_use]
    pub fn length(&self, lease: Duration) -> Duration {
        match *self {
            Action::Kill { down, .. } => down,
            Action::Pause { period, .. }
            | Action::Latency { period, .. }
            | Action::DropReplies { period, .. }
            | Action::Partition { period } => period,
            Action::Restart { .. } | Action::Cut => Duration::from_millis(100),
            Action::RedisRestart { down } => down + Duration::from_millis(300),
            Action::Probe { after_recovery } => {
                if after_recovery {
                    lease * 2
                } else {
                    Duration::from_millis(300)
                }
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Kill { slot, down } => write!(f, "kill worker {slot}, down {down:?}"),
            Action::Pause { slot, period } => write!(f, "pause worker {slot} for {period:?}"),
            Action::Restart { slot } => write!(f, "restart worker {slot} gracefully"),
            Action::Latency { delay, period } => write!(f, "latency {delay:?} for {period:?}"),
            Action::DropReplies { one_in, period } => {
                write!(f, "drop 1 reply in {one_in} for {period:?}")
            }
            Action::Cut => write!(f, "cut every connection"),
            Action::Partition { period } => write!(f, "partition for {period:?}"),
            Action::RedisRestart { down } => write!(f, "restart redis, down {down:?}"),
            Action::Probe {
                after_recovery: true,
            } => write!(f, "probe after a recovery"),
            Action::Probe {
                after_recovery: false,
            } => write!(f, "probe"),
        }
    }
}

/// A step of the schedule: a pause, then an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// How long to wait after the previous step.
    pub gap: Duration,
    /// What to do then.
    pub action: Action,
}

/// What a schedule may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// How long the faults go on.
    pub duration: Duration,
    /// How many worker processes there are.
    pub workers: usize,
    /// Their lease.
    pub lease: Duration,
    /// The kinds of fault to inject.
    pub faults: BTreeSet<FaultKind>,
    /// Whether to probe queue positions (about every 15 s, after a recovery every other
    /// time, and at least twice).
    pub probes: bool,
}

/// The faults of a run, made from its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it was made from.
    pub seed: u64,
    /// The lease of the plan it was made for (which the lengths of probes depend on).
    pub lease: Duration,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

fn between(rng: &mut fastrand::Rng, low: Duration, high: Duration) -> Duration {
    let (low, high) = (low.as_millis() as u64, high.as_millis() as u64);
    Duration::from_millis(rng.u64(low..=high.max(low)))
}

impl Schedule {
    /// Makes the schedule of `plan` from `seed`: the same seed and plan make the same
    /// schedule.
    #[must_use]
    pub fn generate(seed: u64, plan: &Plan) -> Schedule {
        let mut rng = fastrand::Rng::with_seed(seed);
        let kinds: Vec<FaultKind> = plan.faults.iter().copied().collect();
        let probe_every = if plan.probes {
            (plan.duration / 3).min(Duration::from_secs(15))
        } else {
            Duration::MAX
        };
        let mut steps = Vec::new();
        let (mut at, mut next_probe, mut probes) = (Duration::ZERO, probe_every, 0u32);
        while at < plan.duration {
            let gap = between(
                &mut rng,
                Duration::from_millis(300),
                Duration::from_millis(1500),
            );
            at += gap;
            let action = if at >= next_probe {
                next_probe = at + probe_every;
                probes += 1;
                Action::Probe {
                    after_recovery: probes % 2 == 0,
                }
            } else if let Some(kind) = (!kinds.is_empty()).then(|| kinds[rng.usize(..kinds.len())])
            {
                action(kind, &mut rng, plan)
            } else {
                continue;
            };
            at += action.length(plan.lease);
            steps.push(Step { gap, action });
        }
        Schedule {
            seed,
            lease: plan.lease,
            steps,
        }
    }
}

fn action(kind: FaultKind, rng: &mut fastrand::Rng, plan: &Plan) -> Action {
    let slot = rng.usize(..plan.workers.max(1));
    let ms = Duration::from_millis;
    match kind {
        FaultKind::Kill => Action::Kill {
            slot,
            down: between(rng, ms(0), ms(1500)),
        },
        FaultKind::Pause => Action::Pause {
            slot,
            period: between(rng, plan.lease * 13 / 10, plan.lease * 3),
        },
        FaultKind::Restart => Action::Restart { slot },
        FaultKind::Latency => Action::Latency {
            delay: between(rng, ms(20), ms(300)),
            period: between(rng, ms(1000), ms(4000)),
        },
        FaultKind::DropReplies => Action::DropReplies {
            one_in: rng.u32(2..=20),
            period: between(rng, ms(500), ms(3000)),
        },
        FaultKind::Cut => Action::Cut,
        FaultKind::Partition => Action::Partition {
            period: between(rng, ms(300), ms(2500)),
        },
        FaultKind::RedisRestart => Action::RedisRestart {
            down: between(rng, ms(0), ms(2000)),
        },
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "schedule of seed {} ({} steps):",
            self.seed,
            self.steps.len()
        )?;
        let mut at = Duration::ZERO;
        for step in &self.steps {
            at += step.gap;
            writeln!(f, "  +{:>6.1}s  {}", at.as_secs_f64(), step.action)?;
            at += step.action.length(self.lease);
        }
        Ok(())
    }
}

/// Runs `schedule` against `cluster` until `deadline`, calling `probe` for the probes;
/// returns how many steps ran. A step that would begin after the deadline does not.
///
/// # Errors
/// When a worker process cannot be started again.
pub fn run(
    schedule: &Schedule,
    cluster: &Cluster,
    deadline: Instant,
    mut probe: impl FnMut(bool),
) -> io::Result<usize> {
    let mut done = 0;
    for step in &schedule.steps {
        if Instant::now() + step.gap >= deadline {
            break;
        }
        std::thread::sleep(step.gap);
        eprintln!("chaos: {}", step.action);
        match step.action {
            Action::Kill { slot, down } => cluster.fault_kill(slot, down)?,
            Action::Pause { slot, period } => cluster.fault_pause(slot, period),
            Action::Restart { slot } => cluster.fault_restart(slot)?,
            Action::Latency { delay, period } => cluster.fault_proxy(Mode::Latency(delay), period),
            Action::DropReplies { one_in, period } => {
                cluster.fault_proxy(Mode::DropReplies { one_in }, period);
            }
            Action::Cut => cluster.fault_cut(None),
            Action::Partition { period } => cluster.fault_cut(Some(period)),
            Action::RedisRestart { down } => cluster.fault_redis_restart(down),
            Action::Probe { after_recovery } => probe(after_recovery),
        }
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            duration: Duration::from_secs(60),
            workers: 3,
            lease: Duration::from_secs(1),
            faults: FaultKind::ALL.into_iter().collect(),
            probes: true,
        }
    }

    #[test]
    fn a_seed_makes_one_schedule() {
        let (a, b) = (
            Schedule::generate(42, &plan()),
            Schedule::generate(42, &plan()),
        );
        assert_eq!(a, b);
        assert_ne!(a, Schedule::generate(43, &plan()));
        assert!(a.steps.len() > 10, "{a}");
    }

    #[test]
    fn a_schedule_probes_both_ways_and_pauses_beyond_the_lease() {
        let schedule = Schedule::generate(1, &plan());
        let probes: Vec<bool> = schedule
            .steps
            .iter()
            .filter_map(|s| match s.action {
                Action::Probe { after_recovery } => Some(after_recovery),
                _ => None,
            })
            .collect();
        assert!(
            probes.contains(&true) && probes.contains(&false),
            "{schedule}"
        );
        for step in &schedule.steps {
            if let Action::Pause { period, .. } = step.action {
                assert!(period > Duration::from_secs(1), "{schedule}");
            }
        }
    }

    #[test]
    fn no_faults_and_no_probes_make_an_empty_schedule() {
        let plan = Plan {
            faults: BTreeSet::new(),
            probes: false,
            ..plan()
        };
        assert!(Schedule::generate(5, &plan).steps.is_empty());
    }
}
