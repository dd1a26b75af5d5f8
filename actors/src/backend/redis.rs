//! `RedisBackend`: the shared queues of `remote/`, seen through the backend contract. Tasks
//! are queued, looked up, cancelled and listed in Redis; the bridge (`remote::bridge`) takes
//! leases for this instance's pools.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use super::watch::End;
use super::{Backend, SharedStatus};
use crate::answers::QueueInfo;
use crate::error::{Error, ErrorKind, SubmitError};
use crate::local::LocalPools;
use crate::remote::Remote;
use crate::task::{TaskId, TaskRecord, TaskRequest};

/// The shared-queue backend.
#[derive(Clone)]
pub(crate) struct RedisBackend {
    pub(crate) remote: Arc<Remote>,
    pub(crate) local: Arc<LocalPools>,
}

impl Backend for RedisBackend {
    /// Redis must answer, and a type this instance cannot run now is accepted while another
    /// live instance runs it.
    fn availability(&self, task_type: &str) -> Result<(), Error> {
        if let Some(why) = self.remote.down() {
            return Err(Error::new(ErrorKind::Unavailable, format!("Redis unavailable: {why}")));
        }
        match self.local.serves_now(task_type) {
            Err(e) if e.kind() == ErrorKind::Unavailable && self.remote.served_elsewhere(task_type) => Ok(()),
            other => other,
        }
    }

    async fn enqueue(&self, id: TaskId, request: TaskRequest) -> Result<TaskId, SubmitError> {
        let queued = match self.availability(&request.task_type) {
            Ok(()) => self.remote.enqueue(&id, &request, false).await,
            Err(e) => Err(e),
        };
        queued.map(|()| id).map_err(|e| SubmitError::new(e, request))
    }

    async fn enqueue_watched(&self, id: TaskId, request: TaskRequest) -> Result<End, SubmitError> {
        if let Err(e) = self.availability(&request.task_type) {
            return Err(SubmitError::new(e, request));
        }
        // Watched before it is queued, so a quick end cannot be missed.
        let rx = self.remote.watch(&id);
        if let Err(e) = self.remote.enqueue(&id, &request, true).await {
            self.remote.unwatch(&id);
            return Err(SubmitError::new(e, request));
        }
        let remote = self.remote.clone();
        Ok(Box::pin(async move { remote.wait(&id, Some(rx)).await }))
    }

    async fn execute(&self, request: TaskRequest) -> Result<TaskRecord, Error> {
        self.enqueue_watched(TaskId::new(), request).await?.await
    }

    async fn record(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        self.remote.record(id).await
    }

    async fn wait(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        self.remote.wait(id, None).await
    }

    async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        self.remote.cancel(id).await
    }

    async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        self.remote.requeue(id).await
    }

    async fn queue(&self, task_type: &str, range: Range<usize>) -> Result<QueueInfo, Error> {
        self.local.pool(task_type)?;
        self.remote.queue(task_type, range).await
    }

    async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        self.local.pool(task_type)?;
        self.remote.dead_letters(task_type).await
    }

    async fn queued_counts(&self) -> Option<BTreeMap<String, usize>> {
        self.remote.queued_counts().await.ok()
    }

    fn shared(&self) -> bool {
        true
    }

    fn down(&self) -> Option<String> {
        self.remote.down()
    }

    async fn status(&self) -> Option<SharedStatus> {
        Some(SharedStatus {
            instances: self.remote.instances(),
            down: self.remote.down(),
            stale_results: self.remote.stale_results_total().await.ok(),
        })
    }

    fn stop_taking(&self) {
        self.remote.stop_taking();
    }

    async fn release(&self) {
        self.remote.release().await;
    }
}
