//! Every actor message and its result type: the whole actor protocol on one page.
//!
//! | to | message | from | answer |
//! |---|---|---|---|
//! | `TypePool` | [`Enqueue`] | handle | the task id, or the refused request |
//! | `TypePool` | [`Execute`] (through the pool's [`Intake`], woken by [`DrainIntake`]) | handle | (the final record or the refusal, on its channel) |
//! | `TypePool` | [`Watch`] | handle | whether the task was still live (its record follows on the channel) |
//! | `TypePool` | [`CancelTask`] | handle | the record after cancelling |
//! | `TypePool` | [`GetTypeStats`], [`GetQueue`], [`GetWorkers`], [`GetDeadLetters`] | handle, supervisor | figures |
//! | `TypePool` | [`Requeue`] | handle | the id, queued again |
//! | `TypePool` | [`Scale`], [`RestartWorker`] | handle | workers now / done |
//! | `TypePool` | [`Drain`] | supervisor | what the drain did, once every worker has exited |
//! | `TypePool` | [`Poke`], [`ReleaseIdle`] | supervisor, resource monitor | (none) |
//! | `TypePool` | [`MemoryExceeded`], [`GpuDrained`], [`UsageSampled`] | resource monitor | (none) |
//! | `TypePool` | [`HealthCheck`] | health monitor | (none) |
//! | `TypePool` | [`AutoScale`] | scaling monitor | (none) |
//! | `TypePool` | [`WorkerReport`] | a worker or its I/O tasks | (none) |
//! | `Worker` | [`Run`], [`Ping`], [`StopWorker`] | its pool | (none) |
//! | `Supervisor` | [`SlotWanted`], [`SlotFreed`] | a pool | (none) |
//! | `Supervisor` | [`Shutdown`] | handle | the summed [`ShutdownReport`] |
//! | monitors | [`StopMonitor`] | supervisor | (none) |

use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use serde_json::Value;
use tokio::sync::oneshot;

pub(crate) use crate::answers::{
    QueueInfo, QueuedTask, ScaleAction, Scaled, ShutdownReport, TypeStats, WorkerInfo,
};
use crate::error::{Error, SubmitError};
use crate::policy::limits::Exceeded;
use crate::policy::retry::Verdict;
use crate::task::{TaskId, TaskRecord, TaskRequest};
use crate::usage::WorkerSample;

/// A worker's id: `<type>-<n>`, never reused within one tree.
pub type WorkerId = Arc<str>;

// ===== handle -> pool =====

/// Queue a task; `waiter` gets the final record.
#[derive(Message)]
#[rtype(result = "Result<TaskId, SubmitError>")]
pub(crate) struct Enqueue {
    pub(crate) id: TaskId,
    pub(crate) request: TaskRequest,
    pub(crate) waiter: Option<Waiter>,
    /// Attempts the task already had elsewhere (another instance, through Redis): its
    /// attempt numbers here continue from there.
    pub(crate) prior_attempts: u32,
}

/// Queue a task and answer once, with the final record or the refusal: one message and one
/// reply per task, the fast path of `PoolHandle::execute`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Execute {
    pub(crate) id: TaskId,
    pub(crate) request: TaskRequest,
    pub(crate) reply: Reply,
    /// See [`Enqueue::prior_attempts`].
    pub(crate) prior_attempts: u32,
}

/// Where an [`Execute`] call is answered.
pub(crate) enum Reply {
    /// With the final record (the in-process backend's tasks).
    Record(oneshot::Sender<Result<Arc<TaskRecord>, SubmitError>>),
    /// With how the one attempt it ran ended and what comes next (a durable backend's
    /// tasks: the backend carries the verdict out).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Attempt(oneshot::Sender<Result<Settled, SubmitError>>),
}

/// How a task left its pool: its record, and the verdict on it.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Settled {
    pub(crate) record: Arc<TaskRecord>,
    /// `End(status)` for an end (a result, too); `Retry` and `Requeue` only with a durable
    /// backend, which carries them out.
    pub(crate) verdict: Verdict,
}

/// Process the calls waiting in the pool's [`Intake`].
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DrainIntake;

/// Who waits for a task's final record.
pub(crate) enum Waiter {
    /// A watcher (`submit`, `wait`).
    Record(oneshot::Sender<Arc<TaskRecord>>),
    /// An `execute` call.
    Execute(Reply),
}

impl Waiter {
    /// Answers with the record the task left its pool with, and the verdict on it.
    pub(crate) fn send(self, record: Arc<TaskRecord>, verdict: Verdict) {
        // A waiter that went away no longer needs the record.
        let _ = match self {
            Waiter::Record(tx) => tx.send(record).map_err(drop),
            Waiter::Execute(Reply::Record(tx)) => tx.send(Ok(record)).map_err(drop),
            Waiter::Execute(Reply::Attempt(tx)) => tx.send(Ok(Settled { record, verdict })).map_err(drop),
        };
    }

    /// Answers a refused call with the refusal (a watcher has nothing to hear).
    pub(crate) fn refuse(self, e: SubmitError) {
        let _ = match self {
            Waiter::Record(_) => Ok(()),
            Waiter::Execute(Reply::Record(tx)) => tx.send(Err(e)).map_err(drop),
            Waiter::Execute(Reply::Attempt(tx)) => tx.send(Err(e)).map_err(drop),
        };
    }
}

/// Send the final record of a live task to `waiter`; answers false when the task is not live.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct Watch(pub(crate) TaskId, pub(crate) oneshot::Sender<Arc<TaskRecord>>);

/// Cancel a task: a waiting one leaves its queue, a running one's worker is killed.
#[derive(Message)]
#[rtype(result = "Result<TaskRecord, Error>")]
pub(crate) struct CancelTask(pub(crate) TaskId);

/// Figures of one type.
#[derive(Message)]
#[rtype(result = "TypeStats")]
pub(crate) struct GetTypeStats;

/// The waiting tasks of one type at the positions `range` of the queue order.
#[derive(Message)]
#[rtype(result = "QueueInfo")]
pub(crate) struct GetQueue {
    pub(crate) range: std::ops::Range<usize>,
}

/// The workers of one type.
#[derive(Message)]
#[rtype(result = "Vec<WorkerInfo>")]
pub(crate) struct GetWorkers;

/// The dead-letter list of one type, oldest first.
#[derive(Message)]
#[rtype(result = "Vec<TaskRecord>")]
pub(crate) struct GetDeadLetters;

/// Queue a dead-lettered task again with fresh attempts.
#[derive(Message)]
#[rtype(result = "Result<TaskId, Error>")]
pub(crate) struct Requeue(pub(crate) TaskId);

/// Scale by hand.
#[derive(Message)]
#[rtype(result = "Result<Scaled, Error>")]
pub(crate) struct Scale(pub(crate) ScaleAction);

/// Replace one worker with a fresh one; its running task goes back to the head of the queue
/// without spending an attempt.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub(crate) struct RestartWorker(pub(crate) String);

/// Stop taking tasks, fail waiting ones, let running ones finish within `timeout`, stop workers.
#[derive(Message)]
#[rtype(result = "ShutdownReport")]
pub(crate) struct Drain {
    pub(crate) timeout: Duration,
}

// ===== supervisor <-> pool =====

/// A worker slot was freed somewhere: try to start the workers you wanted.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Poke;

/// Another type is starved for worker slots: give back an idle worker if you can.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReleaseIdle;

/// A pool could not start a worker because every slot of `max_workers` is taken.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SlotWanted;

/// A pool gave a worker slot back.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SlotFreed;

/// A worker's resident memory passed its type's `memory_limit_mb`, or its GPU memory its
/// `gpu_memory_mb`: kill and replace it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct MemoryExceeded {
    pub(crate) worker: String,
    pub(crate) over: Exceeded,
}

/// A GPU a worker was placed on is drained (`gpu`, for `why`): stop the worker and run its
/// task elsewhere, without spending an attempt. Sent after each sample while the worker
/// lives.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct GpuDrained {
    pub(crate) worker: String,
    pub(crate) gpu: String,
    pub(crate) why: String,
}

/// One resource sample of a pool's worker processes, taken at `taken` (on the pool's clock,
/// before any figure was read): the pool folds each into its worker's running attempt. One
/// message per pool per sample.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct UsageSampled {
    pub(crate) taken: tokio::time::Instant,
    pub(crate) workers: Vec<(WorkerId, WorkerSample)>,
}

/// Health check: ping idle workers, replace those that did not answer the last ping within
/// `ping_timeout`, and those whose task ran far past its timeout.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct HealthCheck {
    pub(crate) ping_timeout: Duration,
}

/// Scaling tick: apply the scaling policy to the type.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AutoScale;

/// Stop a timer actor.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopMonitor;

/// Drain every pool and stop the tree.
#[derive(Message)]
#[rtype(result = "ShutdownReport")]
pub(crate) struct Shutdown;

// ===== pool <-> worker =====

/// Run one task attempt.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Run {
    pub(crate) id: TaskId,
    pub(crate) data: Arc<Value>,
    pub(crate) attempt: u32,
}

/// Health check.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Ping(pub(crate) u64);

/// Stop: `kill` at once, or close the worker's input and kill it after a grace period.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopWorker {
    pub(crate) kill: bool,
    /// With `kill`: `SIGKILL` at once instead of `SIGTERM` first (a worker over its memory
    /// limit, or one holding tasks sent ahead that must not start).
    pub(crate) at_once: bool,
}

/// What a worker (or the I/O tasks of its process) tells its pool.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerReport {
    pub(crate) worker: WorkerId,
    pub(crate) report: Report,
}

#[derive(Debug)]
pub(crate) enum Report {
    Spawned {
        pid: Option<u32>,
    },
    SpawnFailed(String),
    Pong(u64),
    Progress {
        id: TaskId,
        progress: u8,
        stage: Option<String>,
    },
    /// An in-process handler left progress in its slot's buffer.
    ProgressReady,
    Done {
        id: TaskId,
        outcome: Result<Value, crate::executor::TaskError>,
    },
    /// The task's code panicked (in-process) — treated like a crash.
    Crashed {
        id: TaskId,
        message: String,
    },
    Invalid(String),
    /// Nothing: sent with `send` by a worker's reader after many lines, to wait until the
    /// pool has taken in what came before.
    Sync,
    /// The worker wrote a stdout line longer than its type's `max_output_line_mb`; it is
    /// being killed.
    OutputTooLarge {
        limit_bytes: usize,
    },
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}
