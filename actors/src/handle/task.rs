//! [`TaskHandle`]: a submitted task, followed through its [`TaskWatch`].

use crate::backend::{TaskUpdate, TaskWatch};
use crate::error::Error;
use crate::handle::PoolHandle;
use crate::task::{Progress, TaskId, TaskRecord};

/// A submitted task: await its record, follow its progress, or cancel it.
pub struct TaskHandle {
    id: TaskId,
    task_type: String,
    /// The task's updates; `None` once the end was seen (or when the task could not be read
    /// back after it was queued: then `wait` asks the pool).
    watch: Option<TaskWatch>,
    ended: Option<TaskRecord>,
    pool: PoolHandle,
}

impl TaskHandle {
    pub(super) fn new(
        id: TaskId,
        task_type: String,
        watch: Option<TaskWatch>,
        pool: PoolHandle,
    ) -> TaskHandle {
        TaskHandle { id, task_type, watch, ended: None, pool }
    }

    /// The task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The task's type.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }

    /// The next progress report of the task; `None` once it has ended. With shared queues,
    /// the progress of a task that runs on another instance is read from its record every
    /// second (reports in between are not seen).
    pub async fn progress(&mut self) -> Option<Progress> {
        let watch = self.watch.as_mut()?;
        loop {
            match watch.next().await? {
                TaskUpdate::Progress { progress, .. } => return Some(progress),
                TaskUpdate::Status(_) => {}
                TaskUpdate::Ended(record) => {
                    self.ended = Some(record);
                    self.watch = None;
                    return None;
                }
            }
        }
    }

    /// Waits for the task to end.
    pub async fn wait(self) -> Result<TaskRecord, Error> {
        if let Some(record) = self.ended {
            return Ok(record);
        }
        match self.watch {
            Some(watch) => watch.ended().await,
            None => self.pool.wait(&self.id).await,
        }
    }

    /// Cancels the task.
    pub async fn cancel(&self) -> Result<TaskRecord, Error> {
        self.pool.cancel(&self.id).await
    }
}
