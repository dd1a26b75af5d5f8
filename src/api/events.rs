//! Server-sent events: every pool event (`/api/workers/events`) and one task's progress
//! (`/api/tasks/{id}/events`).
//!
//! Each SSE message is `event: <name>` and `data: <json>`; pool events carry the contract's
//! `{"event","data","instance_id","timestamp"}`. A comment line is sent every
//! [`KEEP_ALIVE`] so proxies keep the stream open.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures_util::stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use workerpool_actors::{Event, EventReceiver, Progress, TaskId, TaskRecord, TaskUpdate};

use super::state::AppState;
use super::tasks::{task_error, task_id};

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn sse_message(name: &str, data: &serde_json::Value) -> web::Bytes {
    web::Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn sse_response<S>(body: S) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<web::Bytes, std::convert::Infallible>> + 'static,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// What the pool-events stream listens to: the pool's events, and the server's closing.
struct Feed {
    rx: EventReceiver,
    closing: Closing,
}

impl Feed {
    fn new(state: &AppState) -> Feed {
        Feed { rx: state.pool.subscribe(), closing: state.closing.subscribe() }
    }
}

/// `next` bounded by a keep-alive: `Some(Err(_))` when it is time for one, `None` once the
/// server is closing (the stream ends).
async fn until_closing<T>(
    closing: &mut Closing,
    next: impl std::future::Future<Output = T>,
) -> Option<Result<T, tokio::time::error::Elapsed>> {
    if *closing.borrow() {
        return None;
    }
    tokio::select! {
        _ = closing.changed() => None,
        next = tokio::time::timeout(KEEP_ALIVE, next) => Some(next),
    }
}

type Closing = tokio::sync::watch::Receiver<bool>;

/// Waits for the next event, or says it is time for a keep-alive; `Err(0)` ends the stream
/// (the server is closing), `Err(n)` says `n` events were lost.
async fn next_event(feed: &mut Feed) -> Result<Option<Event>, u64> {
    match until_closing(&mut feed.closing, feed.rx.recv()).await {
        None | Some(Ok(Err(RecvError::Closed))) => Err(0),
        Some(Err(_)) => Ok(None),
        Some(Ok(Ok(event))) => Ok(Some(event)),
        Some(Ok(Err(RecvError::Lagged(n)))) => Err(n),
    }
}

/// `GET /api/workers/events`: every pool event from now on.
pub(super) async fn pool_events(state: web::Data<AppState>) -> HttpResponse {
    let feed = Feed::new(&state);
    let instance = state.settings.instance_id.clone();
    let body = stream::unfold((feed, instance), |(mut feed, instance)| async move {
        let chunk = match next_event(&mut feed).await {
            Ok(Some(event)) => {
                let mut data = serde_json::to_value(&event).unwrap_or_default();
                if let Some(map) = data.as_object_mut() {
                    map.insert("instance_id".into(), json!(instance));
                }
                sse_message(event.kind.name(), &data)
            }
            Ok(None) => web::Bytes::from_static(b": keep-alive\n\n"),
            Err(0) => return None,
            Err(lost) => sse_message("lagged", &json!({ "lost_events": lost })),
        };
        Some((Ok(chunk), (feed, instance)))
    });
    sse_response(body)
}

/// `GET /api/tasks/{id}/events`: the record now (`status`), then `progress` events (and
/// `status` when the task is assigned or retried), then the final record (`result`), then
/// the stream ends.
pub(super) async fn task_events(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = match task_id(path) {
        Ok(id) => id,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let watch = match state.pool.watch(&id).await {
        Ok(watch) => watch,
        Err(e) => return actix_web::ResponseError::error_response(&task_error(e, &id)),
    };
    let closing = state.closing.subscribe();
    // The watch has nothing after the end, so the stream ends right after `result`.
    let body = stream::unfold((watch, closing), |(mut watch, mut closing)| async move {
        let chunk = match until_closing(&mut closing, watch.next()).await? {
            Err(_) => web::Bytes::from_static(b": keep-alive\n\n"),
            Ok(None) => return None,
            Ok(Some(TaskUpdate::Status(record))) => record_message("status", &record),
            Ok(Some(TaskUpdate::Progress { progress, worker_id })) => {
                progress_message(watch.id(), &progress, worker_id.as_deref())
            }
            Ok(Some(TaskUpdate::Ended(record))) => record_message("result", &record),
        };
        Some((Ok(chunk), (watch, closing)))
    });
    sse_response(body)
}

fn record_message(name: &str, record: &TaskRecord) -> web::Bytes {
    sse_message(name, &serde_json::to_value(record).unwrap_or_default())
}

fn progress_message(id: &TaskId, progress: &Progress, worker_id: Option<&str>) -> web::Bytes {
    sse_message(
        "progress",
        &json!({ "id": id, "progress": progress.progress, "stage": progress.stage, "worker_id": worker_id }),
    )
}
