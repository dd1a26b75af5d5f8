//! Backends: where tasks wait, how their attempts are leased, and where their records live.
//!
//! One contract, two backends:
//! - [`MemoryBackend`](memory::MemoryBackend), the embedded default: each type's queue
//!   ([`memory::queue::TaskQueue`]) and dead letters are owned by its `TypePool` on this
//!   instance, and records live in the task store; nothing outlives the process.
//! - [`RedisBackend`](redis::RedisBackend): the queues, records and dead letters live in Redis,
//!   where every instance sees them; an instance takes tasks when its pools have room and
//!   holds each under a lease (`docs/REDIS.md`).
//!
//! What every backend promises (the contract suite in `tests/backends.rs` runs the same
//! checks against both):
//! - **Order.** Ready tasks of a type are taken by priority (higher first), then first come,
//!   first served. A delayed task, or one backing off before a retry, is not ready until its
//!   time has passed.
//! - **At least once.** A taken task is run until its outcome is recorded. A task whose
//!   worker (or instance) is lost is run again, as a new attempt; a task this instance cannot
//!   run (shutdown, no worker can start) goes back to the head of its queue without spending
//!   an attempt. A result is recorded only by the attempt that holds the task, so a lost
//!   attempt never records a second outcome.
//! - **Final.** A task ends once, with one of the final statuses (`completed`, `failed`,
//!   `dead`, `timed_out`, `cancelled`); `wait` and `watch` deliver that final record exactly
//!   once. `dead` and `timed_out` tasks go to their type's dead-letter list, from which
//!   `requeue` queues them again with fresh attempts (a task that is not there is a conflict).
//! - **One rule for retries.** How a failed attempt goes on (retry after a backoff, end, or
//!   re-queue) is `policy::retry::RetryPolicy`, for both backends; the pool that ran the
//!   attempt decides (for an attempt whose instance was lost, the instance that reaped its
//!   lease), and the backend carries the verdict out.
//!
//! The executor's side is one shape for both: a type's `TypePool` always takes its next task
//! from the `TaskQueue` it owns (`memory::queue`: `take`, `hold`, `put_back`, `delay`,
//! `remove`) as workers free up, runs one attempt, and carries out the retry rule's verdict.
//! With memory that queue is the backend's queue itself. With Redis it holds only what this
//! instance leased: a feeder per type takes leases (`TAKE`) while the pool has room, hands
//! each over as one attempt (`LocalPools::run_attempt`), renews them while they run, and
//! writes the verdict the pool answers with (`FINISH`).

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;

use crate::answers::QueueInfo;
use crate::error::{Error, SubmitError};
use crate::task::{TaskId, TaskRecord, TaskRequest};

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
pub(crate) mod status;
pub(crate) mod watch;

pub use status::{InstanceInfo, SharedStatus};
pub use watch::{TaskUpdate, TaskWatch};

/// The operations of a backend seen from a producer or an observer of tasks.
pub(crate) trait Backend {
    /// Whether a task of this type is accepted now (`Unavailable` with the reason when not).
    fn availability(&self, task_type: &str) -> Result<(), Error>;

    /// Queues a task under `id`; a refusal hands the request back.
    fn enqueue(
        &self,
        id: TaskId,
        request: TaskRequest,
    ) -> impl Future<Output = Result<TaskId, SubmitError>> + Send;

    /// Queues a task under `id` with a watcher of its end registered with it, so that the
    /// end cannot be missed (nor its record dropped before it is heard).
    fn enqueue_watched(
        &self,
        id: TaskId,
        request: TaskRequest,
    ) -> impl Future<Output = Result<watch::End, SubmitError>> + Send;

    /// Queues a task and waits for its final record.
    fn execute(&self, request: TaskRequest) -> impl Future<Output = Result<TaskRecord, Error>> + Send;

    /// The record of a task, if the backend still keeps it.
    fn record(&self, id: &TaskId) -> impl Future<Output = Result<Option<TaskRecord>, Error>> + Send;

    /// Waits for a task to end, whoever runs it.
    fn wait(&self, id: &TaskId) -> impl Future<Output = Result<TaskRecord, Error>> + Send;

    /// Cancels a waiting or running task, wherever it runs.
    fn cancel(&self, id: &TaskId) -> impl Future<Output = Result<TaskRecord, Error>> + Send;

    /// Queues a dead-lettered task again, with fresh attempts and the same id.
    fn requeue(&self, id: &TaskId) -> impl Future<Output = Result<TaskId, Error>> + Send;

    /// The waiting tasks of a type at the positions `range` of the queue order (ready tasks
    /// first, then delayed ones), with the counts of the whole queue.
    fn queue(
        &self,
        task_type: &str,
        range: Range<usize>,
    ) -> impl Future<Output = Result<QueueInfo, Error>> + Send;

    /// The dead-letter list of a type, oldest first.
    fn dead_letters(&self, task_type: &str) -> impl Future<Output = Result<Vec<TaskRecord>, Error>> + Send;

    /// The waiting tasks per type, when the backend counts them apart from the pools.
    fn queued_counts(&self) -> impl Future<Output = Option<BTreeMap<String, usize>>> + Send;

    /// Whether a task's progress and end may happen where this instance's events do not
    /// reach (another instance): then whoever follows a task also reads its record.
    fn shared(&self) -> bool;

    /// Why the backend cannot be reached now, if so (a memory backend always can).
    fn down(&self) -> Option<String>;

    /// What a shared backend reports of itself; `None` for one that is not shared.
    fn status(&self) -> impl Future<Output = Option<SharedStatus>> + Send;

    /// Takes no more tasks for this instance (the start of a shutdown).
    fn stop_taking(&self);

    /// After the drain: waits (a bounded time) until what this instance held is written.
    fn release(&self) -> impl Future<Output = ()> + Send;
}

/// The backend of one tree: static dispatch, since `execute` is the hot path.
#[derive(Clone)]
pub(crate) enum AnyBackend {
    Memory(memory::MemoryBackend),
    #[cfg(feature = "redis")]
    Redis(redis::RedisBackend),
}

macro_rules! delegate {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Memory($b) => $call,
            #[cfg(feature = "redis")]
            AnyBackend::Redis($b) => $call,
        }
    };
}

impl Backend for AnyBackend {
    fn availability(&self, task_type: &str) -> Result<(), Error> {
        delegate!(self, b => b.availability(task_type))
    }

    async fn enqueue(&self, id: TaskId, request: TaskRequest) -> Result<TaskId, SubmitError> {
        delegate!(self, b => b.enqueue(id, request).await)
    }

    async fn enqueue_watched(&self, id: TaskId, request: TaskRequest) -> Result<watch::End, SubmitError> {
        delegate!(self, b => b.enqueue_watched(id, request).await)
    }

    async fn execute(&self, request: TaskRequest) -> Result<TaskRecord, Error> {
        delegate!(self, b => b.execute(request).await)
    }

    async fn record(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        delegate!(self, b => b.record(id).await)
    }

    async fn wait(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        delegate!(self, b => b.wait(id).await)
    }

    async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        delegate!(self, b => b.cancel(id).await)
    }

    async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        delegate!(self, b => b.requeue(id).await)
    }

    async fn queue(&self, task_type: &str, range: Range<usize>) -> Result<QueueInfo, Error> {
        delegate!(self, b => b.queue(task_type, range).await)
    }

    async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        delegate!(self, b => b.dead_letters(task_type).await)
    }

    async fn queued_counts(&self) -> Option<BTreeMap<String, usize>> {
        delegate!(self, b => b.queued_counts().await)
    }

    fn shared(&self) -> bool {
        delegate!(self, b => b.shared())
    }

    fn down(&self) -> Option<String> {
        delegate!(self, b => b.down())
    }

    async fn status(&self) -> Option<SharedStatus> {
        delegate!(self, b => b.status().await)
    }

    fn stop_taking(&self) {
        delegate!(self, b => b.stop_taking())
    }

    async fn release(&self) {
        delegate!(self, b => b.release().await)
    }
}
