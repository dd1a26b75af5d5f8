//! `/api/tasks/{id}`: look-up, cancel and re-queue of one task.

use actix_web::{HttpRequest, HttpResponse, web};
use workerpool_actors::TaskId;

use super::{ApiError, AppState, authorize};

type State = web::Data<AppState>;

/// `GET /api/tasks/{id}`: the record (status, attempts, progress, result or error).
pub(super) async fn get(state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = TaskId::from(path.into_inner());
    let record = state.pool.lookup(&id).await.map_err(|e| task_error(e, &id))?;
    Ok(HttpResponse::Ok().json(record))
}

/// `DELETE /api/tasks/{id}`: cancels a waiting or running task; 409 when it already ended.
pub(super) async fn cancel(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = TaskId::from(path.into_inner());
    let record = state.pool.cancel(&id).await.map_err(|e| task_error(e, &id))?;
    Ok(HttpResponse::Ok().json(record))
}

/// `POST /api/tasks/{id}/requeue`: runs a dead-lettered task again with fresh attempts.
pub(super) async fn requeue(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = TaskId::from(path.into_inner());
    let id = state.pool.requeue(&id).await.map_err(|e| task_error(e, &id))?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id, "status": "queued" })))
}

/// A library error about task `id` as an API error naming the task (404 for an unknown one).
pub(super) fn task_error(e: workerpool_actors::Error, id: &TaskId) -> ApiError {
    ApiError::from(e).with("id", id.as_str())
}
