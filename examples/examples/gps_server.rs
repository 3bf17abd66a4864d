//! The GPS point ingestion server: HTTP → redisq → PostgreSQL (see `redisq_examples::gps`).
//!
//! ```text
//! scripts/ensure-redis.sh && scripts/ensure-postgres.sh
//! cargo run --release -p redisq-examples --example gps_server
//! ```
//! Configured from the environment (`BIND_ADDR`, `DATABASE_URL`, `DB_SCHEMA`, `REDIS_URL`,
//! `REDISQ_NAMESPACE`, `BATCH_SIZE`, `WORKER_THREADS`, …; see the `gps` module's docs).
//! Stops on Ctrl-C or SIGTERM: stops accepting, lets the workers finish their batches, and
//! exits 0.

use redisq_examples::gps::{self, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let served = match Config::from_env() {
        Ok(config) => gps::serve(config, redisq_examples::shutdown_signal()).await,
        Err(err) => Err(err),
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}
