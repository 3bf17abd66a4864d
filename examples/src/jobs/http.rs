//! The HTTP API: `POST /jobs`, `GET /jobs/{job_id}`, `GET /queue/stats`, `GET /health`,
//! `POST /queue/cleanup` and `GET /metrics`, with JSON errors.
//!
//! Bad input never yields a 500: malformed JSON is a 400, missing fields or wrong types a
//! 422, a body over 64 KiB a 413, an unknown (or implausible) job id a 404. Redis being
//! unreachable is a 503 with `Retry-After: 1`, Redis out of memory (at its `maxmemory`) a
//! 503 with `Retry-After: 5` (workers free memory as they drain the queue), and Redis
//! refusing this server's credentials a 500 (the client cannot fix it). Every Redis call
//! runs in `spawn_blocking`, at most `REDIS_MAX_CONNECTIONS` at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use redisq::{RedisQueueBackend, TaskId, TaskInfo, TaskStatus};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::spawn_blocking;

use super::task::{process_job, Job, QUEUE};
use super::{Config, MAX_BODY_BYTES};

/// The longest job id looked up; longer ones are 404 without asking Redis.
const MAX_ID_LEN: usize = 64;

/// What the handlers share: the Redis backend and the bound on Redis calls at once.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    backend: RedisQueueBackend,
    redis_calls: Semaphore,
}

impl AppState {
    /// The state of a server queueing on `backend`, with `config.redis_max_connections`.
    #[must_use]
    pub fn new(backend: RedisQueueBackend, config: &Config) -> AppState {
        AppState {
            shared: Arc::new(Shared {
                backend,
                redis_calls: Semaphore::new(config.redis_max_connections.max(1)),
            }),
        }
    }

    /// Runs `f` on the backend in a blocking thread, holding a permit.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RedisQueueBackend) -> redisq::Result<T> + Send + 'static,
    ) -> Result<T, Response> {
        let Ok(_permit) = self.shared.redis_calls.acquire().await else {
            return Err(unavailable("shutting down"));
        };
        let shared = self.shared.clone();
        match spawn_blocking(move || f(&shared.backend)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(redis_failure(&err)),
            Err(err) => Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: {err}"),
            )),
        }
    }
}

/// The routes; anything else is a JSON 404.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/jobs", post(submit))
        .route("/jobs/{job_id}", get(job_status))
        .route("/queue/stats", get(queue_stats))
        .route("/queue/cleanup", post(cleanup))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A JSON error: `{"error": message, "status": code}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"error": message.into(), "status": status.as_u16()});
    (status, Json(body)).into_response()
}

/// A 503 with `Retry-After: 1`.
fn unavailable(message: impl Into<String>) -> Response {
    retry_after(message, "1")
}

/// A 503 with `Retry-After: <seconds>`.
fn retry_after(message: impl Into<String>, seconds: &'static str) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(seconds),
    );
    response
}

/// The answer to a failed Redis call: a 503 with `Retry-After` when the same request may
/// succeed later (unreachable, busy; out of memory, later still), a 500 otherwise (refused
/// credentials or permissions, anything else: this server's problem, not the client's).
fn redis_failure(err: &redisq::Error) -> Response {
    match err {
        redisq::Error::OutOfMemory(_) => {
            log::warn!("redis: {err}");
            retry_after(format!("queue full, nothing was queued: {err}"), "5")
        }
        err if err.is_retryable() => {
            log::warn!("redis: {err}");
            unavailable(format!("queue unavailable: {err}"))
        }
        redisq::Error::Auth(_) => {
            log::error!("redis: {err}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("queue misconfigured: {err}"),
            )
        }
        err => {
            log::error!("redis: {err}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("queue error: {err}"),
            )
        }
    }
}

/// Unix ms as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: u64) -> Option<String> {
    let ms = i64::try_from(ms).ok()?;
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses a job: syntax errors and truncated input are 400, missing fields and wrong types
/// 422.
fn parse_job(body: &[u8]) -> Result<Job, (StatusCode, String)> {
    serde_json::from_slice::<Job>(body).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid job: {err}"),
            ),
            Category::Syntax | Category::Eof | Category::Io => {
                (StatusCode::BAD_REQUEST, format!("malformed JSON: {err}"))
            }
        }
    })
}

/// `POST /jobs`: enqueues the job and answers 202 with its id.
async fn submit(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let job = match parse_job(&body) {
        Ok(job) => job,
        Err((status, message)) => return error(status, message),
    };
    match state
        .call(move |backend| process_job::enqueue(backend, job))
        .await
    {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "accepted",
                "job_id": id,
                "message": "Job queued successfully. Poll GET /jobs/{job_id} for status.",
            })),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// Whether `id` could be a job id: 1 to 64 ASCII letters, digits, `-` or `_`.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The JSON answer for a task's record.
fn describe(info: &TaskInfo) -> Value {
    let id = info.id.as_str();
    match info.status {
        TaskStatus::Queued | TaskStatus::Scheduled => json!({
            "status": "queued",
            "job_id": id,
            "queue_position": info.queue_position,
            "estimated_wait_seconds": info.estimated_wait_seconds,
        }),
        TaskStatus::Processing => json!({
            "status": "processing",
            "job_id": id,
            "started_at": info.started_at.and_then(rfc3339),
        }),
        TaskStatus::Done => json!({
            "status": "done",
            "job_id": id,
            "result": info.result,
            "started_at": info.started_at.and_then(rfc3339),
            "completed_at": info.finished_at.and_then(rfc3339),
            "processing_duration_ms": match (info.started_at, info.finished_at) {
                (Some(start), Some(end)) => Some(end.saturating_sub(start)),
                _ => None,
            },
        }),
        TaskStatus::Failed | TaskStatus::Dead => json!({
            "status": "failed",
            "job_id": id,
            "error": info.error,
            "will_retry": info.status == TaskStatus::Failed,
            "attempts": info.attempts,
        }),
    }
}

/// `GET /jobs/{job_id}`: the job's status, or 404.
async fn job_status(State(state): State<AppState>, Path(job_id): Path<String>) -> Response {
    if !plausible_id(&job_id) {
        return error(StatusCode::NOT_FOUND, "job not found");
    }
    let id = TaskId::from(job_id);
    match state.call(move |backend| backend.task(&id)).await {
        Ok(Some(info)) => Json(describe(&info)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "job not found (unknown or expired)"),
        Err(response) => response,
    }
}

/// `GET /queue/stats`: the `jobs` queue's figures.
async fn queue_stats(State(state): State<AppState>) -> Response {
    match state.call(|backend| backend.queue_stats(QUEUE)).await {
        Ok(stats) => {
            let wait = (stats.throughput_per_second > 0.0)
                .then(|| stats.total_pending as f64 / stats.throughput_per_second);
            Json(json!({
                "queue": QUEUE,
                "queue_length": stats.total_pending,
                "estimated_wait_seconds": wait,
                "processing": stats.processing,
                "scheduled": stats.scheduled,
                "throughput_per_second": stats.throughput_per_second,
                "counts": {
                    "processed": stats.processed,
                    "failed": stats.failed,
                    "dead": stats.dead,
                },
                "timestamp": now_rfc3339(),
            }))
            .into_response()
        }
        Err(response) => response,
    }
}

/// `POST /queue/cleanup`: returns the jobs of dead workers to the queue.
async fn cleanup(State(state): State<AppState>) -> Response {
    match state.call(|backend| backend.recover_stale(QUEUE)).await {
        Ok(recovered) => Json(json!({"recovered": recovered})).into_response(),
        Err(response) => response,
    }
}

/// `GET /health`: 200 `healthy` when Redis answers, else 503 `degraded`.
async fn health(State(state): State<AppState>) -> Response {
    let connected = state.call(|backend| backend.ping()).await.is_ok();
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (
        status,
        Json(json!({
            "status": if connected { "healthy" } else { "degraded" },
            "service": "overload-safe-queue-api",
            "version": env!("CARGO_PKG_VERSION"),
            "queue_connected": connected,
            "timestamp": now_rfc3339(),
        })),
    )
        .into_response();
    if !connected {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// `GET /metrics`: the Prometheus text of every queue and worker.
async fn metrics(State(state): State<AppState>) -> Response {
    match state.call(|backend| backend.stats()).await {
        Ok(stats) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            stats.to_prometheus(),
        )
            .into_response(),
        Err(response) => response,
    }
}
