//! The overload-safe job API: HTTP → redisq → workers (see `redisq_examples::jobs`).
//!
//! ```text
//! scripts/ensure-redis.sh
//! cargo run --release -p redisq-examples --example jobs_api
//! ```
//! Configured from the environment (`BIND_ADDR`, `REDIS_URL`, `REDISQ_NAMESPACE`,
//! `EMBEDDED_WORKERS`, `WORKER_PROCESSING_DELAY`, `QUEUE_RESULT_TTL`, …; see the `jobs`
//! module's docs). Stops on Ctrl-C or SIGTERM: stops accepting, lets the embedded workers
//! finish their jobs, and exits 0.

use redisq_examples::jobs::{self, Config};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let served = async {
        let config = Config::from_env()?;
        let listener = TcpListener::bind(config.bind_addr).await?;
        jobs::serve(config, listener, redisq_examples::shutdown_signal()).await
    }
    .await;
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}
