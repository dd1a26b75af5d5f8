//! `/api/workers/*`: stats, status, types, execute, scale, restart, health, queues,
//! resources and dead letters.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use workerpool_actors::{HealthStatus, ScaleAction, TaskRecord, TaskStatus, assess_health};

use super::body::read_json;
use super::body::{ExecuteBody, ScaleBody, ScaleDirection};
use super::error::ApiError;
use super::page::Page;
use super::state::AppState;

type State = web::Data<AppState>;

/// Waiting tasks listed per type by `/queues` and `/status`.
const QUEUE_LISTING: usize = 50;

/// `GET /api/workers/stats`.
pub(super) async fn stats(state: State) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.pool.stats().await?))
}

/// `GET /api/workers/status`: stats, queues, resources, configuration and workers.
pub(super) async fn status(state: State) -> Result<HttpResponse, ApiError> {
    let stats = state.pool.stats().await?;
    let mut body = serde_json::to_value(&stats).unwrap_or_default();
    // With Redis down the queues cannot be read; the rest of the status still can.
    let shared = state.pool.shared_status().await;
    let queues = match queue_map(&state).await {
        Ok(queues) => json!(queues),
        Err(_) if shared.is_some() => Value::Null,
        Err(e) => return Err(e),
    };
    let mut extra = json!({
        "instance_id": state.settings.instance_id,
        "uptime_ms": state.started.elapsed().as_millis() as u64,
        "queues": queues,
        "resources": state.pool.resources(),
        "workers": state.pool.workers().await?,
        "config": state.pool.config(),
    });
    if let (Some(shared), Some(map)) = (shared, extra.as_object_mut()) {
        map.insert("instances".into(), json!(shared.instances));
        map.insert(
            "redis".into(),
            json!({
                "status": if shared.down.is_none() { "up" } else { "down" },
                "error": shared.down,
                "stale_results": shared.stale_results,
            }),
        );
    }
    if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), extra) {
        map.extend(extra);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/workers/types`: each type's configuration and whether it takes tasks now.
pub(super) async fn types(state: State) -> Result<HttpResponse, ApiError> {
    let mut types = BTreeMap::new();
    for (name, t) in &state.pool.config().types {
        let mut entry = serde_json::to_value(t).unwrap_or_default();
        let availability = state.pool.availability(name);
        if let Some(map) = entry.as_object_mut() {
            map.insert("available".into(), json!(availability.is_ok() && !state.stopping()));
            let reason = match availability {
                Err(e) => Some(e.message().to_string()),
                Ok(()) if state.stopping() => Some("shutting down".to_string()),
                Ok(()) => None,
            };
            map.insert("unavailable_reason".into(), json!(reason));
            map.insert("start_failures".into(), json!(state.pool.start_failures(name)));
            map.insert("gpu_wait".into(), json!(state.pool.gpu_wait(name)));
        }
        types.insert(name.clone(), entry);
    }
    Ok(HttpResponse::Ok().json(json!({ "types": types })))
}

/// `POST /api/workers/execute`: waits for the result unless `options.wait` is false.
pub(super) async fn execute(state: State, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let body: ExecuteBody = read_json(body).await?;
    body.validate()?;
    if state.stopping() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"));
    }
    let wait = body.wait();
    let request = body.into_request();
    if let Err(e) = state.pool.availability(&request.task_type) {
        return Err(ApiError::from(e).with("type", request.task_type));
    }
    if !wait {
        let id = state.pool.enqueue(request).await?;
        return Ok(HttpResponse::Accepted().json(json!({ "id": id, "status": "queued" })));
    }
    let record = state.pool.execute(request).await?;
    Ok(record_response(&record))
}

/// A final task record with the status the contract gives its outcome.
pub(super) fn record_response(record: &TaskRecord) -> HttpResponse {
    let status = match record.status {
        TaskStatus::Completed => StatusCode::OK,
        TaskStatus::Failed | TaskStatus::Dead => StatusCode::BAD_GATEWAY,
        TaskStatus::TimedOut => StatusCode::GATEWAY_TIMEOUT,
        TaskStatus::Cancelled => StatusCode::CONFLICT,
        TaskStatus::Queued | TaskStatus::Running => StatusCode::ACCEPTED,
    };
    HttpResponse::build(status).json(record)
}

/// `POST /api/workers/scale/{type}`.
pub(super) async fn scale(
    state: State,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let task_type = path.into_inner();
    let body: ScaleBody = read_json(body).await?;
    if body.count == 0 {
        return Err(ApiError::bad_request("count: expected at least 1").with("field", "count"));
    }
    let action = match body.action {
        ScaleDirection::Up => ScaleAction::Up(body.count),
        ScaleDirection::Down => ScaleAction::Down(body.count),
    };
    let scaled = state
        .pool
        .scale(&task_type, action)
        .await
        .map_err(|e| ApiError::from(e).with("type", task_type.clone()))?;
    Ok(HttpResponse::Ok().json(json!({
        "type": task_type,
        "workers": scaled.workers,
        "started": scaled.started,
        "waiting": scaled.waiting,
        "gpu_wait": scaled.gpu_wait,
    })))
}

/// `POST /api/workers/restart/{worker_id}`.
pub(super) async fn restart(state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let worker = path.into_inner();
    state
        .pool
        .restart_worker(&worker)
        .await
        .map_err(|e| ApiError::from(e).with("worker_id", worker.clone()))?;
    Ok(HttpResponse::Ok().json(json!({ "restarted": worker })))
}

/// `GET /api/workers/health`: 503 when unhealthy.
pub(super) async fn health(state: State) -> Result<HttpResponse, ApiError> {
    let stats = state.pool.stats().await?;
    let mut report = assess_health(&stats, state.stopping());
    if let Some(why) = state.pool.backend_down() {
        report.status = HealthStatus::Unhealthy;
        report.reasons.push(format!("Redis unavailable: {why}"));
    }
    let code = if report.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(code).json(json!({
        "status": report.status,
        "reasons": report.reasons,
        "types": report.types,
        "workers": { "total": stats.total, "busy": stats.busy, "available": stats.available },
        "uptime_ms": state.started.elapsed().as_millis() as u64,
    })))
}

async fn queue_map(state: &AppState) -> Result<BTreeMap<String, workerpool_actors::QueueInfo>, ApiError> {
    let mut queues = BTreeMap::new();
    for name in state.pool.config().types.keys() {
        queues.insert(name.clone(), state.pool.queue(name, 0..QUEUE_LISTING).await?);
    }
    Ok(queues)
}

/// `GET /api/workers/queues`: per type, length, oldest wait and the first tasks in order.
pub(super) async fn queues(state: State) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({ "queues": queue_map(&state).await? })))
}

/// `GET /api/workers/queues/{type}?offset=&limit=`: one page of a type's queue, in order.
pub(super) async fn queue_page(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task_type = path.into_inner();
    let page = Page::from_query(req.query_string())?;
    let queue = state
        .pool
        .queue(&task_type, page.range())
        .await
        .map_err(|e| ApiError::from(e).with("type", task_type.clone()))?;
    let mut body = serde_json::to_value(queue).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("type".into(), json!(task_type));
        map.insert("limit".into(), json!(page.limit));
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/workers/resources`: the latest sample of the resource monitor.
pub(super) async fn resources(state: State) -> HttpResponse {
    HttpResponse::Ok().json(state.pool.resources())
}

/// `GET /api/workers/dead-letters/{type}`: tasks out of attempts, oldest first.
pub(super) async fn dead_letters(state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let task_type = path.into_inner();
    let tasks = state
        .pool
        .dead_letters(&task_type)
        .await
        .map_err(|e| ApiError::from(e).with("type", task_type.clone()))?;
    Ok(HttpResponse::Ok().json(json!({ "type": task_type, "tasks": tasks })))
}
