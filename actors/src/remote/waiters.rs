//! Waiting for a task to end, from any instance: a waiter is told by this instance when it
//! ends the task here, by the done channel when another instance does, and reads the record
//! every second in case a notification was lost.

use std::time::Duration;

use tokio::sync::oneshot;

use super::Remote;
use crate::error::{Error, ErrorKind};
use crate::task::{TaskId, TaskRecord};

impl Remote {
    /// Registers a waiter for `id` (before it is queued, so its end cannot be missed).
    pub(crate) fn watch(&self, id: &TaskId) -> oneshot::Receiver<Option<TaskRecord>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).entry(id.clone()).or_default().push(tx);
        rx
    }

    /// Forgets the waiters of `id` (its queueing failed, or its end was read).
    pub(crate) fn unwatch(&self, id: &TaskId) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Tells the waiters of `id` that it ended (with its record when known here).
    pub(crate) fn wake_waiters(&self, id: &TaskId, record: Option<&TaskRecord>) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        for tx in waiters.into_iter().flatten() {
            let _ = tx.send(record.cloned());
        }
    }

    /// Wakes every waiter to read its task again (after a gap in the notifications).
    pub(super) fn recheck_waiters(&self) {
        let all = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for tx in all.into_values().flatten() {
            let _ = tx.send(None);
        }
    }

    /// Asks to be told on the done channel when `id` ends (a task queued by someone else).
    async fn announce(&self, id: &TaskId) -> Result<(), Error> {
        self.observe(
            self.scripts
                .announce
                .key(self.keys.task(id.as_str()))
                .invoke_async::<()>(&mut self.gated()?)
                .await,
        )
    }

    /// Waits for `id` to end, reading its record when told it ended (or every second, in
    /// case a notification was lost). `watching` is the waiter registered before the task was
    /// queued by this instance; without one (a task queued by anyone), the task is marked as
    /// watched by everyone and read once before waiting.
    pub(crate) async fn wait(
        &self,
        id: &TaskId,
        watching: Option<oneshot::Receiver<Option<TaskRecord>>>,
    ) -> Result<TaskRecord, Error> {
        let mut check_now = watching.is_none();
        let mut rx = match watching {
            Some(rx) => rx,
            None => {
                let rx = self.watch(id);
                let _ = self.announce(id).await;
                rx
            }
        };
        loop {
            let told = if check_now {
                check_now = false;
                Err(())
            } else {
                tokio::time::timeout(Duration::from_secs(1), &mut rx).await.map_err(drop)
            };
            if let Ok(Ok(Some(record))) = told {
                return Ok(record);
            }
            match self.record(id).await {
                Ok(Some(record)) if record.status.is_final() => {
                    self.unwatch(id);
                    return Ok(record);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.unwatch(id);
                    return Err(Error::unknown_task(id));
                }
                // Redis is away: keep waiting for it, like the task itself does.
                Err(e) if e.kind() == ErrorKind::Unavailable => {}
                Err(e) => return Err(e),
            }
            if told.is_ok() {
                // The channel was answered or dropped: watch again.
                rx = self.watch(id);
            }
        }
    }
}
