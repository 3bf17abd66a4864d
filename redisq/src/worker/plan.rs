//! What a worker will run, worked out before any thread starts: which threads serve
//! which queues, in which order, with what batch size and record keeping. Pure: no Redis.

use std::collections::{BTreeMap, HashMap};

use crate::consumer::ConsumerQueue;
use crate::error::{Error, Result};
use crate::registry::TaskDef;

/// Threads that serve the same queues in the same priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Group {
    /// The queues, highest priority first.
    pub(super) queues: Vec<ConsumerQueue>,
    pub(super) threads: usize,
}

impl Group {
    pub(super) fn names(&self) -> Vec<String> {
        self.queues.iter().map(|q| q.name.clone()).collect()
    }
}

/// The threads of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) groups: Vec<Group>,
    /// Every queue served, with the threads serving it.
    pub(super) queues: BTreeMap<String, usize>,
}

/// What the builder was told.
pub(super) struct Request<'a> {
    /// Exactly these queues, one thread group each; `None`: every registered task's.
    pub(super) queues: Option<&'a [String]>,
    /// Pools: queues in priority order and their threads.
    pub(super) pools: &'a [(Vec<String>, usize)],
    /// Threads per queue, overriding the tasks' `workers = N`.
    pub(super) threads: &'a HashMap<String, usize>,
}

/// The plan for `request` over the tasks `tasks` linked into this binary.
///
/// # Errors
/// [`Error::Config`] for an empty queue name or when there is no queue to serve.
pub(super) fn plan(tasks: &[&TaskDef], request: &Request<'_>) -> Result<Plan> {
    let mut defaults: BTreeMap<&str, usize> = BTreeMap::new();
    let mut batches: BTreeMap<&str, usize> = BTreeMap::new();
    let mut records: BTreeMap<&str, bool> = BTreeMap::new();
    let mut ordered: BTreeMap<&str, bool> = BTreeMap::new();
    for def in tasks {
        *ordered.entry(def.queue).or_insert(false) |= def.ordered;
        let threads = defaults.entry(def.queue).or_insert(0);
        *threads = (*threads).max(def.workers.max(1));
        let batch = batches.entry(def.queue).or_insert(0);
        *batch = (*batch).max(def.batch);
        *records.entry(def.queue).or_insert(false) |= def.store_result;
    }
    let names: Vec<String> = match request.queues {
        Some(queues) => queues.to_vec(),
        None if request.pools.is_empty() => defaults.keys().map(|q| (*q).to_owned()).collect(),
        None => Vec::new(),
    };
    let singles = names.into_iter().map(|name| {
        let threads = request
            .threads
            .get(&name)
            .copied()
            .unwrap_or_else(|| defaults.get(name.as_str()).copied().unwrap_or(1));
        // An ordered queue has one consumer at a time: more threads would only wait.
        let ordered = ordered.get(name.as_str()).copied().unwrap_or(false);
        (vec![name], if ordered { threads.min(1) } else { threads })
    });
    let queue = |name: String| ConsumerQueue {
        batch: batches.get(name.as_str()).copied().unwrap_or(0),
        // A queue no task names by default may get any task: look.
        records: records.get(name.as_str()).copied().unwrap_or(true),
        ordered: ordered.get(name.as_str()).copied().unwrap_or(false),
        name,
    };
    let mut groups = Vec::new();
    let mut queues: BTreeMap<String, usize> = BTreeMap::new();
    for (names, threads) in singles.chain(request.pools.iter().cloned()) {
        if threads == 0 || names.is_empty() {
            continue;
        }
        for name in &names {
            if name.is_empty() {
                return Err(Error::Config("queue name must not be empty".to_owned()));
            }
            *queues.entry(name.clone()).or_insert(0) += threads;
        }
        groups.push(Group {
            queues: names.into_iter().map(queue).collect(),
            threads,
        });
    }
    if queues.is_empty() {
        return Err(Error::Config(
            "no queue to serve: no #[fifo] task is linked into this binary and no queue was named"
                .to_owned(),
        ));
    }
    Ok(Plan { groups, queues })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{Args, CallResult};

    fn call(_: Args<'_>) -> CallResult {
        Ok(String::new())
    }

    const MAIL: TaskDef = TaskDef::new("m::mail", "mail", &[], call).workers(3);
    const MAIL_FAST: TaskDef = TaskDef::new("m::fast", "mail", &[], call).no_store();
    const POINTS: TaskDef = TaskDef::new("m::points", "points", &["p"], call)
        .batch(500)
        .no_store();

    fn request<'a>(
        queues: Option<&'a [String]>,
        pools: &'a [(Vec<String>, usize)],
        threads: &'a HashMap<String, usize>,
    ) -> Request<'a> {
        Request {
            queues,
            pools,
            threads,
        }
    }

    #[test]
    fn an_ordered_queue_gets_one_thread_a_worker() {
        const LEDGER: TaskDef = TaskDef::new("m::ledger", "ledger", &[], call)
            .workers(4)
            .ordered();
        let threads = HashMap::from([("ledger".to_owned(), 3)]);
        for threads in [HashMap::new(), threads] {
            let plan = plan(&[&LEDGER], &request(None, &[], &threads)).expect("plan");
            assert_eq!(plan.queues, BTreeMap::from([("ledger".to_owned(), 1)]));
            assert!(plan.groups[0].queues[0].ordered);
        }
    }

    #[test]
    fn every_registered_queue_with_its_largest_thread_count() {
        let threads = HashMap::new();
        let plan =
            plan(&[&MAIL, &MAIL_FAST, &POINTS], &request(None, &[], &threads)).expect("plan");
        assert_eq!(
            plan.queues,
            BTreeMap::from([("mail".to_owned(), 3), ("points".to_owned(), 1)])
        );
        let points = &plan.groups[1].queues[0];
        assert_eq!((points.batch, points.records), (500, false));
        assert!(
            plan.groups[0].queues[0].records,
            "one task of `mail` keeps records"
        );
    }

    #[test]
    fn named_queues_pools_and_overrides() {
        let threads = HashMap::from([("mail".to_owned(), 0), ("other".to_owned(), 2)]);
        let named = ["mail".to_owned(), "other".to_owned()];
        let pools = [(vec!["a".to_owned(), "b".to_owned()], 4)];
        let plan = plan(&[&MAIL], &request(Some(&named), &pools, &threads)).expect("plan");
        assert_eq!(plan.groups.len(), 2, "zero threads leaves `mail` unserved");
        assert_eq!(plan.groups[1].names(), ["a", "b"]);
        assert!(
            plan.groups[0].queues[0].records,
            "an unknown queue may get any task"
        );
        assert_eq!(plan.queues.get("a"), Some(&4));
    }

    #[test]
    fn nothing_to_serve_and_empty_names_are_errors() {
        let threads = HashMap::new();
        assert!(matches!(
            plan(&[], &request(None, &[], &threads)),
            Err(Error::Config(_))
        ));
        let empty = [String::new()];
        assert!(matches!(
            plan(&[], &request(Some(&empty), &[], &threads)),
            Err(Error::Config(_))
        ));
    }
}
