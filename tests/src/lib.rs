//! Code shared by the integration tests in `tests/` and the worker binaries in `src/bin/`
//! that the crash tests run as child processes, and the chaos harness ([`chaos`]).

pub mod chaos;

pub mod crash {
    //! The task of the crash test: it records each run in Redis, so that a test can count
    //! which tasks ran and how often, across worker processes that it kills.

    use std::cell::RefCell;

    use redisq::fifo;

    thread_local! {
        static CON: RefCell<Option<redis::Connection>> = const { RefCell::new(None) };
    }

    /// The set of task numbers that ran, for namespace `ns`.
    pub fn done_key(ns: &str) -> String {
        format!("{ns}:effects:done")
    }

    /// The count of runs (duplicates included), for namespace `ns`.
    pub fn runs_key(ns: &str) -> String {
        format!("{ns}:effects:runs")
    }

    /// Records one run of task `n` atomically (`SADD` and `INCR` in one `MULTI`), after a
    /// millisecond of pretend work, so that a kill lands mid-processing.
    #[fifo(queue = "crash", name = "crash.record")]
    pub fn record(ns: String, n: u64) -> Result<(), String> {
        std::thread::sleep(std::time::Duration::from_millis(1));
        CON.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                let client = redis::Client::open(redisq_test_support::redis_url())
                    .map_err(|e| e.to_string())?;
                *slot = Some(client.get_connection().map_err(|e| e.to_string())?);
            }
            let Some(con) = slot.as_mut() else {
                return Err("no connection".to_owned());
            };
            let result: redis::RedisResult<()> = redis::pipe()
                .atomic()
                .cmd("SADD")
                .arg(done_key(&ns))
                .arg(n)
                .ignore()
                .cmd("INCR")
                .arg(runs_key(&ns))
                .ignore()
                .query(con);
            result.map_err(|e| {
                *slot = None;
                e.to_string()
            })
        })
    }
}
