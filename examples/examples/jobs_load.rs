//! A load on a running `jobs_api`: many `POST /jobs` at once, then a wait until every job
//! is done.
//!
//! ```text
//! ulimit -n 4096   # 1,000 connections on both ends of loopback need more than 1,024 files
//! EMBEDDED_WORKERS=8 WORKER_PROCESSING_DELAY=0.001 \
//!     cargo run --release -p redisq-examples --example jobs_api &
//! cargo run --release -p redisq-examples --example jobs_load -- --requests 100000 --concurrency 1000
//! ```
//! Reports the requests accepted (202) and the errors (anything else, or no answer),
//! requests/s, accept latency p50/p99/max, the API process's peak memory (`VmHWM` of
//! `--server-pid`, else of the process whose command line names `jobs_api`), and the jobs
//! that never completed (queue length and processing back to 0 and `processed` up by the
//! count accepted, within `--wait-secs`). Exits 1 when there were errors, jobs left
//! undone, or a peak memory over `--max-rss-mb`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// Load options.
#[derive(Debug, Parser)]
#[command(about = "POST many jobs to a running jobs_api and wait for them")]
struct Args {
    /// Requests to send.
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 1_000)]
    concurrency: usize,
    /// The API's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The API's process id, for its peak memory; found by name when omitted.
    #[arg(long)]
    server_pid: Option<u32>,
    /// How long to wait for the jobs to be done.
    #[arg(long, default_value_t = 600)]
    wait_secs: u64,
    /// The API's peak memory allowed, in MB.
    #[arg(long, default_value_t = 512)]
    max_rss_mb: u64,
}

/// `VmHWM` of `pid`, in kB.
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A process (not this one) whose command line's program is `jobs_api`.
fn find_server() -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let program = cmdline.split(|&b| b == 0).next()?;
            let name = String::from_utf8_lossy(program);
            (pid != me && name.rsplit('/').next() == Some("jobs_api")).then_some(pid)
        })
}

async fn queue_stats(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(format!("{url}/queue/stats")).send().await.ok()?;
    response.json().await.ok()
}

fn count(stats: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(stats, |v, k| &v[*k])
        .as_u64()
        .unwrap_or(u64::MAX)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let url = args.url.trim_end_matches('/').to_owned();
    let server = args.server_pid.or_else(find_server);
    let concurrency = args.concurrency.max(1);
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            eprintln!("cannot build the HTTP client: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let Some(before) = queue_stats(&client, &url).await else {
        eprintln!("no answer from {url}/queue/stats: is jobs_api running?");
        return std::process::ExitCode::FAILURE;
    };
    let processed_before = count(&before, &["counts", "processed"]);
    println!(
        "sending {} requests, {concurrency} at once, to {url} (server pid {})",
        args.requests,
        server.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    );

    let bar = ProgressBar::new(args.requests as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, url, next, bar) = (client.clone(), url.clone(), next.clone(), bar.clone());
        let total = args.requests;
        senders.push(tokio::spawn(async move {
            let (mut latencies, mut accepted, mut errors) = (Vec::new(), 0usize, 0usize);
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let body = json!({
                    "name": format!("load-{i}"),
                    "value": i,
                    "message": "load test",
                    "metadata": {"run": "jobs_load"},
                });
                let sent = Instant::now();
                let outcome = client.post(format!("{url}/jobs")).json(&body).send().await;
                match outcome {
                    Ok(response) if response.status() == reqwest::StatusCode::ACCEPTED => {
                        let _ = response.bytes().await;
                        accepted += 1;
                    }
                    Ok(response) => {
                        errors += 1;
                        if first_error.is_none() {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            first_error = Some(format!("{status}: {text}"));
                        }
                    }
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| err.to_string());
                    }
                }
                latencies.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                bar.inc(1);
            }
            (latencies, accepted, errors, first_error)
        }));
    }
    let (mut latencies, mut accepted, mut errors, mut first_error) = (Vec::new(), 0, 0, None);
    for sender in senders {
        match sender.await {
            Ok((l, a, e, f)) => {
                latencies.extend(l);
                accepted += a;
                errors += e;
                if first_error.is_none() {
                    first_error = f;
                }
            }
            Err(err) => {
                errors += 1;
                first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    latencies.sort_unstable();
    println!("accepted: {accepted}");
    println!("errors: {errors}");
    if let Some(first) = &first_error {
        println!("first error: {first}");
    }
    println!(
        "requests/s: {:.0} ({} in {:.2} s)",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "latency ms: p50 {:.2}, p99 {:.2}, max {:.2}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().map_or(0.0, |&m| m as f64 / 1000.0)
    );

    // Wait for the queue to drain.
    let target = processed_before.saturating_add(accepted as u64);
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let drain_started = Instant::now();
    let mut last = None;
    loop {
        if let Some(stats) = queue_stats(&client, &url).await {
            let done = count(&stats, &["queue_length"]) == 0
                && count(&stats, &["processing"]) == 0
                && count(&stats, &["counts", "processed"]) >= target;
            last = Some(stats);
            if done {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let processed = last
        .as_ref()
        .map_or(0, |s| count(s, &["counts", "processed"]))
        .saturating_sub(processed_before);
    let never = (accepted as u64).saturating_sub(processed);
    println!(
        "processed: {processed} (all done {:.2} s after the last request)",
        drain_started.elapsed().as_secs_f64()
    );
    println!("never completed: {never}");
    let peak = server.and_then(peak_kb);
    match peak {
        Some(kb) => println!("server peak memory (VmHWM): {:.1} MB", kb as f64 / 1024.0),
        None => println!("server peak memory: unknown (pass --server-pid)"),
    }
    let too_big = peak.is_some_and(|kb| kb / 1024 >= args.max_rss_mb);
    if errors > 0 || never > 0 || too_big {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
