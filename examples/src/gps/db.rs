//! PostgreSQL: the connection pool, the tables (created at start-up, TimescaleDB
//! hypertables when the extension is available) and the batch insert.
//!
//! Everything here is synchronous (the `postgres` crate behind an `r2d2` pool): it runs on
//! redisq's worker threads, and on tokio's blocking threads (`spawn_blocking`) when a
//! request needs the database. A batch of points is written by one `INSERT … SELECT FROM
//! UNNEST(…) ON CONFLICT DO NOTHING` statement, so a point sent twice is stored once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2_postgres::postgres::{self, NoTls};
use r2d2_postgres::{r2d2, PostgresConnectionManager};

use super::points::Point;

/// A failure of the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// PostgreSQL answered with an error, or the connection failed.
    #[error("{}", with_causes(.0))]
    Postgres(#[from] postgres::Error),
    /// No connection could be had from the pool in time.
    #[error("no database connection: {0}")]
    Pool(#[from] r2d2::Error),
    /// The pool is being dropped.
    #[error("the database pool is closed")]
    Closed,
    /// The schema name is not a plain identifier.
    #[error("invalid schema name `{0}`: use letters, digits and `_`, not starting with a digit")]
    Schema(String),
}

/// An error and its causes on one line (`postgres::Error` itself says only "db error").
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text.replace('\n', "; ")
}

/// The four tables, one per kind of feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `live_track_points`: live tracking.
    LiveTrackPoints,
    /// `uploaded_track_points`: uploaded tracks.
    UploadedTrackPoints,
    /// `scoring_tracks`: tracks sent for scoring.
    ScoringTracks,
    /// `flymaster`: bulk uploads of Flymaster devices, keyed by device id.
    Flymaster,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 4] = [
        Table::LiveTrackPoints,
        Table::UploadedTrackPoints,
        Table::ScoringTracks,
        Table::Flymaster,
    ];

    /// The table's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Table::LiveTrackPoints => "live_track_points",
            Table::UploadedTrackPoints => "uploaded_track_points",
            Table::ScoringTracks => "scoring_tracks",
            Table::Flymaster => "flymaster",
        }
    }

    /// The column holding a point's id: `device_id` for `flymaster`, else `track_id`.
    #[must_use]
    pub fn id_column(self) -> &'static str {
        match self {
            Table::Flymaster => "device_id",
            _ => "track_id",
        }
    }
}

/// How the tables are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// TimescaleDB hypertables partitioned on `ts`.
    Hypertables,
    /// Plain PostgreSQL tables (the `timescaledb` extension is not available).
    PlainTables,
}

impl Storage {
    /// `timescaledb` or `postgresql`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Hypertables => "timescaledb",
            Storage::PlainTables => "postgresql",
        }
    }
}

/// A pool of connections to one database schema holding the four tables. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pool: Arc<PoolCloser>,
    schema: String,
    storage: Storage,
    chunk: usize,
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// Owns the pool. `postgres::Client` closes its connection with a `block_on` of its own
/// runtime when dropped, which panics on a tokio worker thread: when the last handle of the
/// pool goes away on one, the pool is dropped on a thread of its own instead.
#[derive(Debug)]
struct PoolCloser(Option<Pool>);

/// Logs the pool's connection failures with their causes.
#[derive(Debug)]
struct LogCauses;

impl r2d2::HandleError<postgres::Error> for LogCauses {
    fn handle_error(&self, error: postgres::Error) {
        log::error!("database connection: {}", with_causes(&error));
    }
}

impl PoolCloser {
    /// A connection from the pool (which is there until drop).
    fn get(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, DbError> {
        match &self.0 {
            Some(pool) => Ok(pool.get()?),
            None => Err(DbError::Closed),
        }
    }
}

impl Drop for PoolCloser {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("gps-db-close".to_owned())
                    .spawn(move || drop(pool));
            }
        }
    }
}

impl Database {
    /// Connects to `url` with a pool of at most `pool_size` connections, and creates the
    /// schema `schema` and the tables in it unless they exist. `chunk` is the most rows one
    /// `INSERT` writes (at least 1); larger sets are written in several, in one transaction.
    ///
    /// Blocks: call it from a thread that may block (not from async code).
    ///
    /// # Errors
    /// When the database cannot be reached in 5 s, or refuses the schema.
    pub fn connect(
        url: &str,
        schema: &str,
        pool_size: u32,
        chunk: usize,
    ) -> Result<Database, DbError> {
        if !is_identifier(schema) {
            return Err(DbError::Schema(schema.to_owned()));
        }
        let mut config: postgres::Config = url.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // One connection of its own first: it fails at once, with PostgreSQL's reason.
        let mut client = config.connect(NoTls)?;
        let storage = create_tables(&mut client, schema)?;
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .error_handler(Box::new(LogCauses))
            .build(PostgresConnectionManager::new(config, NoTls))?;
        Ok(Database {
            pool: Arc::new(PoolCloser(Some(pool))),
            schema: schema.to_owned(),
            storage,
            chunk: chunk.max(1),
        })
    }

    /// The schema holding the tables.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// How the tables are stored.
    #[must_use]
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// A connection of the pool.
    ///
    /// # Errors
    /// When none can be had within 5 s.
    pub fn client(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, DbError> {
        self.pool.get()
    }

    /// Inserts `points` into `table`, ignoring those whose (id, timestamp) is already
    /// there, and says how many rows were new. One statement per `chunk` points, all in one
    /// transaction: the points are stored all or none.
    ///
    /// The rows go in in key order: two workers inserting overlapping batches at once then
    /// take their row locks in the same order, and cannot deadlock.
    ///
    /// # Errors
    /// When the database fails; nothing is stored then.
    pub fn store(&self, table: Table, points: &[Point]) -> Result<u64, DbError> {
        if points.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "INSERT INTO {} ({}, ts, lat, lon, altitude) \
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[]) \
             ON CONFLICT ({}, ts) DO NOTHING",
            self.qualified(table),
            table.id_column(),
            table.id_column(),
        );
        let rows = in_key_order(points);
        let mut client = self.client()?;
        if rows.len() <= self.chunk {
            return Ok(insert(&mut *client, &sql, &rows)?);
        }
        let mut tx = client.transaction()?;
        let mut inserted = 0;
        for chunk in rows.chunks(self.chunk) {
            inserted += insert(&mut tx, &sql, chunk)?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    /// How many rows `table` holds.
    ///
    /// # Errors
    /// When the database fails.
    pub fn count(&self, table: Table) -> Result<u64, DbError> {
        let sql = format!("SELECT count(*) FROM {}", self.qualified(table));
        let row = self.client()?.query_one(sql.as_str(), &[])?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// How many rows of `table` have one of `ids`.
    ///
    /// # Errors
    /// When the database fails.
    pub fn count_ids(&self, table: Table, ids: &[String]) -> Result<u64, DbError> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {} = ANY($1)",
            self.qualified(table),
            table.id_column()
        );
        let row = self.client()?.query_one(sql.as_str(), &[&ids])?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Checks that the database answers; the round trip.
    ///
    /// # Errors
    /// When it does not.
    pub fn ping(&self) -> Result<Duration, DbError> {
        let mut client = self.client()?;
        let started = Instant::now();
        client.simple_query("SELECT 1")?;
        Ok(started.elapsed())
    }

    /// `"schema"."table"`.
    #[must_use]
    pub fn qualified(&self, table: Table) -> String {
        format!("\"{}\".\"{}\"", self.schema, table.name())
    }
}

/// `points` sorted by (id, timestamp), each key once.
fn in_key_order(points: &[Point]) -> Vec<&Point> {
    let mut rows: Vec<&Point> = points.iter().collect();
    rows.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.timestamp.cmp(&b.timestamp)));
    rows.dedup_by(|a, b| a.id == b.id && a.timestamp == b.timestamp);
    rows
}

fn insert<C: postgres::GenericClient>(
    client: &mut C,
    sql: &str,
    points: &[&Point],
) -> Result<u64, postgres::Error> {
    let ids: Vec<&str> = points.iter().map(|p| p.id.as_str()).collect();
    let times: Vec<_> = points.iter().map(|p| p.timestamp).collect();
    let lats: Vec<f64> = points.iter().map(|p| p.lat).collect();
    let lons: Vec<f64> = points.iter().map(|p| p.lon).collect();
    let altitudes: Vec<f64> = points.iter().map(|p| p.altitude).collect();
    client.execute(sql, &[&ids, &times, &lats, &lons, &altitudes])
}

/// Whether `name` is a plain SQL identifier (safe to quote into statements).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

/// Creates the schema, the tables and their indexes unless they exist, as hypertables when
/// TimescaleDB is available; says which. Serialized across servers by an advisory lock, so
/// that several starting at once do not race on `CREATE … IF NOT EXISTS`.
fn create_tables(client: &mut postgres::Client, schema: &str) -> Result<Storage, DbError> {
    let storage = if timescaledb(client) {
        Storage::Hypertables
    } else {
        Storage::PlainTables
    };
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('redisq-gps-schema'))",
        &[],
    )?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
    for table in Table::ALL {
        let name = table.name();
        let id = table.id_column();
        let qualified = format!("\"{schema}\".\"{name}\"");
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {qualified} (
                 {id} text NOT NULL,
                 ts timestamptz NOT NULL,
                 lat double precision NOT NULL,
                 lon double precision NOT NULL,
                 altitude double precision NOT NULL,
                 inserted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                 PRIMARY KEY ({id}, ts)
             );
             CREATE INDEX IF NOT EXISTS \"{name}_ts_idx\" ON {qualified} (ts DESC);"
        ))?;
        if storage == Storage::Hypertables {
            tx.execute(
                "SELECT create_hypertable($1::text::regclass, 'ts', if_not_exists => TRUE, \
                 migrate_data => TRUE, create_default_indexes => FALSE)",
                &[&qualified],
            )?;
        }
    }
    tx.commit()?;
    Ok(storage)
}

/// Whether the `timescaledb` extension is (or can be) installed in this database.
fn timescaledb(client: &mut postgres::Client) -> bool {
    let installed = |client: &mut postgres::Client| {
        client
            .query_opt(
                "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
                &[],
            )
            .ok()
            .flatten()
            .is_some()
    };
    if installed(client) {
        return true;
    }
    let available = client
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'",
            &[],
        )
        .ok()
        .flatten()
        .is_some();
    if !available {
        return false;
    }
    match client.batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb") {
        Ok(()) => true,
        Err(err) => {
            log::warn!("the timescaledb extension is available but could not be created: {err}");
            installed(client)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_in_key_order_once() {
        let at =
            |s: i64| chrono::DateTime::from_timestamp(1_750_000_000 + s, 0).unwrap_or_default();
        let point = |id: &str, s: i64| Point {
            id: id.to_owned(),
            timestamp: at(s),
            lat: 0.0,
            lon: 0.0,
            altitude: s as f64,
        };
        let points = [
            point("b", 1),
            point("a", 2),
            point("b", 0),
            point("a", 2),
            point("a", 1),
        ];
        let keys: Vec<(&str, i64)> = in_key_order(&points)
            .iter()
            .map(|p| (p.id.as_str(), p.timestamp.timestamp() - 1_750_000_000))
            .collect();
        assert_eq!(keys, [("a", 1), ("a", 2), ("b", 0), ("b", 1)]);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_identifier("public"));
        assert!(is_identifier("gps_test_0f3a"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier("a\"; DROP TABLE x; --"));
        assert!(!is_identifier(""));
        assert!(!is_identifier(&"a".repeat(64)));
    }
}
