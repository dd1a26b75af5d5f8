//! [`TaskHandle`]: a submitted task, followed through its [`TaskWatch`].

use crate::backend::{TaskUpdate, TaskWatch};
use crate::error::Error;
use crate::handle::PoolHandle;
use crate::task::{Progress, TaskId, TaskRecord};

/// A submitted task: await its record, follow its progress, or cancel it.
pub struct TaskHandle {
    task_type: String,
    /// The task's updates, its end registered when it was queued.
    watch: TaskWatch,
    /// The end, once [`TaskHandle::progress`] has seen it.
    ended: Option<TaskRecord>,
    pool: PoolHandle,
}

impl TaskHandle {
    pub(super) fn new(task_type: String, watch: TaskWatch, pool: PoolHandle) -> TaskHandle {
        TaskHandle { task_type, watch, ended: None, pool }
    }

    /// The task's id.
    pub fn id(&self) -> &TaskId {
        self.watch.id()
    }

    /// The task's type.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }

    /// The next progress report of the task; `None` once it has ended. With shared queues,
    /// the progress of a task that runs on another instance is read from its record every
    /// second (reports in between are not seen).
    pub async fn progress(&mut self) -> Option<Progress> {
        if self.ended.is_some() {
            return None;
        }
        loop {
            match self.watch.next().await? {
                TaskUpdate::Progress { progress, .. } => return Some(progress),
                TaskUpdate::Status(_) => {}
                TaskUpdate::Ended(record) => {
                    self.ended = Some(record);
                    return None;
                }
            }
        }
    }

    /// Waits for the task to end.
    pub async fn wait(self) -> Result<TaskRecord, Error> {
        match self.ended {
            Some(record) => Ok(record),
            None => self.watch.ended().await,
        }
    }

    /// Cancels the task.
    pub async fn cancel(&self) -> Result<TaskRecord, Error> {
        self.pool.cancel(self.id()).await
    }
}
