//! The HTTP API: the four ingestion endpoints, `/health`, `/queue/status` and `/metrics`,
//! with JSON errors.
//!
//! Handlers never call Redis or PostgreSQL on the runtime's threads: every such call (and
//! the parsing of a body, up to `MAX_BODY_BYTES` of JSON) runs in `spawn_blocking`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use redisq::{Dispatch, RedisQueueBackend, Stats};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::spawn_blocking;

use super::config::Config;
use super::db::Database;
use super::points::{parse_points, Rejection};
use super::tasks::{self, Kind, QUEUES};

/// What the handlers share: the Redis backend, the database and the limits.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    backend: RedisQueueBackend,
    db: Database,
    /// Bounds the handlers' Redis calls at once (`REDIS_MAX_CONNECTIONS`).
    redis_calls: Semaphore,
    max_body_bytes: usize,
}

impl AppState {
    /// The state of a server queueing on `backend` and storing into `db`, with the limits
    /// of `config` (`REDIS_MAX_CONNECTIONS`, `MAX_BODY_BYTES`).
    #[must_use]
    pub fn new(backend: RedisQueueBackend, db: Database, config: &Config) -> AppState {
        AppState {
            shared: Arc::new(Shared {
                backend,
                db,
                redis_calls: Semaphore::new(config.redis_max_connections.max(1)),
                max_body_bytes: config.max_body_bytes,
            }),
        }
    }
}

/// The routes: `POST /live`, `/upload`, `/scoring`, `/flymaster`; `GET /health`,
/// `/queue/status`, `/metrics`. Anything else is a JSON 404.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for kind in Kind::ALL {
        router = router.route(
            kind.path(),
            post(
                move |state: State<AppState>, body: Result<Bytes, BytesRejection>| {
                    ingest(state, kind, body)
                },
            ),
        );
    }
    let limit = state.shared.max_body_bytes;
    router
        .route("/health", get(health))
        .route("/queue/status", get(queue_status))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A JSON error: `{"error": message, "status": code}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"error": message.into(), "status": status.as_u16()});
    (status, Json(body)).into_response()
}

/// What a request's points came to.
enum Ingested {
    Refused(Rejection),
    Dispatched(usize, redisq::Result<tasks::Outcome>),
}

/// `POST /live` and the others: validate every point, then queue them all (202) or, with
/// Redis unreachable, store them all (201).
async fn ingest(
    State(state): State<AppState>,
    kind: Kind,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body larger than {} bytes (MAX_BODY_BYTES)",
                    state.shared.max_body_bytes
                ),
            )
        }
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    // Bounds the Redis connections in use; held while parsing too, which is short.
    let Ok(_permit) = state.shared.redis_calls.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let shared = state.shared.clone();
    let ingested = spawn_blocking(move || match parse_points(&body) {
        Err(rejection) => Ingested::Refused(rejection),
        Ok(points) => {
            let n = points.len();
            Ingested::Dispatched(n, tasks::dispatch(kind, &shared.backend, points))
        }
    })
    .await;
    match ingested {
        Ok(Ingested::Refused(Rejection::Malformed(reason))) => {
            error(StatusCode::BAD_REQUEST, format!("malformed JSON: {reason}"))
        }
        Ok(Ingested::Refused(Rejection::Invalid {
            message,
            errors,
            error_count,
        })) => {
            let body = json!({
                "error": message,
                "status": 422,
                "errors": errors,
                "error_count": error_count,
            });
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
        Ok(Ingested::Dispatched(n, Ok(Dispatch::Queued(_)))) => {
            let body = json!({"status": "queued", "points": n, "queue": kind.queue()});
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Ok(Ingested::Dispatched(n, Ok(Dispatch::RanInline(Ok(inserted))))) => {
            let body = json!({
                "status": "stored",
                "points": n,
                "inserted": inserted,
                "fallback": true,
                "table": kind.table().name(),
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Ok(Ingested::Dispatched(_, Ok(Dispatch::RanInline(Err(reason))))) => {
            log::error!("redis is unreachable and the database failed: {reason}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "redis is unreachable and the database failed, nothing was stored: {reason}"
                ),
            )
        }
        Ok(Ingested::Dispatched(_, Err(err))) => {
            log::error!("queueing on `{}` failed: {err}", kind.queue());
            queue_failure(&err)
        }
        Err(join) => {
            log::error!("an ingestion task failed: {join}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The answer when the points could not be queued (and, Redis being up, were not stored
/// directly either): a 503 with `Retry-After` when the same request may succeed later
/// (Redis out of memory: 5 s, as workers drain; busy: 1 s), a 500 when it cannot (Redis
/// refused this server's credentials or permissions).
fn queue_failure(err: &redisq::Error) -> Response {
    let message = format!("the points could not be queued, nothing was stored: {err}");
    let (status, retry_after) = match err {
        redisq::Error::OutOfMemory(_) => (StatusCode::SERVICE_UNAVAILABLE, Some("5")),
        err if err.is_retryable() => (StatusCode::SERVICE_UNAVAILABLE, Some("1")),
        redisq::Error::Auth(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        _ => (StatusCode::SERVICE_UNAVAILABLE, None),
    };
    let mut response = error(status, message);
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(seconds),
        );
    }
    response
}

/// `GET /health`: the database, Redis and the four queues; 503 with `reasons` when
/// either service is down.
async fn health(State(state): State<AppState>) -> Response {
    let shared = state.shared.clone();
    match spawn_blocking(move || health_report(&shared.backend, &shared.db)).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, join.to_string()),
    }
}

fn health_report(backend: &RedisQueueBackend, db: &Database) -> (StatusCode, Value) {
    let mut reasons = Vec::new();
    let database = match db.ping() {
        Ok(rtt) => json!({
            "connected": true,
            "latency_ms": rtt.as_secs_f64() * 1000.0,
            "schema": db.schema(),
            "storage": db.storage().as_str(),
        }),
        Err(err) => {
            reasons.push(format!("database: {err}"));
            json!({
                "connected": false,
                "error": err.to_string(),
                "schema": db.schema(),
                "storage": db.storage().as_str(),
            })
        }
    };
    let redis = match backend.health() {
        Ok(health) => health,
        Err(err) => {
            reasons.push(format!("redis: {err}"));
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable", "database": database, "reasons": reasons}),
            );
        }
    };
    let mut queues = serde_json::Map::new();
    if redis.reachable {
        for queue in QUEUES {
            match backend.queue_stats(queue) {
                Ok(q) => {
                    queues.insert(
                        queue.to_owned(),
                        json!({
                            "pending": q.total_pending,
                            "processing": q.processing,
                            "scheduled": q.scheduled,
                            "dead": q.dead,
                            "processed": q.processed,
                            "failed": q.failed,
                        }),
                    );
                }
                Err(err) => reasons.push(format!("redis: queue `{queue}`: {err}")),
            }
        }
    } else {
        reasons.push(format!(
            "redis: unreachable: {}",
            redis.error.as_deref().unwrap_or("no answer")
        ));
    }
    // Points are still accepted while the database answers: stored directly when Redis
    // does not.
    let mode = match (redis.reachable, reasons.is_empty()) {
        (true, true) => "queue",
        (false, _) if !database["connected"].as_bool().unwrap_or(false) => "down",
        (false, _) => "fallback",
        (true, false) => "degraded",
    };
    let (status, code) = if reasons.is_empty() {
        ("ok", StatusCode::OK)
    } else {
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
    };
    let body = json!({
        "status": status,
        "mode": mode,
        "database": database,
        "redis": redis,
        "queues": queues,
        "reasons": reasons,
    });
    (code, body)
}

/// The library's statistics, with the four queues present even before any point came.
fn stats(backend: &RedisQueueBackend) -> redisq::Result<Stats> {
    let mut stats = backend.stats()?;
    for queue in QUEUES {
        if !stats.queue_stats.contains_key(queue) {
            let figures = backend.queue_stats(queue)?;
            stats.queue_stats.insert(queue.to_owned(), figures);
        }
    }
    Ok(stats)
}

/// `GET /queue/status`: per-queue figures, processors and performance, as
/// [`RedisQueueBackend::stats`] reports them; 503 when Redis is down.
async fn queue_status(State(state): State<AppState>) -> Response {
    let backend = state.shared.backend.clone();
    match spawn_blocking(move || stats(&backend)).await {
        Ok(Ok(stats)) => Json(stats).into_response(),
        Ok(Err(err)) => {
            let body = json!({
                "redis_connected": false,
                "error": err.to_string(),
                "status": 503,
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, join.to_string()),
    }
}

/// `GET /metrics`: the same figures as OpenMetrics text; 503 when Redis is down.
async fn metrics(State(state): State<AppState>) -> Response {
    let backend = state.shared.backend.clone();
    match spawn_blocking(move || stats(&backend).map(|s| s.to_prometheus())).await {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("redis is unavailable: {err}\n"),
        )
            .into_response(),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, join.to_string()),
    }
}
