//! The plain data the pools answer with: figures, queues, workers, what a shutdown did.

use std::collections::BTreeMap;

use serde::Serialize;

/// Figures of the whole pool (the contract's `/stats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PoolStats {
    /// Live workers.
    pub total: usize,
    /// Idle workers.
    pub available: usize,
    /// Busy workers.
    pub busy: usize,
    /// Tasks finished with a result.
    pub tasks_completed: u64,
    /// Tasks that ended without one.
    pub tasks_failed: u64,
    /// Mean run time of completed tasks.
    pub avg_task_ms: f64,
    /// Per type.
    pub by_type: BTreeMap<String, TypeStats>,
    /// The drained GPUs (gone from the sample, or answering NVML with errors), by UUID, and
    /// why each is: nothing is placed on them until a sample reads them again.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub drained_gpus: BTreeMap<String, String>,
}

/// Scale by hand: add or remove `count` workers of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleAction {
    /// Start more workers.
    Up(usize),
    /// Retire workers (idle ones first; busy ones after their task).
    Down(usize),
}

/// What a manual scale answers.
///
/// A scale-up starts what the GPUs have room for now (`started`); the rest (`waiting`) wait
/// for room as demand-driven starts do, start as soon as another worker's exit leaves it,
/// and are the first a scale-down takes back. `gpu_wait` says why they wait, as
/// `PoolHandle::gpu_wait` does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Scaled {
    /// The workers the type will have: those alive, starting or waiting to start.
    pub workers: usize,
    /// Workers this request started now (0 for a scale-down), owed ones of an earlier
    /// scale-up included.
    pub started: usize,
    /// Workers the type is still owed by manual scale-ups, waiting for GPU room.
    pub waiting: usize,
    /// Why they wait (`waiting for GPU room: …`), while some do.
    pub gpu_wait: Option<String>,
}

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
    /// Median run time of the latest 512 completed tasks (`None` before the first).
    pub p50_task_ms: Option<u64>,
    /// 95th percentile of the same run times.
    pub p95_task_ms: Option<u64>,
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
    /// The position in the queue order of the first task listed (0 for the head).
    pub offset: usize,
    /// The waiting tasks listed, in queue order from `offset`.
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
    /// The UUIDs of the GPUs it was placed on (its `CUDA_VISIBLE_DEVICES`); empty for a type
    /// that needs none.
    pub gpus: Vec<String>,
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
