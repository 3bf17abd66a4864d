//! Runnable examples of redisq live in `examples/`; see `examples/README.md`.
//!
//! The GPS ingestion server (`gps_server`) keeps its code here, in [`gps`], so that its
//! integration tests (`tests/gps.rs`) can start it in their own process; so does the job
//! API (`jobs_api`, `jobs_worker`), in [`jobs`], tested by `tests/jobs.rs`.

pub mod gps;
pub mod jobs;
