//! `LocalPools`: this instance's pools, the executor of attempts. The handle and the
//! backends run tasks through it; nothing else sends the pools a message from outside the
//! tree.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use actix::Addr;
use tokio::sync::oneshot;

use crate::answers::{PoolStats, ScaleAction, Scaled};
use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind, SubmitError};
use crate::events::EventKind;
use crate::intake::{Intake, PoolGone};
use crate::messages::{
    CancelTask, DrainIntake, Enqueue, Execute, GetDeadLetters, GetQueue, GetTypeStats, GetWorkers, QueueInfo,
    Reply, Requeue, RestartWorker, Scale, Settled, Waiter, Watch, WorkerInfo,
};
use crate::metrics::PoolMetrics;
use crate::pool::{Pools, TypePool};
use crate::shared::{Shared, StartFailures};
use crate::task::{TaskId, TaskRecord, TaskRequest};

/// This instance's pools, by type, and what they share.
pub(crate) struct LocalPools {
    pub(crate) pools: Pools,
    pub(crate) intakes: BTreeMap<String, Arc<Intake>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: PoolConfig,
}

impl LocalPools {
    pub(crate) fn pool(&self, task_type: &str) -> Result<&Addr<TypePool>, Error> {
        self.pools.get(task_type).ok_or_else(|| Error::unknown_type(task_type))
    }

    pub(crate) fn metrics(&self) -> &PoolMetrics {
        &self.shared.metrics
    }

    /// Whether this instance can run tasks of a type now (it exists; its workers can start; a
    /// GPU when needed).
    pub(crate) fn serves_now(&self, task_type: &str) -> Result<(), Error> {
        let t = self.config.types.get(task_type).ok_or_else(|| Error::unknown_type(task_type))?;
        if let Some(f) = self.shared.start_failures(task_type).filter(|f| f.gave_up) {
            return Err(Error::new(ErrorKind::Unavailable, f.reason));
        }
        if t.gpu_required {
            let gpu = self.shared.gpu_status();
            if !gpu.available {
                let why = gpu.reason.unwrap_or_else(|| "no usable GPU".to_string());
                return Err(Error::new(ErrorKind::Unavailable, format!("{task_type} needs a GPU: {why}")));
            }
        }
        if t.gpus() > 0
            && let Some(why) = self.shared.gpus.never_fits(t)
        {
            return Err(Error::new(ErrorKind::Unavailable, format!("{task_type} cannot run here: {why}")));
        }
        Ok(())
    }

    pub(crate) fn start_failures(&self, task_type: &str) -> Option<StartFailures> {
        self.shared.start_failures(task_type)
    }

    /// The record of a task this instance holds.
    pub(crate) fn task(&self, id: &TaskId) -> Option<TaskRecord> {
        self.shared.store.get(id)
    }

    /// Queues a task here; `waiter` hears its end.
    pub(crate) async fn enqueue(
        &self,
        id: TaskId,
        request: TaskRequest,
        waiter: Option<Waiter>,
    ) -> Result<TaskId, SubmitError> {
        let pool = match self.pool(&request.task_type) {
            Ok(pool) => pool,
            Err(e) => return Err(SubmitError::new(e, request)),
        };
        if !pool.connected() {
            return Err(SubmitError::new(Error::stopped(), request));
        }
        match pool.send(Enqueue { id, request, waiter, prior_attempts: 0 }).await {
            Ok(result) => result,
            // The pool stopped between the check and the send; the request went with it.
            Err(_) => Err(SubmitError::new(Error::stopped(), TaskRequest::new("", serde_json::Value::Null))),
        }
    }

    /// Runs a task here under `id` and waits for its final record.
    pub(crate) async fn execute(&self, id: TaskId, request: TaskRequest) -> Result<Arc<TaskRecord>, Error> {
        let (reply, rx) = oneshot::channel();
        self.call(Execute { id, request, reply: Reply::Record(reply), prior_attempts: 0 })?;
        answer(rx).await
    }

    /// Runs one attempt, numbered on from `prior_attempts`, of a task a durable backend
    /// handed over, and answers how it ended and the verdict on it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) async fn run_attempt(
        &self,
        id: TaskId,
        request: TaskRequest,
        prior_attempts: u32,
    ) -> Result<Settled, Error> {
        let (reply, rx) = oneshot::channel();
        self.call(Execute { id, request, reply: Reply::Attempt(reply), prior_attempts })?;
        answer(rx).await
    }

    /// Sends a call through the pool's intake; only the first of a burst wakes the pool.
    fn call(&self, call: Execute) -> Result<(), Error> {
        let pool = self.pool(&call.request.task_type)?;
        match self.intakes.get(&call.request.task_type) {
            Some(intake) => match intake.push(call) {
                Ok(true) => match pool.try_send(DrainIntake) {
                    Ok(()) => {}
                    // The mailbox bound applies to `try_send` only; the wake-up must go.
                    Err(actix::prelude::SendError::Full(msg)) => pool.do_send(msg),
                    // The pool has stopped: drop the calls, which answers them "stopped".
                    Err(actix::prelude::SendError::Closed(_)) => intake.close(),
                },
                Ok(false) => {}
                Err(PoolGone) => return Err(Error::stopped()),
            },
            None => pool.do_send(call),
        }
        Ok(())
    }

    /// Waits for a task of this instance to end.
    pub(crate) async fn wait(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let record = self.task(id).ok_or_else(|| Error::unknown_task(id))?;
        if record.status.is_final() {
            return Ok(record);
        }
        let (tx, rx) = oneshot::channel();
        if !self.pool(&record.task_type)?.send(Watch(id.clone(), tx)).await? {
            // It ended between the look-up and the watch.
            return self.task(id).ok_or_else(|| Error::unknown_task(id));
        }
        rx.await.map(Arc::unwrap_or_clone).map_err(|_| Error::stopped())
    }

    /// Cancels a task of this instance's pools.
    pub(crate) async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let record = self.task(id).ok_or_else(|| Error::unknown_task(id))?;
        self.pool(&record.task_type)?.send(CancelTask(id.clone())).await?
    }

    /// Queues a dead-lettered task of this instance's pools again.
    pub(crate) async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        let record = self.task(id).ok_or_else(|| Error::unknown_task(id))?;
        self.pool(&record.task_type)?.send(Requeue(id.clone())).await?
    }

    pub(crate) async fn queue(&self, task_type: &str, range: Range<usize>) -> Result<QueueInfo, Error> {
        Ok(self.pool(task_type)?.send(GetQueue { range }).await?)
    }

    pub(crate) async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        Ok(self.pool(task_type)?.send(GetDeadLetters).await?)
    }

    /// Figures of every type and their sums.
    pub(crate) async fn stats(&self) -> Result<PoolStats, Error> {
        let asks: Vec<_> = self.pools.iter().map(|(n, p)| (n, p.send(GetTypeStats))).collect();
        let mut stats = PoolStats::default();
        let mut busy_ms = 0.0;
        for (name, ask) in asks {
            let t = ask.await?;
            stats.total += t.total;
            stats.available += t.available;
            stats.busy += t.busy;
            stats.tasks_completed += t.tasks_completed;
            stats.tasks_failed += t.tasks_failed;
            busy_ms += t.avg_task_ms * t.tasks_completed as f64;
            stats.by_type.insert(name.clone(), t);
        }
        if stats.tasks_completed > 0 {
            stats.avg_task_ms = busy_ms / stats.tasks_completed as f64;
        }
        stats.drained_gpus = self.shared.gpus.drained();
        Ok(stats)
    }

    pub(crate) async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let asks: Vec<_> = self.pools.values().map(|p| p.send(GetWorkers)).collect();
        let mut all = Vec::new();
        for ask in asks {
            all.extend(ask.await?);
        }
        Ok(all)
    }

    pub(crate) async fn scale(&self, task_type: &str, action: ScaleAction) -> Result<Scaled, Error> {
        self.pool(task_type)?.send(Scale(action)).await?
    }

    pub(crate) async fn restart_worker(&self, worker_id: &str) -> Result<(), Error> {
        let unknown = || Error::new(ErrorKind::UnknownWorker, format!("no worker {worker_id:?}"));
        let task_type = worker_id.rsplit_once('-').map(|(t, _)| t).ok_or_else(unknown)?;
        let pool = self.pool(task_type).map_err(|_| unknown())?;
        pool.send(RestartWorker(worker_id.to_string())).await?
    }

    /// Tells every subscriber of this instance's events.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn emit(&self, kind: EventKind) {
        self.shared.events.emit(|| kind);
    }
}

/// The answer to an [`Execute`] call: what the pool sent, its refusal, or "stopped" when the
/// pool went away without answering.
async fn answer<T>(rx: oneshot::Receiver<Result<T, SubmitError>>) -> Result<T, Error> {
    match rx.await {
        Ok(answered) => answered.map_err(Error::from),
        Err(_) => Err(Error::stopped()),
    }
}
