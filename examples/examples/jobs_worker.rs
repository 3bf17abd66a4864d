//! A worker process for the job API: runs `jobs::process_job` on the `jobs` queue.
//!
//! ```text
//! WORKER_THREADS=2 cargo run --release -p redisq-examples --example jobs_worker
//! ```
//! Uses the API's settings (`REDIS_URL`, `REDISQ_NAMESPACE`, `REDISQ_LEASE_MS`,
//! `QUEUE_RESULT_TTL`, `WORKER_PROCESSING_DELAY`) and `WORKER_THREADS` (default 2). On
//! SIGTERM or Ctrl-C it stops taking jobs, finishes the ones running, and exits 0. A worker
//! killed outright loses nothing: its jobs return to the queue when its lease runs out, taken
//! again by any other worker (or `POST /queue/cleanup`).

use redisq_examples::jobs::{self, Config};
use tokio::task::spawn_blocking;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let run = async {
        let config = Config::from_env()?;
        let backend = config.backend()?;
        let threads = config.worker_threads.max(1);
        log::info!(
            "worker: namespace `{}`, {threads} thread(s), processing delay {:?}",
            config.namespace,
            jobs::task::processing_delay()
        );
        let worker = spawn_blocking(move || jobs::start_workers(backend, threads)).await??;
        redisq_examples::shutdown_signal().await;
        if let Some(worker) = worker {
            spawn_blocking(move || worker.shutdown()).await?;
        }
        log::info!("worker stopped");
        Ok::<(), jobs::Error>(())
    };
    match run.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}
