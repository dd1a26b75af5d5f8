//! Server-sent events: every pool event (`/api/workers/events`) and one task's progress
//! (`/api/tasks/{id}/events`).
//!
//! Each SSE message is `event: <name>` and `data: <json>`; pool events carry the contract's
//! `{"event","data","instance_id","timestamp"}`. A comment line is sent every
//! [`KEEP_ALIVE`] so proxies keep the stream open.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use futures_util::stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use workerpool_actors::{Event, EventKind, EventReceiver, PoolHandle, Progress, TaskId, TaskStatus};

use super::state::AppState;
use super::tasks::{task_error, task_id};

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// With shared queues, how often a task stream reads the task's record when no event came.
const SHARED_TICK: Duration = Duration::from_secs(1);

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

/// What a stream listens to: the pool's events, and the server's closing.
struct Feed {
    /// How long to wait for an event before a keep-alive (shorter with shared queues, whose
    /// tasks may end on another instance: the task stream then looks at the record).
    tick: Duration,
    rx: EventReceiver,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Feed {
    fn new(state: &AppState) -> Feed {
        let tick = if state.pool.redis_status().is_some() { SHARED_TICK } else { KEEP_ALIVE };
        Feed { tick, rx: state.pool.subscribe(), closing: state.closing.subscribe() }
    }
}

/// Waits for the next event, or says it is time for a keep-alive; `Err(0)` ends the stream
/// (the server is closing), `Err(n)` says `n` events were lost.
async fn next_event(feed: &mut Feed) -> Result<Option<Event>, u64> {
    if *feed.closing.borrow() {
        return Err(0);
    }
    tokio::select! {
        _ = feed.closing.changed() => Err(0),
        next = tokio::time::timeout(feed.tick, feed.rx.recv()) => match next {
            Err(_) => Ok(None),
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(RecvError::Lagged(n))) => Err(n),
            Ok(Err(RecvError::Closed)) => Err(0),
        },
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

/// Where a task stream is.
enum TaskStream {
    /// Send the current record first.
    Start(Feed),
    /// Follow the task.
    Follow(Follow),
    /// The final record was sent.
    Done,
}

/// What a stream that follows a task knows.
struct Follow {
    feed: Feed,
    /// With shared queues: the task may run on another instance, whose events do not come
    /// here, and a local attempt's end is not the task's (Redis decides on retries), so the
    /// stream reads the shared record every [`SHARED_TICK`], however busy this instance is.
    shared: bool,
    looked: Instant,
    /// The progress last sent, so one read from the record is not sent twice.
    progress: Option<Progress>,
}

impl Follow {
    fn new(feed: Feed, shared: bool, progress: Option<Progress>) -> Follow {
        Follow { feed, shared, looked: Instant::now(), progress }
    }

    /// Reads the shared record: its end, or progress not sent yet.
    async fn look(&mut self, pool: &PoolHandle, id: &TaskId) -> Option<(web::Bytes, bool)> {
        self.looked = Instant::now();
        let record = pool.lookup(id).await.ok()?;
        if record.status.is_final() {
            return Some((sse_message("result", &serde_json::to_value(&record).unwrap_or_default()), true));
        }
        let progress = record.progress.filter(|p| self.progress.as_ref() != Some(p))?;
        let chunk = progress_message(id, &progress, record.worker_id.as_deref());
        self.progress = Some(progress);
        Some((chunk, false))
    }
}

/// `GET /api/tasks/{id}/events`: the record now (`status`), then `progress` events, then the
/// final record (`result`), then the stream ends.
pub(super) async fn task_events(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = match task_id(path) {
        Ok(id) => id,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    // Subscribe before reading the record, so nothing between the two is missed.
    let rx = Feed::new(&state);
    if let Err(e) = state.pool.lookup(&id).await {
        return actix_web::ResponseError::error_response(&task_error(e, &id));
    }
    let pool = state.pool.clone();
    let body = stream::unfold((TaskStream::Start(rx), pool, id), |(phase, pool, id)| async move {
        match phase {
            TaskStream::Done => None,
            TaskStream::Start(rx) => {
                let record = pool.lookup(&id).await.ok()?;
                let done = record.status.is_final();
                let name = if done { "result" } else { "status" };
                let chunk = sse_message(name, &serde_json::to_value(&record).unwrap_or_default());
                let shared = pool.redis_status().is_some();
                let next = if done {
                    TaskStream::Done
                } else {
                    TaskStream::Follow(Follow::new(rx, shared, record.progress))
                };
                Some((Ok(chunk), (next, pool, id)))
            }
            TaskStream::Follow(mut follow) => loop {
                let next = next_event(&mut follow.feed).await;
                let ended_here = matches!(&next, Ok(Some(e)) if e.kind.task_id() == Some(id.as_str()) && ends_task(&e.kind));
                if follow.shared && (ended_here || follow.looked.elapsed() >= SHARED_TICK) {
                    if let Some((chunk, done)) = follow.look(&pool, &id).await {
                        let next = if done { TaskStream::Done } else { TaskStream::Follow(follow) };
                        return Some((Ok(chunk), (next, pool, id)));
                    }
                    if ended_here {
                        // Redis has not heard of the end yet: the next look will.
                        continue;
                    }
                }
                match next {
                    Ok(None) => {
                        let chunk = web::Bytes::from_static(b": keep-alive\n\n");
                        return Some((Ok(chunk), (TaskStream::Follow(follow), pool, id)));
                    }
                    Ok(Some(event)) if event.kind.task_id() == Some(id.as_str()) => {
                        if let EventKind::TaskProgress { progress, stage, .. } = &event.kind {
                            follow.progress = Some(Progress { progress: *progress, stage: stage.clone() });
                        }
                        if let Some(chunk) = task_chunk(&pool, &id, &event) {
                            let done = ends_task(&event.kind);
                            let next = if done { TaskStream::Done } else { TaskStream::Follow(follow) };
                            return Some((Ok(chunk), (next, pool, id)));
                        }
                    }
                    Ok(Some(_)) => {}
                    // Events were lost: the record says where the task is now.
                    Err(n) if n > 0 => {
                        return Some((Ok(web::Bytes::new()), (TaskStream::Start(follow.feed), pool, id)));
                    }
                    Err(_) => return None,
                }
            },
        }
    });
    sse_response(body)
}

fn progress_message(id: &TaskId, progress: &Progress, worker_id: Option<&str>) -> web::Bytes {
    sse_message(
        "progress",
        &json!({ "id": id, "progress": progress.progress, "stage": progress.stage, "worker_id": worker_id }),
    )
}

fn ends_task(kind: &EventKind) -> bool {
    match kind {
        EventKind::TaskCompleted { .. } => true,
        EventKind::TaskFailed { status, .. } => status.is_final(),
        _ => false,
    }
}

fn task_chunk(pool: &PoolHandle, id: &TaskId, event: &Event) -> Option<web::Bytes> {
    match &event.kind {
        EventKind::TaskProgress { progress, stage, worker_id, .. } => Some(progress_message(
            id,
            &Progress { progress: *progress, stage: stage.clone() },
            Some(worker_id),
        )),
        kind if ends_task(kind) => {
            let record = pool.task(id)?;
            Some(sse_message("result", &serde_json::to_value(&record).unwrap_or_default()))
        }
        EventKind::TaskAssigned { .. } | EventKind::TaskFailed { .. } => {
            let record = pool.task(id)?;
            (record.status != TaskStatus::Completed)
                .then(|| sse_message("status", &serde_json::to_value(&record).unwrap_or_default()))
        }
        _ => None,
    }
}
