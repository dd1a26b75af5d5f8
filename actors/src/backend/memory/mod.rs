//! `MemoryBackend`, the embedded default: everything lives on this instance.
//!
//! - [`queue`]: a type's live tasks (ready, delayed, held), the ready order and the delays.
//! - [`dead`]: a type's dead letters.
//! - [`ready`]: the ready order itself (priority, then first come).
//!
//! Each type's queue and dead letters are owned by that type's `TypePool`, the executor of
//! its attempts: taking the next task is then a method call on the pool's own state, with no
//! lock and no message on the hot path. `MemoryBackend` is the side that producers and
//! observers call: it reaches a type's queue through its pool (`LocalPools`), and records
//! through the task store.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use tokio::sync::oneshot;

pub(crate) mod dead;
pub(crate) mod queue;
mod ready;

use super::watch::End;
use super::{Backend, SharedStatus};
use crate::answers::QueueInfo;
use crate::error::{Error, SubmitError};
use crate::local::LocalPools;
use crate::messages::Waiter;
use crate::task::{TaskId, TaskRecord, TaskRequest};

/// The in-process backend.
#[derive(Clone)]
pub(crate) struct MemoryBackend {
    pub(crate) local: Arc<LocalPools>,
}

impl Backend for MemoryBackend {
    fn availability(&self, task_type: &str) -> Result<(), Error> {
        self.local.serves_now(task_type)
    }

    async fn enqueue(&self, id: TaskId, request: TaskRequest) -> Result<TaskId, SubmitError> {
        if let Err(e) = self.availability(&request.task_type) {
            return Err(SubmitError::new(e, request));
        }
        self.local.enqueue(id, request, None).await
    }

    async fn enqueue_watched(&self, id: TaskId, request: TaskRequest) -> Result<End, SubmitError> {
        if let Err(e) = self.availability(&request.task_type) {
            return Err(SubmitError::new(e, request));
        }
        let (tx, rx) = oneshot::channel();
        self.local.enqueue(id, request, Some(Waiter::Record(tx))).await?;
        Ok(Box::pin(async move { rx.await.map(Arc::unwrap_or_clone).map_err(|_| Error::stopped()) }))
    }

    async fn execute(&self, request: TaskRequest) -> Result<TaskRecord, Error> {
        self.availability(&request.task_type)?;
        // Copied here, on the caller's thread, if the pool still keeps it.
        self.local.execute(TaskId::new(), request).await.map(Arc::unwrap_or_clone)
    }

    async fn record(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        Ok(self.local.task(id))
    }

    async fn wait(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        self.local.wait(id).await
    }

    async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        self.local.cancel(id).await
    }

    async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        self.local.requeue(id).await
    }

    async fn queue(&self, task_type: &str, range: Range<usize>) -> Result<QueueInfo, Error> {
        self.local.queue(task_type, range).await
    }

    async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        self.local.dead_letters(task_type).await
    }

    async fn queued_counts(&self) -> Option<BTreeMap<String, usize>> {
        // The pools count their own queues.
        None
    }

    fn shared(&self) -> bool {
        false
    }

    fn down(&self) -> Option<String> {
        None
    }

    async fn status(&self) -> Option<SharedStatus> {
        None
    }

    fn stop_taking(&self) {}

    async fn release(&self) {}
}
