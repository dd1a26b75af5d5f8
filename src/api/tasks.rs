//! `/api/tasks/{id}`: look-up, cancel and re-queue of one task.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use workerpool_actors::TaskId;

use super::error::ApiError;
use super::state::AppState;

type State = web::Data<AppState>;

/// The longest task id looked up. Ids are 36-character UUIDs; a longer one names no task, and
/// is answered at once with a short 404 that does not echo it.
pub(super) const MAX_TASK_ID_BYTES: usize = 128;

/// The task id of a path, or the 404 of one too long to be any task's.
pub(super) fn task_id(path: web::Path<String>) -> Result<TaskId, ApiError> {
    let id = path.into_inner();
    if id.len() > MAX_TASK_ID_BYTES {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no task with an id of {} bytes (task ids are UUIDs, at most {MAX_TASK_ID_BYTES} bytes)",
                id.len()
            ),
        ));
    }
    Ok(TaskId::from(id))
}

/// `GET /api/tasks/{id}`: the record (status, attempts, progress, result or error).
pub(super) async fn get(state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = task_id(path)?;
    let record = state.pool.lookup(&id).await.map_err(|e| task_error(e, &id))?;
    Ok(HttpResponse::Ok().json(record))
}

/// `DELETE /api/tasks/{id}`: cancels a waiting or running task; 409 when it already ended.
pub(super) async fn cancel(state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = task_id(path)?;
    let record = state.pool.cancel(&id).await.map_err(|e| task_error(e, &id))?;
    Ok(HttpResponse::Ok().json(record))
}

/// `POST /api/tasks/{id}/requeue`: runs a dead-lettered task again with fresh attempts.
pub(super) async fn requeue(state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = task_id(path)?;
    let id = state.pool.requeue(&id).await.map_err(|e| task_error(e, &id))?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id, "status": "queued" })))
}

/// A library error about task `id` as an API error naming the task (404 for an unknown one).
pub(super) fn task_error(e: workerpool_actors::Error, id: &TaskId) -> ApiError {
    ApiError::from(e).with("id", id.as_str())
}
