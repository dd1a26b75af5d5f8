//! The public entry point: [`PoolBuilder`] → [`PoolBuilder::start`] → [`PoolHandle`].
//!
//! **API Boundary:** callers see the builder, the handle, [`TaskHandle`] and [`TaskWatch`];
//! no actor address leaves this crate. The handle is cheap to clone and usable from any
//! thread or runtime. It holds one backend (`backend/`) and this instance's pools
//! (`LocalPools`): tasks are queued, looked up, followed and cancelled through the backend;
//! workers are listed, scaled and restarted on the pools.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::Addr;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::answers::{PoolStats, QueueInfo, ScaleAction, Scaled, ShutdownReport, WorkerInfo};
use crate::backend::{AnyBackend, Backend, SharedStatus, TaskWatch};
use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind, SubmitError};
use crate::events::EventReceiver;
use crate::local::LocalPools;
use crate::messages::Shutdown;
use crate::metrics::PoolMetrics;
use crate::resources::ResourceSnapshot;
use crate::shared::StartFailures;
use crate::supervisor::Supervisor;
use crate::task::{TaskId, TaskRecord, TaskRequest, TaskStatus};

mod builder;
mod task;

pub use builder::PoolBuilder;
pub use task::TaskHandle;

struct Inner {
    /// Set when `shutdown` begins: from then on the handle refuses work itself, handing
    /// requests back, instead of sending them to pools that are stopping.
    closing: AtomicBool,
    supervisor: Addr<Supervisor>,
    local: Arc<LocalPools>,
    backend: AnyBackend,
    /// The system this handle started (and stops at shutdown), if it started one.
    system: Option<actix_rt::System>,
}

/// A handle on a running pool; clone it freely.
#[derive(Clone)]
pub struct PoolHandle {
    inner: Arc<Inner>,
}

impl PoolHandle {
    fn new(
        supervisor: Addr<Supervisor>,
        local: Arc<LocalPools>,
        backend: AnyBackend,
        system: Option<actix_rt::System>,
    ) -> PoolHandle {
        let closing = AtomicBool::new(false);
        PoolHandle { inner: Arc::new(Inner { closing, supervisor, local, backend, system }) }
    }

    /// The pool's metrics (and their registry, for exposition).
    pub fn metrics(&self) -> &PoolMetrics {
        self.inner.local.metrics()
    }

    /// The latest resource figures (system, worker processes, GPUs).
    pub fn resources(&self) -> ResourceSnapshot {
        self.inner.local.shared.resources()
    }

    /// Whether a type takes tasks now: the pool is not shutting down, the type exists, and
    /// when it needs a GPU, one is usable. With shared queues, Redis must answer, and a type
    /// this instance cannot run now is accepted while another live instance runs it.
    pub fn availability(&self, task_type: &str) -> Result<(), Error> {
        self.open()?;
        self.inner.backend.availability(task_type)
    }

    /// Refuses work once `shutdown` has begun; the backend checks the rest of availability
    /// itself when it takes a task.
    fn open(&self) -> Result<(), Error> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        Ok(())
    }

    /// Workers of a type that failed to start, in a row, while that lasts: how many, whether
    /// the type gave up (then it takes no tasks), and why.
    pub fn start_failures(&self, task_type: &str) -> Option<StartFailures> {
        self.inner.local.start_failures(task_type)
    }

    /// Why a type's next worker waits for GPU room, while it does: its tasks stay queued, and
    /// it starts once another worker's exit (or a sample) leaves room for it.
    pub fn gpu_wait(&self, task_type: &str) -> Option<String> {
        self.inner.local.shared.gpus.wait_reason(task_type)
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.local.config
    }

    /// Queues a task and returns at once with its id.
    pub async fn enqueue(&self, request: TaskRequest) -> Result<TaskId, SubmitError> {
        if let Err(e) = self.open() {
            return Err(SubmitError::new(e, request));
        }
        let enqueued = self.enqueued_counter(&request.task_type);
        let id = self.inner.backend.enqueue(TaskId::new(), request).await?;
        if let Some(c) = enqueued {
            c.inc();
        }
        Ok(id)
    }

    /// `workerpool_tasks_enqueued_total` of a configured type; `None` for any other name, so
    /// no client can add a series (such a task is refused anyway).
    fn enqueued_counter(&self, task_type: &str) -> Option<prometheus::IntCounter> {
        self.config()
            .types
            .contains_key(task_type)
            .then(|| self.metrics().tasks_enqueued.with_label_values(&[task_type]))
    }

    /// Queues a task and waits for it to end; the record says how (`status`), with the
    /// result or the error.
    pub async fn execute(&self, request: TaskRequest) -> Result<TaskRecord, Error> {
        self.open()?;
        let enqueued = self.enqueued_counter(&request.task_type);
        let record = self.inner.backend.execute(request).await?;
        if let Some(c) = enqueued {
            c.inc();
        }
        Ok(record)
    }

    /// Runs a task with a typed input and output; a task that does not complete is an error
    /// of kind [`ErrorKind::TaskFailed`] that carries its status and error.
    pub async fn execute_typed<I: Serialize, O: DeserializeOwned>(
        &self,
        task_type: &str,
        input: &I,
    ) -> Result<O, Error> {
        let data = serde_json::to_value(input)
            .map_err(|e| Error::new(ErrorKind::InvalidRequest, format!("cannot encode the input: {e}")))?;
        let record = self.execute(TaskRequest::new(task_type, data)).await?;
        if record.status != TaskStatus::Completed {
            return Err(Error::new(
                ErrorKind::TaskFailed,
                format!("task {} {}: {}", record.id, record.status, record.error.unwrap_or_default()),
            ));
        }
        O::deserialize(record.result.unwrap_or(Value::Null))
            .map_err(|e| Error::new(ErrorKind::Decode, format!("unexpected result of {task_type}: {e}")))
    }

    /// Queues a task and returns a [`TaskHandle`] to await it, follow its progress or cancel it.
    pub async fn submit(&self, request: TaskRequest) -> Result<TaskHandle, SubmitError> {
        // Subscribed before the task is queued, so none of its events is missed.
        let events = self.subscribe();
        if let Err(e) = self.open() {
            return Err(SubmitError::new(e, request));
        }
        let (id, task_type) = (TaskId::new(), request.task_type.clone());
        let enqueued = self.enqueued_counter(&task_type);
        let end = self.inner.backend.enqueue_watched(id.clone(), request).await?;
        if let Some(c) = enqueued {
            c.inc();
        }
        // The record now, when it can be read (its end is waited for either way).
        let record = self.inner.backend.record(&id).await.ok().flatten();
        let watch = TaskWatch::with_end(self.inner.backend.clone(), events, id, record, end);
        Ok(TaskHandle::new(task_type, watch, self.clone()))
    }

    /// The record of a task (submitted by anyone), from its backend: this instance's store,
    /// or with shared queues the record in Redis. A finished record is kept for
    /// [`PoolConfig::record_ttl_ms`] (in this instance's store, among the newest
    /// [`PoolConfig::max_records`]; in Redis, `dead` and `timed_out` records stay while they
    /// are dead-lettered); after that, as for an id never seen, the answer is an error of
    /// kind [`ErrorKind::UnknownTask`].
    pub async fn lookup(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        self.inner.backend.record(id).await?.ok_or_else(|| Error::unknown_task(id))
    }

    /// Follows a task (submitted by anyone): its record now, its progress and status
    /// changes, then its final record.
    pub async fn watch(&self, id: &TaskId) -> Result<TaskWatch, Error> {
        // Subscribed before the record is read, so nothing between the two is missed.
        let events = self.subscribe();
        let record = self.lookup(id).await?;
        Ok(TaskWatch::new(self.inner.backend.clone(), events, record))
    }

    /// Waits for a task (submitted by anyone) to end.
    pub async fn wait(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        self.inner.backend.wait(id).await
    }

    /// Cancels a waiting or running task (a running one's worker is killed and replaced),
    /// on whichever instance runs it.
    pub async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        self.inner.backend.cancel(id).await
    }

    /// Figures of every type and their sums; with shared queues, the waiting tasks are
    /// counted in Redis (while it answers).
    pub async fn stats(&self) -> Result<PoolStats, Error> {
        let mut stats = self.inner.local.stats().await?;
        if let Some(counts) = self.inner.backend.queued_counts().await {
            for (name, queued) in counts {
                if let Some(t) = stats.by_type.get_mut(&name) {
                    t.queued = queued;
                }
                self.metrics().queue_length.with_label_values(&[name.as_str()]).set(queued as i64);
            }
        }
        if self.inner.local.config.redis.url.is_some() {
            self.metrics().redis_up.set(i64::from(self.backend_down().is_none()));
        }
        Ok(stats)
    }

    /// The waiting tasks of a type at the positions `range` of its queue order (ready tasks
    /// by priority, then first come; then those waiting for a delay or a retry), with the
    /// counts of the whole queue: `queue("job", 0..50)` is the first page of 50.
    pub async fn queue(&self, task_type: &str, range: std::ops::Range<usize>) -> Result<QueueInfo, Error> {
        self.inner.backend.queue(task_type, range).await
    }

    /// Why the backend cannot be reached now (Redis down), if so.
    pub fn backend_down(&self) -> Option<String> {
        self.inner.backend.down()
    }

    /// What a shared backend reports of itself (live instances, its link, stale results);
    /// `None` with the in-process backend.
    pub async fn shared_status(&self) -> Option<SharedStatus> {
        self.inner.backend.status().await
    }

    /// Every worker of every type.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        self.inner.local.workers().await
    }

    /// The dead-letter list of a type, oldest first.
    pub async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        self.inner.backend.dead_letters(task_type).await
    }

    /// Queues a dead-lettered task again, with fresh attempts and the same id.
    pub async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        self.inner.backend.requeue(id).await
    }

    /// Scales a type by hand, within `max_concurrent`, `max_workers` and `min_workers`;
    /// answers the number of workers it will have and, for a GPU type, how many started now
    /// and how many wait for GPU room, and why (see [`Scaled`]).
    pub async fn scale(&self, task_type: &str, action: ScaleAction) -> Result<Scaled, Error> {
        self.inner.local.scale(task_type, action).await
    }

    /// Replaces one worker with a fresh one; its running task is queued again without
    /// spending an attempt.
    pub async fn restart_worker(&self, worker_id: &str) -> Result<(), Error> {
        self.inner.local.restart_worker(worker_id).await
    }

    /// A new subscription to every pool event from now on.
    pub fn subscribe(&self) -> EventReceiver {
        self.inner.local.shared.events.subscribe()
    }

    /// Graceful shutdown (contract §2): takes no more tasks, fails waiting ones with reason
    /// `shutdown`, lets running ones finish for up to `graceful_shutdown_timeout_ms`, then
    /// fails the rest with reason `shutdown`, and returns once every worker has exited.
    /// A pool that started its own thread stops it. Calling it again returns at once.
    ///
    /// With shared queues, no more tasks are taken from Redis, and what the drain would fail
    /// goes back to the head of its queue instead, without spending an attempt.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.backend.stop_taking();
        let report = self.inner.supervisor.send(Shutdown).await.unwrap_or_default();
        self.inner.backend.release().await;
        if let Some(system) = &self.inner.system {
            system.stop();
        }
        report
    }
}
