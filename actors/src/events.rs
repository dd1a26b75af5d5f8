//! Pool events (the contract's §6 names) and their in-process fan-out.
//!
//! Events go through a bounded `tokio::sync::broadcast` channel: any number of subscribers,
//! none of which can slow the pool down. A subscriber that falls more than
//! [`EVENT_BUFFER`] events behind loses the oldest ones and is told how many it lost.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::task::{TaskStatus, now_ms};

/// Events buffered per subscriber before the oldest are dropped for it.
pub const EVENT_BUFFER: usize = 8192;

/// One pool event, stamped with the time it happened.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// When (Unix milliseconds).
    pub timestamp: u64,
    /// What happened; serialised as `"event": name, "data": {...}`.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum EventKind {
    /// A worker is starting (its process is spawned).
    WorkerCreated { worker_id: String, task_type: String, pid: Option<u32> },
    /// A worker answered its first ping and takes tasks.
    WorkerReady { worker_id: String, task_type: String },
    /// A worker misbehaved (could not start, wrote an invalid line, missed a ping).
    WorkerError { worker_id: String, task_type: String, error: String },
    /// A worker is gone; `reason` says why (`exited`, `crashed`, `timeout`, `cancelled`,
    /// `recycled`, `idle`, `shutdown`, `scaled_down`, `restart`).
    WorkerExited { worker_id: String, task_type: String, reason: String, code: Option<i32> },
    /// A worker's health changed.
    WorkerHealth { worker_id: String, task_type: String, healthy: bool, detail: String },
    /// A task was handed to a worker.
    TaskAssigned { task_id: String, task_type: String, worker_id: String, attempt: u32, wait_ms: u64 },
    /// A worker reported progress.
    TaskProgress {
        task_id: String,
        task_type: String,
        worker_id: String,
        progress: u8,
        stage: Option<String>,
    },
    /// A task finished with a result.
    TaskCompleted { task_id: String, task_type: String, worker_id: String, duration_ms: u64 },
    /// An attempt failed; `status` is where the task is now (`queued` when it will be retried).
    TaskFailed {
        task_id: String,
        task_type: String,
        worker_id: Option<String>,
        error: String,
        status: TaskStatus,
    },
    /// A task went back to its queue without spending an attempt; `reason` says why
    /// (`shutdown`: with shared queues, what a stopping instance still held).
    TaskRequeued { task_id: String, task_type: String, worker_id: Option<String>, reason: String },
    /// A type gained workers.
    ScaleUp { task_type: String, workers: usize, reason: String },
    /// A type lost workers.
    ScaleDown { task_type: String, workers: usize, reason: String },
    /// A periodic summary of the pool.
    PoolStatus { total: usize, busy: usize, queued: usize },
    /// Workers of a type failed to start `failures` times in a row: the next try waits
    /// `retry_in_ms`. With `gave_up`, the type's waiting tasks failed with `error` and new
    /// ones are refused until a worker starts again.
    StartBackoff { task_type: String, failures: u32, retry_in_ms: u64, gave_up: bool, error: String },
}

impl EventKind {
    /// The contract's name of the event.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::WorkerCreated { .. } => "worker_created",
            EventKind::WorkerReady { .. } => "worker_ready",
            EventKind::WorkerError { .. } => "worker_error",
            EventKind::WorkerExited { .. } => "worker_exited",
            EventKind::WorkerHealth { .. } => "worker_health",
            EventKind::TaskAssigned { .. } => "task_assigned",
            EventKind::TaskProgress { .. } => "task_progress",
            EventKind::TaskCompleted { .. } => "task_completed",
            EventKind::TaskFailed { .. } => "task_failed",
            EventKind::TaskRequeued { .. } => "task_requeued",
            EventKind::ScaleUp { .. } => "scale_up",
            EventKind::ScaleDown { .. } => "scale_down",
            EventKind::PoolStatus { .. } => "pool_status",
            EventKind::StartBackoff { .. } => "start_backoff",
        }
    }

    /// The task this event is about, if any.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            EventKind::TaskAssigned { task_id, .. }
            | EventKind::TaskProgress { task_id, .. }
            | EventKind::TaskCompleted { task_id, .. }
            | EventKind::TaskFailed { task_id, .. }
            | EventKind::TaskRequeued { task_id, .. } => Some(task_id),
            _ => None,
        }
    }
}

/// A subscription to pool events; see [`crate::PoolHandle::subscribe`].
pub type EventReceiver = broadcast::Receiver<Event>;

/// The sending side, shared by every actor of one tree.
#[derive(Clone, Debug)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    pub(crate) fn new() -> EventBus {
        EventBus { tx: broadcast::channel(EVENT_BUFFER).0 }
    }

    /// Whether anyone listens; callers skip building events nobody reads.
    pub(crate) fn active(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes an event (built only when someone listens).
    pub(crate) fn emit(&self, kind: impl FnOnce() -> EventKind) {
        if self.active() {
            let event = Event { timestamp: now_ms(), kind: kind() };
            log::debug!("event {}: {:?}", event.kind.name(), event.kind);
            // No receiver left between the check and the send is fine: the event has no reader.
            let _ = self.tx.send(event);
        }
    }

    pub(crate) fn subscribe(&self) -> EventReceiver {
        self.tx.subscribe()
    }
}
