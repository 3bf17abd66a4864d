//! Runnable examples of redisq live in `examples/`; see `examples/README.md`.
//!
//! The GPS ingestion server (`gps_server`) keeps its code here, in [`gps`], so that its
//! integration tests (`tests/gps.rs`) can start it in their own process; so does the job
//! API (`jobs_api`, `jobs_worker`), in [`jobs`], tested by `tests/jobs.rs`.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod gps;
pub mod jobs;

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            log::error!("cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                log::error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => log::info!("Ctrl-C: shutting down"),
        () = terminate => log::info!("SIGTERM: shutting down"),
    }
}
