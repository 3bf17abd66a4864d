//! The checker on histories made by hand, among them histories that must fail.

use redisq::TaskStatus;

use super::{check, Check, Checks, Report};
use crate::chaos::history::{
    Enqueue, Event, Execution, Fault, FaultKind, History, KeyInfo, Outcome, Probe, Record,
    RegistryEntry, Sample, Shutdown, Via,
};
use crate::chaos::tasks::Kind;

const LEASE: u64 = 1_000_000;

/// A history under construction: times in µs from 1,000,000,000.
struct Make(History);

fn id(seq: u64) -> String {
    format!("id{seq}")
}

impl Make {
    fn new() -> Make {
        Make(History {
            seed: 7,
            lease_us: LEASE,
            drained: true,
            stopped_us: T + 100_000_000,
            ..History::default()
        })
    }

    /// Enqueues `seq` at `t`, acknowledged 100 µs later.
    fn enqueue(mut self, seq: u64, kind: Kind, t: u64, outcome: Outcome) -> Make {
        self.0.enqueues.push(Enqueue {
            seq,
            kind,
            key: kind.stream().map(|_| "k".to_owned()),
            via: Via::Direct,
            sent_us: T + t,
            done_us: T + t + 100,
            outcome,
            id: (outcome == Outcome::Acked).then(|| id(seq)),
            error: (outcome != Outcome::Acked).then(|| "boom".to_owned()),
        });
        self
    }

    /// A run of `seq`'s `attempt` by `pid` from `t` to `t + 1000`, ending with `end`
    /// (`None`: killed mid-run).
    fn run(
        mut self,
        seq: u64,
        kind: Kind,
        attempt: u32,
        pid: u32,
        t: u64,
        end: Option<Event>,
    ) -> Make {
        let line = |at: u64, event: Event| Execution {
            seq,
            kind,
            key: kind.stream().map(|_| "k".to_owned()),
            id: id(seq),
            queue: kind.queue().to_owned(),
            attempt,
            pid,
            at_us: T + at,
            event,
        };
        self.0.executions.push(line(t, Event::Start));
        if let Some(end) = end {
            self.0.executions.push(line(t + 1000, end));
        }
        self
    }

    /// The record after the run.
    fn record(mut self, seq: u64, status: TaskStatus, attempts: u32) -> Make {
        self.0.records.push(Record {
            seq,
            id: id(seq),
            status: Some(status),
            attempts,
        });
        self
    }

    fn fault(mut self, kind: FaultKind, pid: Option<u32>, from: u64, to: u64) -> Make {
        self.0.faults.push(Fault {
            kind,
            pid,
            start_us: T + from,
            end_us: T + to,
            detail: String::new(),
            by_probe: false,
        });
        self
    }

    fn key(mut self, key: &str, kind: &str, ttl_ms: i64, len: u64) -> Make {
        self.0.keys.push(KeyInfo {
            key: key.to_owned(),
            kind: kind.to_owned(),
            ttl_ms,
            len,
            sample: Vec::new(),
        });
        self
    }

    /// A task of `kind` that ran once, cleanly, at `t`.
    fn clean(self, seq: u64, kind: Kind, t: u64) -> Make {
        self.enqueue(seq, kind, t, Outcome::Acked)
            .run(seq, kind, 1, 100, t + 10_000, Some(Event::Ok))
            .record(seq, TaskStatus::Done, 1)
    }

    fn check(&self) -> Report {
        check(&self.0, &Checks::all())
    }
}

const T: u64 = 1_000_000_000;

fn only(report: &Report, check: Check) -> Vec<String> {
    assert!(
        report.violations.iter().all(|v| v.check == check),
        "violations of other checks than {check}:\n{report}"
    );
    report.violations.iter().map(|v| v.what.clone()).collect()
}

#[test]
fn a_clean_run_passes() {
    let mut make = Make::new()
        .clean(1, Kind::Fifo, 0)
        .clean(2, Kind::Fifo, 50_000)
        .clean(3, Kind::Multi, 60_000)
        .enqueue(4, Kind::Flaky, 70_000, Outcome::Acked)
        .run(4, Kind::Flaky, 1, 100, 80_000, Some(Event::Err))
        .run(4, Kind::Flaky, 2, 101, 300_000, Some(Event::Ok))
        .record(4, TaskStatus::Done, 2)
        .enqueue(5, Kind::Doomed, 70_000, Outcome::Acked)
        .run(5, Kind::Doomed, 1, 100, 80_000, Some(Event::Err))
        .run(5, Kind::Doomed, 2, 100, 300_000, Some(Event::Err))
        .record(5, TaskStatus::Dead, 2)
        .enqueue(6, Kind::Multi, 80_000, Outcome::Unknown)
        .enqueue(7, Kind::Multi, 80_000, Outcome::Failed)
        .key("{chaos-multi}:dead", "zset", -1, 1)
        .key("{chaos-multi}:stats", "hash", -1, 5)
        .key("task:id1", "hash", 3_600_000, 9);
    make.0.dead_letters.push(id(5));
    let report = make.check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.enqueued(Outcome::Acked), 5);
}

#[test]
fn an_acknowledged_task_that_never_ran_is_lost() {
    let report = Make::new()
        .clean(1, Kind::Multi, 0)
        .enqueue(2, Kind::Multi, 10, Outcome::Acked)
        .record(2, TaskStatus::Queued, 0)
        .check();
    let lost: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.check == Check::Lost)
        .collect();
    assert_eq!(lost.len(), 1, "{report}");
    assert_eq!(lost[0].seqs, [2]);
    assert_eq!(lost[0].ids, ["id2"]);
    assert_eq!(report.summary.lost, 1);
    // Its record is wrong too.
    assert!(report
        .violations
        .iter()
        .any(|v| v.check == Check::Records && v.seqs == [2]));
}

#[test]
fn a_task_killed_mid_run_and_never_rerun_is_lost_even_if_unacknowledged() {
    let report = Make::new()
        .enqueue(1, Kind::Fifo, 0, Outcome::Unknown)
        .run(1, Kind::Fifo, 1, 100, 10_000, None)
        .fault(FaultKind::Kill, Some(100), 10_500, 20_000)
        .check();
    let lost = only(&report, Check::Lost);
    assert_eq!(lost.len(), 1, "{report}");
    assert!(
        lost[0].contains("never finished successfully"),
        "{}",
        lost[0]
    );
}

#[test]
fn phantoms_are_named() {
    let report = Make::new()
        .enqueue(1, Kind::Multi, 0, Outcome::Failed)
        .run(1, Kind::Multi, 1, 100, 10_000, Some(Event::Ok))
        .run(9, Kind::Multi, 1, 100, 10_000, Some(Event::Ok))
        .check();
    let found = only(&report, Check::Lost);
    assert_eq!(found.len(), 2, "{report}");
    assert!(found.iter().all(|w| w.starts_with("phantom")));
}

#[test]
fn a_duplicate_without_a_fault_is_a_violation() {
    let report = Make::new()
        .clean(1, Kind::Multi, 0)
        .run(1, Kind::Multi, 1, 200, 5_000_000, Some(Event::Ok))
        .check();
    let found = only(&report, Check::Duplicates);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(report.summary.duplicates_unexplained, 1);
    assert!(
        found[0].contains("pid 100") && found[0].contains("pid 200"),
        "{}",
        found[0]
    );
}

#[test]
fn a_duplicate_after_a_kill_of_its_process_is_explained() {
    let report = Make::new()
        .clean(1, Kind::Multi, 0)
        .run(1, Kind::Multi, 1, 200, 5_000_000, Some(Event::Ok))
        .fault(FaultKind::Kill, Some(100), 20_000, 500_000)
        .check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.duplicates_explained[&FaultKind::Kill], 1);
}

#[test]
fn a_kill_of_another_process_or_a_graceful_restart_explains_nothing() {
    let report = Make::new()
        .clean(1, Kind::Multi, 0)
        .run(1, Kind::Multi, 1, 200, 5_000_000, Some(Event::Ok))
        .fault(FaultKind::Kill, Some(300), 20_000, 500_000)
        .fault(FaultKind::Restart, Some(100), 20_000, 500_000)
        .check();
    assert_eq!(only(&report, Check::Duplicates).len(), 1, "{report}");
}

#[test]
fn a_retry_is_not_a_duplicate() {
    let report = Make::new()
        .enqueue(1, Kind::Flaky, 0, Outcome::Acked)
        .run(1, Kind::Flaky, 1, 100, 10_000, Some(Event::Err))
        .run(1, Kind::Flaky, 2, 100, 200_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 2)
        .check();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn a_task_overtaken_without_a_fault_breaks_fifo() {
    // 1 is acknowledged before 2 is sent, yet 2 starts first.
    let report = Make::new()
        .enqueue(1, Kind::Fifo, 0, Outcome::Acked)
        .run(1, Kind::Fifo, 1, 100, 30_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 1)
        .clean(2, Kind::Fifo, 1_000)
        .clean(3, Kind::Fifo, 2_000)
        .check();
    let found = report
        .violations
        .iter()
        .filter(|v| v.check == Check::Fifo)
        .collect::<Vec<_>>();
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0].seqs, [1, 2]);
    assert!(report.violations.iter().all(|v| v.check == Check::Fifo));
}

#[test]
fn a_task_overtaken_during_a_fault_is_excused() {
    let report = Make::new()
        .enqueue(1, Kind::Fifo, 0, Outcome::Acked)
        .run(1, Kind::Fifo, 1, 100, 30_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 1)
        .clean(2, Kind::Fifo, 1_000)
        .fault(FaultKind::Pause, Some(100), 5_000, 6_000)
        .check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.fifo_excused, 1);
}

#[test]
fn tasks_sent_concurrently_may_start_in_either_order() {
    // 2 was sent before 1's acknowledgement came back.
    let report = Make::new()
        .enqueue(1, Kind::Fifo, 0, Outcome::Acked)
        .run(1, Kind::Fifo, 1, 100, 30_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 1)
        .clean(2, Kind::Fifo, 50)
        .check();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn wrong_records_and_dead_letters_are_named() {
    let mut make = Make::new()
        .clean(1, Kind::Multi, 0)
        .enqueue(2, Kind::Flaky, 0, Outcome::Acked)
        .run(2, Kind::Flaky, 1, 100, 10_000, Some(Event::Err))
        .run(2, Kind::Flaky, 2, 100, 200_000, Some(Event::Ok))
        .record(2, TaskStatus::Done, 1)
        .enqueue(3, Kind::Doomed, 0, Outcome::Acked)
        .run(3, Kind::Doomed, 1, 100, 10_000, Some(Event::Err))
        .run(3, Kind::Doomed, 2, 100, 200_000, Some(Event::Err))
        .record(3, TaskStatus::Failed, 2);
    make.0.dead_letters.push(id(1));
    let report = make.check();
    let found = only(&report, Check::Records);
    assert_eq!(found.len(), 4, "{report}");
    assert!(found.iter().any(|w| w.contains("expected Done after 2")));
    assert!(found.iter().any(|w| w.contains("expected Dead after 2")));
    assert!(found.iter().any(|w| w.contains("not meant to die")));
    assert!(found.iter().any(|w| w.contains("has no dead letter")));
}

fn probe(queue: &str, after_recovery: bool, lane: u64, samples: &[(u64, u64)]) -> Probe {
    Probe {
        queue: queue.to_owned(),
        at_us: T + 1_000_000,
        resumed_us: T + 1_100_000,
        after_recovery,
        single_consumer: queue == Kind::Fifo.queue(),
        lane_before: lane,
        lane_after: lane,
        samples: samples
            .iter()
            .map(|(seq, position)| Sample {
                seq: *seq,
                id: id(*seq),
                status: Some(TaskStatus::Queued),
                position: Some(*position),
            })
            .collect(),
    }
}

/// Three FIFO tasks, queued at a probe at 1 s, then taken in order 1, 2, 3.
fn three_queued() -> Make {
    let mut make = Make::new();
    for seq in 1..=3 {
        make = make
            .enqueue(seq, Kind::Fifo, seq * 1000, Outcome::Acked)
            .run(
                seq,
                Kind::Fifo,
                1,
                100,
                1_200_000 + seq * 10_000,
                Some(Event::Ok),
            )
            .record(seq, TaskStatus::Done, 1);
    }
    make
}

#[test]
fn exact_positions_pass() {
    let mut make = three_queued();
    make.0.probes.push(probe(
        Kind::Fifo.queue(),
        true,
        3,
        &[(1, 0), (2, 1), (3, 2)],
    ));
    let report = make.check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.positions_sampled, 3);
}

#[test]
fn wrong_positions_are_named() {
    let mut make = three_queued();
    // Two at 0, one past the end; then after a recovery, positions that are off.
    make.0.probes.push(probe(
        Kind::Multi.queue(),
        false,
        3,
        &[(1, 0), (2, 0), (3, 3)],
    ));
    make.0.probes.push(probe(
        Kind::Fifo.queue(),
        true,
        3,
        &[(1, 1), (2, 2), (3, 0)],
    ));
    let report = make.check();
    let found = only(&report, Check::Positions);
    assert!(
        found.iter().any(|w| w.contains("2 tasks at position 0")),
        "{report}"
    );
    assert!(
        found
            .iter()
            .any(|w| w.contains("only 3 task(s) were queued")),
        "{report}"
    );
    assert!(
        found
            .iter()
            .any(|w| w.contains("but 0 task(s) were taken before it")),
        "{report}"
    );
    assert!(
        found.iter().any(|w| w.contains("was taken after position")),
        "{report}"
    );
}

#[test]
fn a_probe_during_which_something_moved_is_inconclusive() {
    let mut make = three_queued();
    let mut moved = probe(Kind::Fifo.queue(), true, 3, &[(1, 2), (2, 2)]);
    moved.lane_after = 2;
    make.0.probes.push(moved);
    let report = make.check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.probes_inconclusive, 1);
}

#[test]
fn leftover_and_unbounded_keys_are_named() {
    let mut make = Make::new()
        .clean(1, Kind::Multi, 0)
        .key("{chaos-multi}:claimed:w-1", "list", -1, 2)
        .key("{chaos-multi}:leases", "zset", -1, 1)
        .key("{chaos-multi}:latency", "list", -1, 1001)
        .key("task:id1", "hash", -1, 9)
        .key("stray", "string", -1, 1)
        .key("{chaos-multi}:signal", "list", -1, 3);
    make.0.registry.push(RegistryEntry {
        id: "w".to_owned(),
        pid: 100,
        last_beat_ms: T / 1000,
    });
    make.0.shutdowns.push(Shutdown {
        pid: 100,
        graceful: false,
    });
    let report = make.check();
    let found = only(&report, Check::Keys);
    assert_eq!(found.len(), 7, "{report}");
}

#[test]
fn switched_off_checks_do_not_run() {
    let make = Make::new().enqueue(1, Kind::Multi, 0, Outcome::Acked);
    let mut checks = Checks::all();
    checks.0.remove(&Check::Lost);
    checks.0.remove(&Check::Records);
    let report = check(&make.0, &checks);
    assert!(report.is_ok(), "{report}");
    assert!(report.to_string().contains("[lost] skipped"));
}

#[test]
fn a_dead_letter_of_a_task_whose_enqueue_reply_was_lost_is_known_by_its_run() {
    let mut make = Make::new()
        .enqueue(1, Kind::Doomed, 0, Outcome::Unknown)
        .run(1, Kind::Doomed, 1, 100, 10_000, Some(Event::Err))
        .run(1, Kind::Doomed, 2, 100, 200_000, Some(Event::Err))
        .record(1, TaskStatus::Dead, 2);
    make.0.dead_letters.push(id(1));
    let report = make.check();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn a_paused_process_that_reruns_a_task_taken_over_meanwhile_is_not_fenced() {
    // 100 is paused holding task 1; 200 recovers and runs it; 100 resumes and runs it too.
    let report = Make::new()
        .enqueue(1, Kind::Multi, 0, Outcome::Acked)
        .run(1, Kind::Multi, 1, 200, 2_000_000, Some(Event::Ok))
        .run(1, Kind::Multi, 1, 100, 3_100_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 1)
        .fault(FaultKind::Pause, Some(100), 100_000, 3_000_000)
        .check();
    let found = only(&report, Check::Duplicates);
    assert_eq!(found.len(), 1, "{report}");
    assert!(found[0].contains("was paused"), "{}", found[0]);
}

#[test]
fn a_rerun_after_a_pause_of_the_first_runner_is_explained() {
    let report = Make::new()
        .clean(1, Kind::Multi, 0)
        .run(1, Kind::Multi, 1, 200, 2_000_000, Some(Event::Ok))
        .fault(FaultKind::Pause, Some(100), 10_500, 3_000_000)
        .check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.duplicates_explained[&FaultKind::Pause], 1);
}

#[test]
fn a_lease_left_behind_names_the_process_that_held_it() {
    use crate::chaos::history::{End, WorkerProcess};
    let mut make = Make::new().clean(1, Kind::Multi, 0);
    make.0.keys.push(KeyInfo {
        key: "{chaos-multi}:leases".to_owned(),
        kind: "zset".to_owned(),
        ttl_ms: -1,
        len: 1,
        sample: vec!["w1-2".to_owned()],
    });
    make.0.processes.push(WorkerProcess {
        slot: 1,
        pid: 42,
        worker_id: "w1".to_owned(),
        started_us: T,
        ended: Some((T + 5, End::Stopped)),
    });
    let report = make.check();
    let found = only(&report, Check::Keys);
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0].contains("consumer w1-2 of pid 42 (slot 1), stopped gracefully"),
        "{}",
        found[0]
    );
}

impl Make {
    /// Puts `seq` (its enqueue and its runs so far) in the stream of ordering key `key`.
    fn in_key(mut self, seq: u64, key: &str) -> Make {
        for e in self.0.enqueues.iter_mut().filter(|e| e.seq == seq) {
            e.key = Some(key.to_owned());
        }
        for e in self.0.executions.iter_mut().filter(|e| e.seq == seq) {
            e.key = Some(key.to_owned());
        }
        self
    }

    /// The successful finish of `seq`'s first attempt by `pid` at `t` (a run started before).
    fn finish(mut self, seq: u64, kind: Kind, pid: u32, t: u64) -> Make {
        self.0.executions.push(Execution {
            seq,
            kind,
            key: Some("k".to_owned()),
            id: id(seq),
            queue: kind.queue().to_owned(),
            attempt: 1,
            pid,
            at_us: T + t,
            event: Event::Ok,
        });
        self
    }

    /// A task of `kind` whose first attempt fails at `t` and whose retry runs at `retry`.
    fn retried(self, seq: u64, kind: Kind, t: u64, retry: u64) -> Make {
        self.enqueue(seq, kind, t, Outcome::Acked)
            .run(seq, kind, 1, 100, t + 10_000, Some(Event::Err))
            .run(seq, kind, 2, 100, retry, Some(Event::Ok))
            .record(seq, TaskStatus::Done, 2)
    }
}

#[test]
fn streams_in_order_one_at_a_time_with_held_retries_pass() {
    // Key k: 1, then 2 (fails, retried at 100 ms), then 3 after the retry; key j runs
    // alongside; the ordered queue's 4 and 5 in order.
    let report = Make::new()
        .clean(1, Kind::Keyed, 0)
        .retried(2, Kind::Keyed, 1_000, 100_000)
        .clean(3, Kind::Keyed, 100_000)
        .clean(4, Kind::Keyed, 0)
        .in_key(4, "j")
        .clean(5, Kind::Keyed, 1_000)
        .in_key(5, "j")
        .clean(6, Kind::Ordered, 0)
        .retried(7, Kind::Ordered, 1_000, 50_000)
        .clean(8, Kind::Ordered, 60_000)
        .check();
    assert!(report.is_ok(), "{report}");
    let s = &report.summary;
    assert_eq!(
        (
            s.order_queue_checked,
            s.order_keyed_checked,
            s.order_keys,
            s.held_retries
        ),
        (3, 5, 2, 2),
        "{report}"
    );
    assert!(report.to_string().contains("order:      ordered 3 first starts checked (0 handovers), keyed 5 over 2 keys, 0 violations; held retries 2"), "{report}");
}

#[test]
fn a_task_that_first_starts_before_an_earlier_one_of_its_key_is_overtaking() {
    // 1 is acknowledged before 2 is sent, but 2 starts first; 3 of another key is free.
    let report = Make::new()
        .enqueue(1, Kind::Keyed, 0, Outcome::Acked)
        .run(1, Kind::Keyed, 1, 100, 50_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 1)
        .clean(2, Kind::Keyed, 1_000)
        .enqueue(3, Kind::Keyed, 2_000, Outcome::Acked)
        .run(3, Kind::Keyed, 1, 200, 5_000, Some(Event::Ok))
        .record(3, TaskStatus::Done, 1)
        .in_key(3, "j")
        .check();
    let found = only(&report, Check::Order);
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0].contains("key k: task 2") && found[0].contains("(overtaken)"),
        "{}",
        found[0]
    );
    assert_eq!(report.violations[0].seqs, [2, 1]);
    assert_eq!(report.violations[0].ids, ["id2", "id1"]);
}

#[test]
fn a_later_task_that_starts_while_a_retry_waits_overtakes_the_held_retry() {
    let report = Make::new()
        .retried(1, Kind::Ordered, 0, 200_000)
        .clean(2, Kind::Ordered, 1_000)
        .check();
    let found = only(&report, Check::Order);
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0].contains("ordered queue: task 2") && found[0].contains("(held retry overtaken)"),
        "{}",
        found[0]
    );
}

#[test]
fn a_later_task_that_starts_while_an_earlier_one_runs_is_not_one_at_a_time() {
    // 2 starts 500 µs into 1's run, on another process.
    let report = Make::new()
        .enqueue(1, Kind::Keyed, 0, Outcome::Acked)
        .run(1, Kind::Keyed, 1, 100, 10_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 1)
        .enqueue(2, Kind::Keyed, 1_000, Outcome::Acked)
        .run(2, Kind::Keyed, 1, 200, 10_500, Some(Event::Ok))
        .record(2, TaskStatus::Done, 1)
        .check();
    let found = only(&report, Check::Order);
    assert_eq!(found.len(), 1, "{report}");
    assert!(found[0].contains("(not one at a time)"), "{}", found[0]);
}

#[test]
fn an_earlier_task_whose_enqueue_reply_was_lost_may_come_later() {
    // 1's enqueue is unknown: it may have reached Redis after 2's.
    let report = Make::new()
        .enqueue(1, Kind::Keyed, 0, Outcome::Unknown)
        .run(1, Kind::Keyed, 1, 100, 50_000, Some(Event::Ok))
        .clean(2, Kind::Keyed, 1_000)
        .check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.order_keyed_checked, 2);
}

#[test]
fn a_rerun_after_a_pause_may_overlap_later_tasks_but_an_unfaulted_run_may_not() {
    // 100 starts 1 and is paused mid-run; 200 reruns 1, then 2 runs on 300 while 100 is
    // stopped; 100 finishes 1 once continued. Then 4 starts on 300 while 3 runs on 200,
    // which nothing explains.
    let report = Make::new()
        .enqueue(1, Kind::Keyed, 0, Outcome::Acked)
        .run(1, Kind::Keyed, 1, 100, 10_000, None)
        .run(1, Kind::Keyed, 1, 200, 2_000_000, Some(Event::Ok))
        .finish(1, Kind::Keyed, 100, 3_000_000)
        .record(1, TaskStatus::Done, 1)
        .fault(FaultKind::Pause, Some(100), 10_500, 2_990_000)
        .enqueue(2, Kind::Keyed, 1_000, Outcome::Acked)
        .run(2, Kind::Keyed, 1, 300, 2_100_000, Some(Event::Ok))
        .record(2, TaskStatus::Done, 1)
        .check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.summary.order_overlaps_excused, 1);

    // A duplicate of 3 on 200 overlapping 4's run on 300, with no fault.
    let report = Make::new()
        .clean(3, Kind::Keyed, 0)
        .clean(4, Kind::Keyed, 1_000)
        .run(3, Kind::Keyed, 1, 200, 11_500, Some(Event::Ok))
        .check();
    let found: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.check == Check::Order)
        .collect();
    assert_eq!(found.len(), 1, "{report}");
    assert!(found[0].what.contains("(overlap)"), "{}", found[0].what);
}

#[test]
fn the_control_kinds_are_checked_as_streams_and_named_so() {
    let report = Make::new()
        .enqueue(1, Kind::Unkeyed, 0, Outcome::Acked)
        .run(1, Kind::Unkeyed, 1, 100, 50_000, Some(Event::Ok))
        .record(1, TaskStatus::Done, 1)
        .clean(2, Kind::Unkeyed, 1_000)
        .check();
    let found = only(&report, Check::Order);
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0].contains("on a plain queue (control)"),
        "{}",
        found[0]
    );
    assert!(
        report.to_string().contains("CONTROL (plain queues)"),
        "{report}"
    );
}
