//! A bounded load on a running `gps_server`: posts N points (some of them twice), then waits
//! until the database holds them and prints the figures.
//!
//! ```text
//! cargo run --release -p redisq-examples --example gps_load -- \
//!     --points 100000 --concurrency 32 --batch 100 --url http://127.0.0.1:8000
//! ```
//!
//! Reads the rows from the server's database (`DATABASE_URL`, `DB_SCHEMA`, as for the
//! server). Each run uses track ids of its own (`load-<run>-<n>`), so runs do not mix. Only
//! loopback servers are accepted; the load stops after N points.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use redisq_examples::gps::Kind;

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
}

/// What the senders saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_ms: Vec<f64>,
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
    if args.points == 0 || args.batch == 0 || args.concurrency == 0 {
        return Err("--points, --batch and --concurrency must be at least 1".into());
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

    println!(
        "sending {} points ({unique} unique, {dups} repeated) to {target} in {} requests of up to {}, {} at once",
        args.points,
        bodies.len(),
        args.batch,
        args.concurrency
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
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
    println!(
        "accept latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );

    let (rows, reached) = wait_for_rows(&args, kind, &ids, unique as u64)?;
    let e2e = reached.duration_since(started).as_secs_f64();
    println!(
        "database: {rows} rows {e2e:.2} s after the first request = {:.0} points/s end to end",
        rows as f64 / e2e
    );
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
                let started = Instant::now();
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
