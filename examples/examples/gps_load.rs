//! A bounded load on a running `gps_server`, in two phases:
//!
//! 1. **direct** (the pipeline's ceiling): the same points, parsed as the server parses
//!    them, stored straight into a scratch schema of the same PostgreSQL (created, then
//!    dropped) by `--direct-threads` threads in batches of 1,000 through the server's own
//!    [`Database::store`] (same `INSERT … UNNEST … ON CONFLICT DO NOTHING`);
//! 2. **pipeline**: posts the points to the server (HTTP → redisq → PostgreSQL), then waits
//!    until its database holds them; prints requests/s, accept latency and end-to-end
//!    points/s, and the ratio of the two phases' points/s.
//!
//! ```text
//! cargo run --release -p redisq-examples --example gps_load -- \
//!     --points 100000 --concurrency 32 --batch 100 --url http://127.0.0.1:8000
//! cargo run --release -p redisq-examples --example gps_load -- \
//!     --points 100000 --batch 10 --rate 1000 --direct off
//! ```
//!
//! Unpaced (the default), `--concurrency` senders post back to back. With `--rate R` the
//! load is an open-loop schedule: request i is due at start + i/R, and a pool of
//! `--concurrency` senders issues each at its due time (or as soon as a sender is free).
//! Accept latency is measured from the moment a request is sent, not from its due time;
//! how far behind schedule the client fell (send time − due time) is printed next to it.
//!
//! Reads the rows from the server's database (`DATABASE_URL`, `DB_SCHEMA`, as for the
//! server). Each run uses track ids of its own (`load-<run>-<n>`), so runs do not mix. Only
//! loopback servers are accepted; the load stops after N points.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use redisq_examples::gps::points::parse_points;
use redisq_examples::gps::{Database, Kind, Point};

/// Batch size of the direct phase: the most points a worker call of the server stores.
const DIRECT_BATCH: usize = redisq_examples::gps::tasks::BATCH;

/// Posts GPS points to a gps_server and measures how fast they reach the database.
#[derive(Debug, Parser)]
struct Args {
    /// Points to send, duplicates included.
    #[arg(long, default_value_t = 100_000)]
    points: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Points per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// The endpoint: live, upload, scoring or flymaster.
    #[arg(long, default_value = "live")]
    endpoint: String,
    /// Share of the points that repeat an earlier one, in percent.
    #[arg(long, default_value_t = 2.0)]
    duplicates: f64,
    /// Give up waiting for rows after this many seconds without progress.
    #[arg(long, default_value_t = 30)]
    stall_secs: u64,
    /// The server's database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// The schema of the server's tables.
    #[arg(long, env = "DB_SCHEMA", default_value = "public")]
    schema: String,
    /// Requests per second, paced on an open-loop schedule (request i due at start + i/R);
    /// unpaced when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// The direct-insert ceiling: `on` measures it before the pipeline, `only` measures
    /// nothing else (no server needed), `off` skips it.
    #[arg(long, value_enum, default_value_t = Direct::On)]
    direct: Direct,
    /// Threads inserting at once in the direct phase (the server's `WORKER_THREADS`).
    #[arg(long, default_value_t = 4)]
    direct_threads: usize,
}

/// Whether to measure the direct-insert ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Direct {
    /// Direct insert, then the pipeline.
    On,
    /// Only the direct insert.
    Only,
    /// Only the pipeline.
    Off,
}

/// What the senders saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    /// How late each request was sent after its due time (paced runs).
    behind_ms: Vec<f64>,
    queued: usize,
    stored: usize,
    failed: usize,
    first_failure: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let kind = Kind::from_name(&args.endpoint).ok_or_else(|| {
        format!(
            "unknown endpoint `{}`: live, upload, scoring or flymaster",
            args.endpoint
        )
    })?;
    let base = reqwest::Url::parse(&args.url)?;
    if !is_loopback(&base) {
        return Err(format!(
            "{} is not a loopback address: this load only targets this machine",
            args.url
        )
        .into());
    }
    let target = base.join(kind.path())?;
    if args.points == 0 || args.batch == 0 || args.concurrency == 0 || args.direct_threads == 0 {
        return Err(
            "--points, --batch, --concurrency and --direct-threads must be at least 1".into(),
        );
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number of requests per second".into());
    }

    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let dups =
        ((args.points as f64 * args.duplicates / 100.0).round() as usize).min(args.points - 1);
    let unique = args.points - dups;
    let tracks = unique.div_ceil(1000).max(1);
    let ids: Vec<String> = (0..tracks).map(|k| format!("load-{run}-{k}")).collect();
    let bodies = Arc::new(request_bodies(&args, kind, &ids, unique, dups));

    let direct = if args.direct == Direct::Off {
        None
    } else {
        Some(direct_insert(&args, kind, &bodies, run)?)
    };
    if args.direct == Direct::Only {
        return Ok(());
    }

    let pace = match args.rate {
        Some(rate) => format!("paced at {rate} requests/s"),
        None => "unpaced".to_owned(),
    };
    println!(
        "pipeline: sending {} points ({unique} unique, {dups} repeated) to {target} in {} requests of up to {}, {} senders, {pace}",
        args.points,
        bodies.len(),
        args.batch,
        args.concurrency
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Progress is read from the queue's processed count in Redis (a batch counts once its
    // insert committed), which costs the database nothing while it works.
    let stats = queue_stats_reader(&args)?;
    let baseline = stats.processed()?;
    let started = Instant::now();
    let tally = runtime.block_on(send_all(&args, target, bodies.clone()))?;
    let sent_in = started.elapsed();
    drop(runtime);

    let requests = bodies.len();
    let secs = sent_in.as_secs_f64();
    println!(
        "requests: {requests} in {secs:.2} s = {:.0} requests/s ({:.0} points/s accepted); \
         {} queued (202), {} stored directly (201), {} failed",
        requests as f64 / secs,
        args.points as f64 / secs,
        tally.queued,
        tally.stored,
        tally.failed
    );
    if let Some(failure) = &tally.first_failure {
        println!("  first failure: {failure}");
    }
    let mut latencies = tally.latencies_ms;
    latencies.sort_by(f64::total_cmp);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "accept latency (from send): p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50),
        latencies.last().copied().unwrap_or(0.0)
    );
    if let Some(rate) = args.rate {
        let mut behind = tally.behind_ms;
        behind.sort_by(f64::total_cmp);
        let late = behind.iter().filter(|&&ms| ms > 1.0).count();
        println!(
            "schedule: {rate} requests/s asked, {:.0} achieved; sent behind due time: \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({late} of {} more than 1 ms late)",
            requests as f64 / secs,
            percentile(&behind, 0.50),
            percentile(&behind, 0.99),
            behind.last().copied().unwrap_or(0.0),
            behind.len()
        );
        let met = if p99 < 5.0 { "met" } else { "NOT met" };
        println!("target p99 accept latency < 5 ms at {rate} requests/s: {met}");
    }

    // Points stored in the request (201) never pass through the queue: then only the
    // table can tell when they are all in.
    let via_queue = if tally.stored == 0 && tally.failed == 0 {
        Some(wait_for_processed(&args, baseline, args.points as u64)?)
    } else {
        None
    };
    let (rows, grew) = wait_for_rows(&args, kind, &ids, unique as u64)?;
    let reached = via_queue.unwrap_or(grew);
    let e2e = reached.duration_since(started).as_secs_f64();
    let pipeline_rate = rows as f64 / e2e;
    println!(
        "database: {rows} rows {e2e:.2} s after the first request = {pipeline_rate:.0} points/s end to end"
    );
    if let Some(direct_rate) = direct {
        let ratio = pipeline_rate / direct_rate;
        let met = if ratio >= 0.5 { "met" } else { "NOT met" };
        println!(
            "points/s: pipeline {pipeline_rate:.0}, direct insert {direct_rate:.0}, \
             ratio {ratio:.2} (target >= 0.50: {met})"
        );
    }
    let verdict = if rows == unique as u64 {
        "OK"
    } else {
        "MISMATCH"
    };
    println!("rows stored: {rows} of {unique} unique points sent: {verdict}");
    if rows != unique as u64 || tally.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Whether the URL's host is on this machine.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The JSON bodies: `unique` distinct points over `ids` (one per second per track), plus
/// `dups` repeats of random earlier ones, shuffled, in requests of `args.batch`.
fn request_bodies(
    args: &Args,
    kind: Kind,
    ids: &[String],
    unique: usize,
    dups: usize,
) -> Vec<(usize, Vec<u8>)> {
    let id_field = if kind == Kind::Flymaster {
        "device_id"
    } else {
        "track_id"
    };
    let mut order: Vec<usize> = (0..unique).collect();
    order.extend((0..dups).map(|_| fastrand::usize(..unique)));
    fastrand::shuffle(&mut order);
    let start = chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
        .map(|t| t.to_utc())
        .unwrap_or_default();
    order
        .chunks(args.batch)
        .map(|chunk| {
            let points: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&u| {
                    let (track, second) = (u % ids.len(), u / ids.len());
                    let t = start + chrono::Duration::seconds(second as i64);
                    let step = second as f64 * 1e-4;
                    serde_json::json!({
                        id_field: ids[track],
                        "timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "lat": 45.0 + (track as f64 * 0.01) % 40.0 + step,
                        "lon": 6.0 + step,
                        "altitude": 500.0 + (second % 3000) as f64,
                    })
                })
                .collect();
            let body = serde_json::to_vec(&points).unwrap_or_default();
            (chunk.len(), body)
        })
        .collect()
}

/// Posts every body, `args.concurrency` at once, with a progress bar.
async fn send_all(
    args: &Args,
    target: reqwest::Url,
    bodies: Arc<Vec<(usize, Vec<u8>)>>,
) -> Result<Tally, Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let bar = ProgressBar::new(args.points as u64).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} points, {per_sec}, {elapsed}",
    )?);
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let interval = args.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let start = tokio::time::Instant::now();
    let mut senders = Vec::new();
    for _ in 0..args.concurrency {
        let (client, target, bodies) = (client.clone(), target.clone(), bodies.clone());
        let (next, tally, bar) = (next.clone(), tally.clone(), bar.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((n, body)) = bodies.get(i) else {
                    return;
                };
                let due = interval.map(|every| start + every.mul_f64(i as f64));
                if let Some(due) = due {
                    tokio::time::sleep_until(due).await;
                }
                let started = Instant::now();
                let behind = due.map(|due| {
                    tokio::time::Instant::now()
                        .saturating_duration_since(due)
                        .as_secs_f64()
                        * 1000.0
                });
                let response = client
                    .post(target.clone())
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let outcome = match response {
                    Ok(r) if r.status().as_u16() == 202 => Ok(202),
                    Ok(r) if r.status().as_u16() == 201 => Ok(201),
                    Ok(r) => Err(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(err) => Err(err.to_string()),
                };
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(behind) = behind {
                    tally.behind_ms.push(behind);
                }
                match outcome {
                    Ok(code) => {
                        tally.latencies_ms.push(ms);
                        if code == 202 {
                            tally.queued += 1;
                        } else {
                            tally.stored += 1;
                        }
                    }
                    Err(failure) => {
                        tally.failed += 1;
                        tally.first_failure.get_or_insert(failure);
                    }
                }
                bar.inc(*n as u64);
            }
        }));
    }
    for sender in senders {
        sender.await?;
    }
    bar.finish();
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(tally)
}

/// Phase 1: stores the points of `bodies`, parsed as the server parses them, into a scratch
/// schema of the database in batches of 1,000 by `args.direct_threads` threads through
/// [`Database::store`] (the statement of the server's workers); prints and returns the
/// points/s (rows stored per second). The schema is dropped afterwards.
fn direct_insert(
    args: &Args,
    kind: Kind,
    bodies: &[(usize, Vec<u8>)],
    run: u128,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut points: Vec<Point> = Vec::with_capacity(args.points);
    for (_, body) in bodies {
        points.extend(parse_points(body).map_err(|e| format!("a generated body: {e:?}"))?);
    }
    let schema = format!("gps_load_direct_{run}");
    let pool = u32::try_from(args.direct_threads).unwrap_or(u32::MAX);
    let db = Database::connect(&args.database_url, &schema, pool, DIRECT_BATCH)?;
    println!(
        "direct: storing {} points into scratch schema `{schema}` ({}), {} threads, batches of {DIRECT_BATCH}",
        points.len(),
        db.storage().as_str(),
        args.direct_threads
    );
    let table = kind.table();
    let batches: Vec<&[Point]> = points.chunks(DIRECT_BATCH).collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let stored: Result<u64, String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.direct_threads)
            .map(|_| {
                scope.spawn(|| -> Result<u64, String> {
                    let mut inserted = 0;
                    while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                        inserted += db.store(table, batch).map_err(|e| e.to_string())?;
                    }
                    Ok(inserted)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| "a direct insert thread panicked".to_owned())?
            })
            .sum()
    });
    let secs = started.elapsed().as_secs_f64();
    let rows = db.count(table);
    drop(db);
    let mut client = postgres::Client::connect(&args.database_url, postgres::NoTls)?;
    client.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))?;
    let inserted = stored?;
    let rows = rows?;
    let rate = rows as f64 / secs;
    println!(
        "direct: {inserted} rows inserted ({rows} in the table) in {secs:.2} s = {rate:.0} points/s (the ceiling); schema dropped"
    );
    Ok(rate)
}

/// Reads the processed count of the endpoint's queue from Redis.
struct QueueCounter {
    backend: redisq::RedisQueueBackend,
    queue: String,
}

impl QueueCounter {
    fn processed(&self) -> Result<u64, redisq::Error> {
        Ok(self.backend.queue_stats(&self.queue)?.processed)
    }
}

fn queue_stats_reader(args: &Args) -> Result<QueueCounter, Box<dyn std::error::Error>> {
    let namespace = std::env::var("REDISQ_NAMESPACE").unwrap_or_else(|_| "gps".to_owned());
    let backend = redisq::RedisQueueBackend::from_env()?.with_namespace(namespace);
    Ok(QueueCounter {
        backend,
        queue: format!("{}_points", args.endpoint),
    })
}

/// Polls the queue's processed count until `sent` more items were processed than at
/// `baseline`, or it makes no progress for `args.stall_secs`; returns when it got there.
fn wait_for_processed(
    args: &Args,
    baseline: u64,
    sent: u64,
) -> Result<Instant, Box<dyn std::error::Error>> {
    let counter = queue_stats_reader(args)?;
    let mut done = counter.processed()?.saturating_sub(baseline);
    let mut grew = Instant::now();
    while done < sent && grew.elapsed() < Duration::from_secs(args.stall_secs) {
        std::thread::sleep(Duration::from_millis(5));
        let now = counter.processed()?.saturating_sub(baseline);
        if now > done {
            grew = Instant::now();
        }
        done = now;
    }
    Ok(grew)
}

/// Polls the table until it holds `expected` rows of this run, or makes no progress for
/// `args.stall_secs`; returns the rows and when the count last grew.
fn wait_for_rows(
    args: &Args,
    kind: Kind,
    ids: &[String],
    expected: u64,
) -> Result<(u64, Instant), Box<dyn std::error::Error>> {
    let table = kind.table();
    let sql = format!(
        "SELECT count(*) FROM \"{}\".\"{}\" WHERE {} = ANY($1)",
        args.schema,
        table.name(),
        table.id_column()
    );
    let mut client = postgres::Client::connect(&args.database_url, postgres::NoTls)?;
    let count = |client: &mut postgres::Client| -> Result<u64, postgres::Error> {
        let row = client.query_one(sql.as_str(), &[&ids])?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    };
    let mut rows = count(&mut client)?;
    let mut grew = Instant::now();
    while rows < expected && grew.elapsed() < Duration::from_secs(args.stall_secs) {
        std::thread::sleep(Duration::from_millis(20));
        let now = count(&mut client)?;
        if now > rows {
            grew = Instant::now();
        }
        rows = now;
    }
    Ok((rows, grew))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
