//! Following one task: [`TaskWatch`], the one way to follow a task for every backend
//! (`TaskHandle`, `PoolHandle::wait` and the server's task stream all read it).
//!
//! A watch hears this instance's events for the task (progress, assignment, a retry), waits
//! for its end through the backend, and, where the task may run on another instance (a
//! shared backend), also reads its record every second for progress reported there.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::{AnyBackend, Backend};
use crate::error::Error;
use crate::events::{EventKind, EventReceiver};
use crate::task::{Progress, TaskId, TaskRecord};

/// With a shared backend, how often a watch reads the task's record.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What happened to a watched task.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "update", rename_all = "snake_case")]
pub enum TaskUpdate {
    /// Its record: the first update of a live task, and again when its status changed
    /// (assigned to a worker, back in the queue for a retry).
    Status(TaskRecord),
    /// A progress report, with the worker that sent it when known.
    Progress {
        /// The report.
        progress: Progress,
        /// The worker that sent it.
        worker_id: Option<String>,
    },
    /// Its final record: the last update, delivered exactly once.
    Ended(TaskRecord),
}

type End = Pin<Box<dyn Future<Output = Result<TaskRecord, Error>> + Send>>;

/// A stream of [`TaskUpdate`]s for one task, from [`PoolHandle::watch`](crate::PoolHandle::watch).
pub struct TaskWatch {
    id: TaskId,
    backend: AnyBackend,
    events: EventReceiver,
    end: End,
    /// The record read when the watch began, sent first.
    first: Option<TaskRecord>,
    /// The progress last delivered or read, so a report read from the record twice is
    /// delivered once.
    progress: Option<Progress>,
    /// With a shared backend: the next read of the record.
    look: Option<tokio::time::Interval>,
    done: bool,
}

impl TaskWatch {
    /// Starts watching: `events` must have been subscribed before `record` was read, so
    /// that nothing between the two is missed.
    pub(crate) fn new(backend: AnyBackend, events: EventReceiver, record: TaskRecord) -> TaskWatch {
        let id = record.id.clone();
        let waiting = backend.clone();
        let watched = id.clone();
        let end: End = Box::pin(async move { waiting.wait(&watched).await });
        let look = backend.shared().then(|| {
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + LOOK_EVERY, LOOK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        TaskWatch {
            id,
            backend,
            events,
            end,
            progress: record.progress.clone(),
            first: Some(record),
            look,
            done: false,
        }
    }

    /// The watched task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The next update; `None` after [`TaskUpdate::Ended`], or when the pool has stopped.
    pub async fn next(&mut self) -> Option<TaskUpdate> {
        if self.done {
            return None;
        }
        if let Some(record) = self.first.take() {
            return Some(self.deliver(record));
        }
        loop {
            tokio::select! {
                biased;
                end = &mut self.end => {
                    self.done = true;
                    return end.ok().map(TaskUpdate::Ended);
                }
                event = self.events.recv() => match event {
                    Ok(e) if e.kind.task_id() == Some(self.id.as_str()) => {
                        if let Some(update) = self.on_event(e.kind).await {
                            return Some(update);
                        }
                    }
                    Ok(_) => {}
                    // Events were lost: the record says where the task is now.
                    Err(RecvError::Lagged(_)) => {
                        if let Ok(Some(record)) = self.backend.record(&self.id).await
                            && !record.status.is_final()
                        {
                            return Some(TaskUpdate::Status(record));
                        }
                    }
                    Err(RecvError::Closed) => {
                        self.done = true;
                        return None;
                    }
                },
                _ = tick(&mut self.look) => {
                    if let Some(update) = self.read().await {
                        return Some(update);
                    }
                }
            }
        }
    }

    /// Waits for the task's end, skipping the updates before it.
    pub async fn ended(mut self) -> Result<TaskRecord, Error> {
        if self.done {
            return Err(Error::stopped());
        }
        if let Some(record) = self.first.take().filter(|r| r.status.is_final()) {
            return Ok(record);
        }
        (&mut self.end).await
    }

    /// An event of the watched task.
    async fn on_event(&mut self, kind: EventKind) -> Option<TaskUpdate> {
        match kind {
            // Every report heard is delivered; only reads of the record skip what was seen.
            EventKind::TaskProgress { progress, stage, worker_id, .. } => {
                let progress = Progress { progress, stage };
                self.progress = Some(progress.clone());
                Some(TaskUpdate::Progress { progress, worker_id: Some(worker_id) })
            }
            // The end comes from the backend: with a shared one, a local attempt's end may
            // be followed by a retry elsewhere.
            EventKind::TaskAssigned { .. } | EventKind::TaskFailed { .. } => {
                let record = self.backend.record(&self.id).await.ok()??;
                (!record.status.is_final()).then_some(TaskUpdate::Status(record))
            }
            _ => None,
        }
    }

    /// A read of the record (shared backends): its end, or progress not delivered yet.
    async fn read(&mut self) -> Option<TaskUpdate> {
        let record = self.backend.record(&self.id).await.ok()??;
        if record.status.is_final() {
            self.done = true;
            return Some(TaskUpdate::Ended(record));
        }
        let progress = record.progress.filter(|p| self.progress.as_ref() != Some(p))?;
        self.progress = Some(progress.clone());
        Some(TaskUpdate::Progress { progress, worker_id: record.worker_id })
    }

    /// The first update, from the record read when the watch began.
    fn deliver(&mut self, record: TaskRecord) -> TaskUpdate {
        if record.status.is_final() {
            self.done = true;
            TaskUpdate::Ended(record)
        } else {
            TaskUpdate::Status(record)
        }
    }
}

/// The next tick of `look`, or never without one.
async fn tick(look: &mut Option<tokio::time::Interval>) {
    match look {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}
