//! Following one task: [`TaskWatch`], the one way to follow a task for every backend
//! (`TaskHandle`, `PoolHandle::watch` and the server's task stream all read it).
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
use crate::task::{Progress, TaskId, TaskRecord, TaskStatus};

/// With a shared backend, how often a watch reads the task's record.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What happened to a watched task.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "update", rename_all = "snake_case")]
pub enum TaskUpdate {
    /// Its record: the first update of a live task, and again when its status changed
    /// (assigned to a worker, back in the queue for a retry; with a shared backend, also as
    /// a read of the record finds it, e.g. an attempt started on another instance).
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

/// The end of a task, as its backend tells it.
pub(crate) type End = Pin<Box<dyn Future<Output = Result<TaskRecord, Error>> + Send>>;

/// A stream of [`TaskUpdate`]s for one task, from [`PoolHandle::watch`](crate::PoolHandle::watch).
pub struct TaskWatch {
    id: TaskId,
    backend: AnyBackend,
    events: EventReceiver,
    end: End,
    /// What is to be delivered before anything else: the record read when the watch began,
    /// and at the end, the progress heard just before it, then the end.
    pending: std::collections::VecDeque<TaskUpdate>,
    /// The progress last delivered or read, so a report read from the record twice is
    /// delivered once.
    progress: Option<Progress>,
    /// With a shared backend: the next read of the record.
    look: Option<tokio::time::Interval>,
    /// The status and attempt count of the last record delivered, so a read of the record
    /// that finds another (an attempt elsewhere, a retry pending) delivers it once.
    seen: Option<(TaskStatus, u32)>,
    done: bool,
}

impl TaskWatch {
    /// Starts watching: `events` must have been subscribed before `record` was read, so
    /// that nothing between the two is missed.
    pub(crate) fn new(backend: AnyBackend, events: EventReceiver, record: TaskRecord) -> TaskWatch {
        let (waiting, watched) = (backend.clone(), record.id.clone());
        let end: End = Box::pin(async move { waiting.wait(&watched).await });
        let id = record.id.clone();
        TaskWatch::with_end(backend, events, id, Some(record), end)
    }

    /// Starts watching with `end` registered already (when the task was queued), from
    /// `record` when it could be read.
    pub(crate) fn with_end(
        backend: AnyBackend,
        events: EventReceiver,
        id: TaskId,
        record: Option<TaskRecord>,
        end: End,
    ) -> TaskWatch {
        let look = backend.shared().then(|| {
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + LOOK_EVERY, LOOK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        let mut watch = TaskWatch {
            id,
            backend,
            events,
            end,
            progress: record.as_ref().and_then(|r| r.progress.clone()),
            pending: Default::default(),
            look,
            seen: None,
            done: false,
        };
        if let Some(record) = record {
            let first = watch.deliver(record);
            watch.pending.push_back(first);
        }
        watch
    }

    /// The watched task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The next update; `None` after [`TaskUpdate::Ended`], or when the pool has stopped.
    pub async fn next(&mut self) -> Option<TaskUpdate> {
        if let Some(update) = self.pending.pop_front() {
            return Some(update);
        }
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                biased;
                end = &mut self.end => {
                    self.done = true;
                    return self.end_with(end.ok()?);
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
                            return Some(self.status(record));
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
        while let Some(update) = self.pending.pop_front() {
            if let TaskUpdate::Ended(record) = update {
                return Ok(record);
            }
        }
        if self.done {
            // The end was heard and failed (or the pool stopped): ask the backend again, for
            // the record or the reason.
            return self.backend.wait(&self.id).await;
        }
        (&mut self.end).await
    }

    /// The end, with the reports sent just before it delivered first: those already heard
    /// here, then the record's last one if it was not (another instance's).
    fn end_with(&mut self, record: TaskRecord) -> Option<TaskUpdate> {
        use tokio::sync::broadcast::error::TryRecvError;
        self.done = true;
        loop {
            match self.events.try_recv() {
                Ok(e) if e.kind.task_id() == Some(self.id.as_str()) => {
                    if let EventKind::TaskProgress { progress, stage, worker_id, .. } = e.kind {
                        let update = self.heard(Progress { progress, stage }, Some(worker_id));
                        self.pending.push_back(update);
                    }
                }
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if let Some(last) = record.progress.clone().filter(|p| self.progress.as_ref() != Some(p)) {
            let update = self.heard(last, record.worker_id.clone());
            self.pending.push_back(update);
        }
        self.pending.push_back(TaskUpdate::Ended(record));
        self.pending.pop_front()
    }

    /// A progress report to deliver, noted as the last one seen.
    fn heard(&mut self, progress: Progress, worker_id: Option<String>) -> TaskUpdate {
        self.progress = Some(progress.clone());
        TaskUpdate::Progress { progress, worker_id }
    }

    /// An event of the watched task.
    async fn on_event(&mut self, kind: EventKind) -> Option<TaskUpdate> {
        match kind {
            // Every report heard is delivered; only reads of the record skip what was seen.
            EventKind::TaskProgress { progress, stage, worker_id, .. } => {
                Some(self.heard(Progress { progress, stage }, Some(worker_id)))
            }
            // The end comes from the backend: with a shared one, a local attempt's end may
            // be followed by a retry elsewhere, and its record says so only once the verdict
            // is written (the next read of the record sees it).
            EventKind::TaskFailed { .. } if self.backend.shared() => None,
            EventKind::TaskAssigned { .. } | EventKind::TaskFailed { .. } => {
                let record = self.backend.record(&self.id).await.ok()??;
                (!record.status.is_final()).then(|| self.status(record))
            }
            _ => None,
        }
    }

    /// A read of the record (shared backends): its end, a status not delivered yet (an
    /// attempt started or failed on another instance), or progress not delivered yet.
    async fn read(&mut self) -> Option<TaskUpdate> {
        let record = self.backend.record(&self.id).await.ok()??;
        if record.status.is_final() {
            return self.end_with(record);
        }
        if self.seen != Some((record.status, record.attempts)) {
            // The status first; a report it holds that was not delivered still comes as one.
            let report = record.progress.clone().filter(|p| self.progress.as_ref() != Some(p));
            let worker_id = record.worker_id.clone();
            let status = self.status(record);
            if let Some(report) = report {
                let update = self.heard(report, worker_id);
                self.pending.push_back(update);
            }
            return Some(status);
        }
        let progress = record.progress.filter(|p| self.progress.as_ref() != Some(p))?;
        Some(self.heard(progress, record.worker_id))
    }

    /// The first update, from the record read when the watch began.
    fn deliver(&mut self, record: TaskRecord) -> TaskUpdate {
        if record.status.is_final() {
            self.done = true;
            TaskUpdate::Ended(record)
        } else {
            self.status(record)
        }
    }

    /// A record to deliver as a status, noted as the last one seen.
    fn status(&mut self, record: TaskRecord) -> TaskUpdate {
        self.seen = Some((record.status, record.attempts));
        TaskUpdate::Status(record)
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
