//! Code shared by the integration tests in `tests/` and the worker binaries in `src/bin/`
//! that the crash tests run as child processes, and the chaos harness ([`chaos`]).

pub mod chaos;

pub mod crash {
    //! The task of the crash test: it records each run in Redis, so that a test can count
    //! which tasks ran and how often, across worker processes that it kills.

    use std::cell::RefCell;

    use redisq::fifo;

    thread_local! {
        static CON: RefCell<Option<redisq_test_support::Raw>> = const { RefCell::new(None) };
    }

    /// The set of task numbers that ran, for namespace `ns` (in one cluster slot with
    /// [`runs_key`], as one transaction writes both).
    pub fn done_key(ns: &str) -> String {
        format!("{ns}:{{effects}}:done")
    }

    /// The count of runs (duplicates included), for namespace `ns`.
    pub fn runs_key(ns: &str) -> String {
        format!("{ns}:{{effects}}:runs")
    }

    /// Runs `f` on this thread's connection to the shared Redis server (made on first use,
    /// dropped after an error).
    fn with_con<T>(
        f: impl FnOnce(&mut redisq_test_support::Raw) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        CON.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(
                    redisq_test_support::Raw::open(&redisq_test_support::redis_url())
                        .map_err(|e| e.to_string())?,
                );
            }
            let Some(con) = slot.as_mut() else {
                return Err("no connection".to_owned());
            };
            f(con).map_err(|e| {
                *slot = None;
                e.to_string()
            })
        })
    }

    /// Records one run of task `n` atomically (`SADD` and `INCR` in one `MULTI`), after a
    /// millisecond of pretend work, so that a kill lands mid-processing.
    #[fifo(queue = "crash", name = "crash.record")]
    pub fn record(ns: String, n: u64) -> Result<(), String> {
        std::thread::sleep(std::time::Duration::from_millis(1));
        with_con(|con| {
            redis::pipe()
                .atomic()
                .cmd("SADD")
                .arg(done_key(&ns))
                .arg(n)
                .ignore()
                .cmd("INCR")
                .arg(runs_key(&ns))
                .ignore()
                .query(con)
        })
    }

    /// The list of tags in the order their `mark` tasks ran, for namespace `ns`.
    pub fn order_key(ns: &str) -> String {
        format!("{ns}:effects:order")
    }

    /// The key whose existence lets `hold` tasks return, for namespace `ns`.
    pub fn release_key(ns: &str) -> String {
        format!("{ns}:effects:release")
    }

    /// Appends `event` to the order list of namespace `ns`.
    fn note(ns: &str, event: String) -> Result<(), String> {
        with_con(|con| {
            redis::cmd("RPUSH")
                .arg(order_key(ns))
                .arg(event)
                .query::<()>(con)
        })
    }

    /// Waits (up to a minute) for the release key of namespace `ns`.
    fn wait_release(ns: &str) -> Result<(), String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if with_con(|con| redis::cmd("EXISTS").arg(release_key(ns)).query::<bool>(con))? {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
    }

    /// Appends `tag` to the order list; with `hold`, first waits (up to a minute) for the
    /// release key.
    #[fifo(queue = "procs", name = "crash.mark")]
    pub fn mark(ns: String, tag: String, hold: bool) -> Result<(), String> {
        note(&ns, format!("start:{tag}"))?;
        if hold {
            wait_release(&ns)?;
        }
        note(&ns, format!("done:{tag}"))
    }

    /// A batch of tags: records the start of each, waits (up to a minute) for the release
    /// key, then records each done.
    #[fifo(queue = "procs-batch", name = "crash.hold_batch", batch = 10)]
    pub fn hold_batch(items: Vec<(String, String)>) -> Result<(), String> {
        let Some(ns) = items.first().map(|(ns, _)| ns.clone()) else {
            return Ok(());
        };
        for (_, tag) in &items {
            note(&ns, format!("start:{tag}"))?;
        }
        wait_release(&ns)?;
        for (_, tag) in &items {
            note(&ns, format!("done:{tag}"))?;
        }
        Ok(())
    }

    /// Appends `start:<key>:<tag>:<pid>` to the order list; with `hold`, waits (up to a
    /// minute) for the release key; then `done:<key>:<tag>:<pid>`. Tasks of one key run
    /// one at a time, in order.
    #[fifo(queue = "procs-keyed", name = "crash.keyed", key = "key")]
    pub fn keyed(ns: String, key: String, tag: String, hold: bool) -> Result<(), String> {
        let pid = std::process::id();
        note(&ns, format!("start:{key}:{tag}:{pid}"))?;
        if hold {
            wait_release(&ns)?;
        }
        note(&ns, format!("done:{key}:{tag}:{pid}"))
    }

    /// As [`keyed`], on an ordered queue (one consumer at a time), its key `ordered`.
    #[fifo(queue = "procs-ordered", name = "crash.ordered", ordered = true)]
    pub fn ordered(ns: String, tag: String, hold: bool) -> Result<(), String> {
        let pid = std::process::id();
        note(&ns, format!("start:ordered:{tag}:{pid}"))?;
        if hold {
            wait_release(&ns)?;
        }
        note(&ns, format!("done:ordered:{tag}:{pid}"))
    }

    /// Counts its run, then kills its process (a poison pill: a task that aborts, runs out
    /// of memory or overflows its stack).
    #[fifo(queue = "procs", name = "crash.abort")]
    pub fn abort(ns: String) -> Result<(), String> {
        note(&ns, "start:abort".to_owned())?;
        std::process::abort();
    }
}
