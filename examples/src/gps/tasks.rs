//! The four queues and their batch tasks, and how a task body finds its database.
//!
//! Each task is ordered by the point's `id` (the track or device id, `key = "id"`): the
//! points of one track are stored one batch at a time, in the order they were accepted,
//! however many workers and processes take from the queue, and through a worker's crash.
//!
//! A `#[fifo]` function takes no context, so each body looks its [`Database`] up by the
//! namespace of the running task ([`redisq::TaskContext::current`]) in a process-wide
//! registry that [`serve`](super::serve) fills at start-up ([`register`]): servers with
//! different namespaces in one process (the tests) each write to their own database
//! schema. The library sets that context on worker threads and for an inline run in a
//! request when Redis is unreachable (`enqueue_or_run` → `Dispatch::RanInline`), so both
//! paths run the same body and the same `INSERT`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use redisq::{fifo, Dispatch, RedisQueueBackend, TaskId};

use super::db::{Database, Table};
use super::points::Point;

/// The queues, in the order one worker pool serves them: a later queue waits while an
/// earlier one has points.
pub const QUEUES: [&str; 4] = [
    insert_live::QUEUE,
    insert_upload::QUEUE,
    insert_scoring::QUEUE,
    insert_flymaster::QUEUE,
];

/// Points per batch task call: the `batch = 1000` of the attributes below (a literal there).
pub const BATCH: usize = 1000;

/// Stores a batch of live points (queue `live_points`, priority 1).
#[fifo(
    queue = "live_points",
    name = "gps::insert_live",
    batch = 1000,
    key = "id",
    retries = 10,
    store_result = false,
    fallback = "inline"
)]
pub fn insert_live(points: Vec<Point>) -> Result<u64, String> {
    store(Table::LiveTrackPoints, &points)
}

/// Stores a batch of uploaded track points (queue `upload_points`, priority 2).
#[fifo(
    queue = "upload_points",
    name = "gps::insert_upload",
    batch = 1000,
    key = "id",
    retries = 10,
    store_result = false,
    fallback = "inline"
)]
pub fn insert_upload(points: Vec<Point>) -> Result<u64, String> {
    store(Table::UploadedTrackPoints, &points)
}

/// Stores a batch of scoring points (queue `scoring_points`, priority 2).
#[fifo(
    queue = "scoring_points",
    name = "gps::insert_scoring",
    batch = 1000,
    key = "id",
    retries = 10,
    store_result = false,
    fallback = "inline"
)]
pub fn insert_scoring(points: Vec<Point>) -> Result<u64, String> {
    store(Table::ScoringTracks, &points)
}

/// Stores a batch of Flymaster device points (queue `flymaster_points`, priority 3).
#[fifo(
    queue = "flymaster_points",
    name = "gps::insert_flymaster",
    batch = 1000,
    key = "id",
    retries = 10,
    store_result = false,
    fallback = "inline"
)]
pub fn insert_flymaster(points: Vec<Point>) -> Result<u64, String> {
    store(Table::Flymaster, &points)
}

/// A kind of feed: its endpoint, queue and table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `POST /live` → `live_points` → `live_track_points`.
    Live,
    /// `POST /upload` → `upload_points` → `uploaded_track_points`.
    Upload,
    /// `POST /scoring` → `scoring_points` → `scoring_tracks`.
    Scoring,
    /// `POST /flymaster` → `flymaster_points` → `flymaster`.
    Flymaster,
}

impl Kind {
    /// Every kind, in priority order.
    pub const ALL: [Kind; 4] = [Kind::Live, Kind::Upload, Kind::Scoring, Kind::Flymaster];

    /// The endpoint's path, e.g. `/live`.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Kind::Live => "/live",
            Kind::Upload => "/upload",
            Kind::Scoring => "/scoring",
            Kind::Flymaster => "/flymaster",
        }
    }

    /// The kind whose endpoint is `name` (`live`, `/live`, …).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Kind> {
        let name = name.trim_start_matches('/');
        Kind::ALL.into_iter().find(|k| &k.path()[1..] == name)
    }

    /// Its queue.
    #[must_use]
    pub fn queue(self) -> &'static str {
        match self {
            Kind::Live => insert_live::QUEUE,
            Kind::Upload => insert_upload::QUEUE,
            Kind::Scoring => insert_scoring::QUEUE,
            Kind::Flymaster => insert_flymaster::QUEUE,
        }
    }

    /// Its table.
    #[must_use]
    pub fn table(self) -> Table {
        match self {
            Kind::Live => Table::LiveTrackPoints,
            Kind::Upload => Table::UploadedTrackPoints,
            Kind::Scoring => Table::ScoringTracks,
            Kind::Flymaster => Table::Flymaster,
        }
    }
}

/// What became of a request's points: queued (their task ids), or, Redis being
/// unreachable, stored inline (the rows inserted, or the database's error).
pub type Outcome = Dispatch<Result<u64, String>, Vec<TaskId>>;

/// Queues `points` on `kind`'s queue in one round trip; when Redis is unreachable, stores
/// them in the namespace's database here and now instead. Blocks: call it from `spawn_blocking`.
///
/// A reply lost after the push counts as unreachable, so the points may then be both
/// queued and stored: the insert ignores what is already there.
///
/// # Errors
/// Redis errors other than unavailability (a full Redis, say): nothing was queued nor
/// stored.
pub fn dispatch(
    kind: Kind,
    backend: &RedisQueueBackend,
    points: Vec<Point>,
) -> redisq::Result<Outcome> {
    match kind {
        Kind::Live => insert_live::enqueue_or_run(backend, points),
        Kind::Upload => insert_upload::enqueue_or_run(backend, points),
        Kind::Scoring => insert_scoring::enqueue_or_run(backend, points),
        Kind::Flymaster => insert_flymaster::enqueue_or_run(backend, points),
    }
}

/// Databases by redisq namespace, for the task bodies running on worker threads.
static DATABASES: LazyLock<Mutex<HashMap<String, Arc<Database>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Makes `db` the database of the tasks of `namespace` run by this process's workers,
/// until the returned guard drops.
#[must_use = "the database is unregistered when the guard drops"]
pub fn register(namespace: &str, db: Database) -> Registration {
    let db = Arc::new(db);
    databases().insert(namespace.to_owned(), db.clone());
    Registration {
        namespace: namespace.to_owned(),
        db,
    }
}

/// Keeps a database registered; removes it when dropped (unless replaced since).
#[derive(Debug)]
pub struct Registration {
    namespace: String,
    db: Arc<Database>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut databases = databases();
        if databases
            .get(&self.namespace)
            .is_some_and(|db| Arc::ptr_eq(db, &self.db))
        {
            databases.remove(&self.namespace);
        }
    }
}

fn databases() -> std::sync::MutexGuard<'static, HashMap<String, Arc<Database>>> {
    DATABASES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The database registered for the namespace of the task running on this thread.
fn database() -> Result<Database, String> {
    let task = redisq::TaskContext::current()
        .ok_or("no database: not run by a worker nor by `dispatch`")?;
    databases()
        .get(&task.namespace)
        .map(|db| Database::clone(db))
        .ok_or_else(|| {
            format!(
                "no database is registered for namespace `{}` in this process",
                task.namespace
            )
        })
}

/// The body of the four tasks: the batch into its table.
fn store(table: Table, points: &[Point]) -> Result<u64, String> {
    let db = database()?;
    let inserted = db.store(table, points).map_err(|e| {
        format!(
            "storing {} point(s) into {}: {e}",
            points.len(),
            table.name()
        )
    })?;
    log::debug!(
        "stored {inserted} new of {} point(s) into {}",
        points.len(),
        db.qualified(table)
    );
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_endpoints_to_queues_and_tables() {
        assert_eq!(
            QUEUES,
            [
                "live_points",
                "upload_points",
                "scoring_points",
                "flymaster_points"
            ]
        );
        assert_eq!(Kind::ALL.map(Kind::queue), QUEUES);
        assert_eq!(Kind::from_name("/flymaster"), Some(Kind::Flymaster));
        assert_eq!(Kind::from_name("upload"), Some(Kind::Upload));
        assert_eq!(Kind::from_name("nope"), None);
        assert_eq!(Kind::Scoring.table().name(), "scoring_tracks");
    }

    #[test]
    fn a_body_without_a_database_fails_instead_of_losing_points() {
        assert!(insert_live::run(Vec::new()).is_err());
    }
}
