//! Server-sent events: every pool event (`/api/workers/events`) and one task's progress
//! (`/api/tasks/{id}/events`).
//!
//! Each SSE message is `id: <id>`, `event: <name>` and `data: <json>`; pool events carry the
//! contract's `{"event","data","instance_id","timestamp"}`. Each stream opens with a
//! `retry:` hint ([`RETRY_MS`]), and a comment line is sent every [`KEEP_ALIVE`] so proxies
//! keep the stream open.
//!
//! A task stream's ids name where the task is (`resume.rs`), so a client that reconnects
//! with `Last-Event-ID` gets only what it missed, or `204 No Content` once it has the end.
//! A pool stream's ids count the events of its connection (lost ones included).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{StreamExt as _, stream};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use workerpool_actors::{Event, EventReceiver, Progress, TaskId, TaskRecord, TaskUpdate, TaskWatch};

use super::resume::{Position, Resume, resume};

use super::state::AppState;
use super::tasks::{task_error, task_id};

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a browser waits before it reconnects a stream that broke, in milliseconds.
pub const RETRY_MS: u64 = 3000;

/// What every stream opens with: the reconnection hint (no event is dispatched for it).
fn retry_hint() -> web::Bytes {
    web::Bytes::from(format!("retry: {RETRY_MS}\n\n"))
}

fn keep_alive() -> web::Bytes {
    web::Bytes::from_static(b": keep-alive\n\n")
}

fn sse_message(id: impl std::fmt::Display, name: &str, data: &serde_json::Value) -> web::Bytes {
    web::Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
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

/// `GET /api/workers/events`: every pool event from now on; ids count this connection's
/// events from 1, the lost ones of a `lagged` included. `Last-Event-ID` is not read: the
/// stream starts from now.
pub(super) async fn pool_events(state: web::Data<AppState>) -> HttpResponse {
    let feed = Feed::new(&state);
    let instance = state.settings.instance_id.clone();
    let opening = stream::once(std::future::ready(Ok(retry_hint())));
    let events = stream::unfold((feed, instance, 0u64), |(mut feed, instance, mut seq)| async move {
        let chunk = match next_event(&mut feed).await {
            Ok(Some(event)) => {
                let mut data = serde_json::to_value(&event).unwrap_or_default();
                if let Some(map) = data.as_object_mut() {
                    map.insert("instance_id".into(), json!(instance));
                }
                seq += 1;
                sse_message(seq, event.kind.name(), &data)
            }
            Ok(None) => keep_alive(),
            Err(0) => return None,
            Err(lost) => {
                seq = seq.saturating_add(lost).saturating_add(1);
                sse_message(seq, "lagged", &json!({ "lost_events": lost }))
            }
        };
        Some((Ok(chunk), (feed, instance, seq)))
    });
    sse_response(opening.chain(events))
}

/// The header a reconnecting `EventSource` sends.
const LAST_EVENT_ID: &str = "last-event-id";

/// `GET /api/tasks/{id}/events`: the record now (`status`), then `progress` events (and
/// `status` when the task is assigned or retried), then the final record (`result`), then
/// the stream ends. With `Last-Event-ID`, what the client has already is left out
/// ([`resume`]); a client that has the end gets `204 No Content`.
pub(super) async fn task_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = match task_id(path) {
        Ok(id) => id,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let mut watch = match state.pool.watch(&id).await {
        Ok(watch) => watch,
        Err(e) => return actix_web::ResponseError::error_response(&task_error(e, &id)),
    };
    // A header that is not text counts as none.
    let last = req.headers().get(LAST_EVENT_ID).and_then(|v| v.to_str().ok());
    // The watch's first update is the record as it is now.
    let (first, position) = match watch.next().await {
        Some(TaskUpdate::Status(record) | TaskUpdate::Ended(record)) => {
            let position = Position::of(&record);
            (Some(record), position)
        }
        _ => (None, Position::Waiting { attempt: 1 }),
    };
    let mut opening = vec![retry_hint()];
    match (resume(last, position), first) {
        (Resume::NoContent, _) => return HttpResponse::NoContent().finish(),
        (Resume::Result, Some(record)) => opening.push(record_message(position, "result", &record)),
        (Resume::Status, Some(record)) => opening.push(record_message(position, "status", &record)),
        _ => {}
    }
    let ended = matches!(position, Position::Ended { .. });
    let opening = stream::iter(opening.into_iter().map(Ok));
    let follow = TaskStream { watch, closing: state.closing.subscribe(), attempt: position.attempt(), ended };
    sse_response(opening.chain(stream::unfold(follow, TaskStream::next)))
}

/// What a task's stream follows after its opening.
struct TaskStream {
    watch: TaskWatch,
    closing: Closing,
    /// The attempt of the last record sent, which progress reports belong to.
    attempt: u32,
    /// Whether the end was sent: the stream ends.
    ended: bool,
}

impl TaskStream {
    async fn next(mut self) -> Option<(Result<web::Bytes, std::convert::Infallible>, TaskStream)> {
        if self.ended {
            return None;
        }
        let chunk = match until_closing(&mut self.closing, self.watch.next()).await? {
            Err(_) => keep_alive(),
            Ok(None) => return None,
            Ok(Some(TaskUpdate::Status(record))) => {
                let position = Position::of(&record);
                self.attempt = position.attempt();
                record_message(position, "status", &record)
            }
            Ok(Some(TaskUpdate::Progress { progress, worker_id })) => {
                let position = Position::progress(self.attempt, progress.progress);
                progress_message(position, self.watch.id(), &progress, worker_id.as_deref())
            }
            Ok(Some(TaskUpdate::Ended(record))) => {
                self.ended = true;
                record_message(Position::of(&record), "result", &record)
            }
        };
        Some((Ok(chunk), self))
    }
}

fn record_message(position: Position, name: &str, record: &TaskRecord) -> web::Bytes {
    sse_message(position, name, &serde_json::to_value(record).unwrap_or_default())
}

fn progress_message(
    position: Position,
    id: &TaskId,
    progress: &Progress,
    worker_id: Option<&str>,
) -> web::Bytes {
    sse_message(
        position,
        "progress",
        &json!({ "id": id, "progress": progress.progress, "stage": progress.stage, "worker_id": worker_id }),
    )
}
