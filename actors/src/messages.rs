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
//! | `TypePool` | [`MemoryExceeded`] | resource monitor | (none) |
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
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::{Error, SubmitError};
use crate::task::{TaskId, TaskRecord, TaskRequest};

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
    pub(crate) reply: oneshot::Sender<Result<Arc<TaskRecord>, SubmitError>>,
    /// See [`Enqueue::prior_attempts`].
    pub(crate) prior_attempts: u32,
}

/// The `execute` calls waiting for a pool: callers on any thread push here, and only the
/// first push after a drain sends the pool a [`DrainIntake`] message, so a burst of calls
/// costs the pool one mailbox message and one wake-up instead of one each.
#[derive(Default)]
pub(crate) struct Intake {
    /// The calls, and whether the pool is gone (then nothing more is queued).
    queue: std::sync::Mutex<(Vec<Execute>, bool)>,
    scheduled: std::sync::atomic::AtomicBool,
}

impl Intake {
    /// Queues a call; says whether the pool must be told. A call to a pool that is gone is
    /// dropped, which answers its caller "stopped".
    pub(crate) fn push(&self, call: Execute) -> Result<bool, PoolGone> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.1 {
            return Err(PoolGone);
        }
        queue.0.push(call);
        Ok(!self.scheduled.swap(true, std::sync::atomic::Ordering::AcqRel))
    }

    /// Takes every queued call into `calls` (empty), whose buffer the intake keeps for the
    /// next burst. The flag is cleared first, so a call pushed after the take schedules
    /// another drain.
    pub(crate) fn take_into(&self, calls: &mut Vec<Execute>) {
        self.scheduled.store(false, std::sync::atomic::Ordering::Release);
        std::mem::swap(&mut self.queue.lock().unwrap_or_else(|e| e.into_inner()).0, calls);
    }

    /// The pool is gone: queued calls are dropped (their callers hear "stopped") and later
    /// ones are handed back.
    pub(crate) fn close(&self) {
        let calls = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.1 = true;
            std::mem::take(&mut queue.0)
        };
        drop(calls);
    }
}

/// The pool of an [`Intake`] has stopped.
#[derive(Debug)]
pub(crate) struct PoolGone;

/// Process the calls waiting in the pool's [`Intake`].
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DrainIntake;

/// Who waits for a task's final record.
pub(crate) enum Waiter {
    /// A watcher (`submit`, `wait`).
    Record(oneshot::Sender<Arc<TaskRecord>>),
    /// An `execute` call.
    Execute(oneshot::Sender<Result<Arc<TaskRecord>, SubmitError>>),
}

impl Waiter {
    pub(crate) fn send(self, record: Arc<TaskRecord>) {
        // A waiter that went away no longer needs the record.
        let _ = match self {
            Waiter::Record(tx) => tx.send(record).map_err(drop),
            Waiter::Execute(tx) => tx.send(Ok(record)).map_err(drop),
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

/// The waiting tasks of one type, in queue order, at most `limit` of them.
#[derive(Message)]
#[rtype(result = "QueueInfo")]
pub(crate) struct GetQueue {
    pub(crate) limit: usize,
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
#[rtype(result = "Result<usize, Error>")]
pub(crate) struct Scale {
    pub(crate) up: bool,
    pub(crate) count: usize,
}

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

/// A worker's resident memory passed its type's `memory_limit_mb`: kill and replace it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct MemoryExceeded {
    pub(crate) worker: String,
    pub(crate) rss_bytes: u64,
    pub(crate) limit_mb: u64,
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

// ===== answers =====

/// Figures of one type (the contract's `by_type` entry).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TypeStats {
    /// Live workers (starting, idle or busy).
    pub total: usize,
    /// Idle workers.
    pub available: usize,
    /// Workers running a task.
    pub busy: usize,
    /// Tasks waiting to run (queued, delayed or backing off).
    pub queued: usize,
    /// Tasks finished with a result.
    pub tasks_completed: u64,
    /// Tasks that ended without one (failed, dead, timed out).
    pub tasks_failed: u64,
    /// Mean run time of completed tasks.
    pub avg_task_ms: f64,
    /// Tasks ready to run now, in the priority queue.
    pub ready: usize,
    /// How long the oldest ready task has waited.
    pub oldest_wait_ms: u64,
    /// Entries in the dead-letter list.
    pub dead_letters: usize,
    /// Tasks finished in the health window (the last five minutes).
    pub recent_finished: u64,
    /// Of those, tasks that ended without a result.
    pub recent_failed: u64,
    /// Workers replaced in the health window (crashes, timeouts, memory, no pong, …).
    pub recent_restarts: u64,
    /// Why no worker can start now (failed starts, CPU threshold or memory), if so.
    pub start_blocked: Option<String>,
    /// Workers that failed to start, in a row (0 once one starts).
    pub start_failures: u32,
    /// The type gave up starting workers (`max_start_failures` in a row): it takes no tasks
    /// until a worker starts again.
    pub cannot_start: bool,
}

/// The waiting tasks of one type (the contract's `/queues` entry).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueInfo {
    /// Tasks waiting: ready, delayed or backing off before a retry.
    pub length: usize,
    /// Of those, ready to run now.
    pub ready: usize,
    /// How long the oldest ready task has waited.
    pub oldest_wait_ms: u64,
    /// The first waiting tasks in queue order.
    pub tasks: Vec<QueuedTask>,
}

/// One waiting task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueuedTask {
    /// Its id.
    pub id: String,
    /// Its priority.
    pub priority: i32,
    /// `ready` (in the priority queue), `sent` (in a busy worker's pipe, by prefetch) or
    /// `waiting` (delay or retry backoff).
    pub state: &'static str,
    /// Attempts made so far.
    pub attempts: u32,
    /// Time since it became ready (or was submitted, while waiting).
    pub waited_ms: u64,
}

/// What one worker is doing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerInfo {
    /// Its id.
    pub id: String,
    /// Its type.
    pub task_type: String,
    /// Its process id (process executor).
    pub pid: Option<u32>,
    /// `starting`, `idle`, `busy` or `stopping`.
    pub state: &'static str,
    /// The task it runs.
    pub task_id: Option<String>,
    /// Tasks it has finished.
    pub tasks_done: u64,
    /// How long it has lived.
    pub uptime_ms: u64,
}

/// What a shutdown did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Running tasks that finished during the grace period.
    pub finished_in_grace: usize,
    /// Running tasks failed with reason `shutdown` when the grace period ran out.
    pub failed_running: usize,
    /// Waiting tasks failed with reason `shutdown`.
    pub failed_waiting: usize,
}

impl ShutdownReport {
    pub(crate) fn add(&mut self, other: &ShutdownReport) {
        self.finished_in_grace += other.finished_in_grace;
        self.failed_running += other.failed_running;
        self.failed_waiting += other.failed_waiting;
    }
}
