//! One task, from any instance: its record, cancelling it (`CANCEL`) and running a
//! dead-lettered one again (`REQUEUE`).

use std::collections::HashMap;

use redis::AsyncCommands;

use super::Remote;
use super::records::record_from_hash;
use crate::error::{Error, ErrorKind};
use crate::task::{TaskId, TaskRecord, now_ms};

/// What `CANCEL` did.
#[derive(Debug, PartialEq, Eq)]
enum Cancel {
    /// Cancelled; it was queued or running.
    Cancelled,
    /// It had ended already, with this status.
    Ended(String),
    /// No such task.
    Gone,
}

impl Cancel {
    /// From the script's reply: `cancelled:<previous status>`, the status of an ended task,
    /// or nil.
    fn from_reply(reply: Option<String>) -> Cancel {
        match reply {
            None => Cancel::Gone,
            Some(s) if s.starts_with("cancelled:") => Cancel::Cancelled,
            Some(status) => Cancel::Ended(status),
        }
    }
}

/// What `REQUEUE` did.
#[derive(Debug, PartialEq, Eq)]
enum Requeue {
    /// Back in its queue with fresh attempts.
    Queued,
    /// The task is not in its type's dead-letter list (it is queued, running or ended).
    NotDead { task_type: String },
    /// No such task.
    Gone,
}

impl Requeue {
    /// From the script's reply: `{'queued'}`, `{'not_dead', status, type}`, or nil.
    fn from_reply(reply: Option<Vec<String>>) -> Result<Requeue, Error> {
        match reply.as_deref() {
            None => Ok(Requeue::Gone),
            Some([queued]) if queued == "queued" => Ok(Requeue::Queued),
            Some([not_dead, _status, task_type]) if not_dead == "not_dead" => {
                Ok(Requeue::NotDead { task_type: task_type.clone() })
            }
            Some(other) => {
                Err(Error::new(ErrorKind::Internal, format!("REQUEUE answered an unknown reply {other:?}")))
            }
        }
    }
}

impl Remote {
    /// The record of a task, if Redis still has it.
    pub(crate) async fn record(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        let fields: HashMap<String, String> =
            self.observe(self.gated()?.hgetall(self.keys.task(id.as_str())).await)?;
        Ok(record_from_hash(id, &fields))
    }

    /// Cancels a queued or running task, wherever it runs.
    pub(crate) async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let reply: Option<String> = self.observe(
            self.scripts
                .cancel
                .key(self.keys.task(id.as_str()))
                .key(self.keys.leases())
                .arg(id.as_str())
                .arg(now_ms())
                .arg(self.keys.base())
                .arg(self.keys.done_channel())
                .arg(self.keys.cancel_channel())
                .arg(self.record_ttl())
                .invoke_async(&mut self.gated()?)
                .await,
        )?;
        let no_task = || Error::unknown_task(id);
        match Cancel::from_reply(reply) {
            Cancel::Gone => Err(no_task()),
            Cancel::Cancelled => self.record(id).await?.ok_or_else(no_task),
            Cancel::Ended(status) => {
                Err(Error::new(ErrorKind::Finished, format!("task {id} already ended ({status})")))
            }
        }
    }

    /// Queues a dead-lettered task again with fresh attempts. A task that is not
    /// dead-lettered is a conflict ([`ErrorKind::Finished`]), as with the local pools.
    pub(crate) async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        let reply: Option<Vec<String>> = self.observe(
            self.scripts
                .requeue
                .key(self.keys.task(id.as_str()))
                .arg(id.as_str())
                .arg(self.keys.base())
                .arg(self.keys.wake_channel())
                .arg(self.member(id))
                .invoke_async(&mut self.gated()?)
                .await,
        )?;
        match Requeue::from_reply(reply)? {
            Requeue::Queued => Ok(id.clone()),
            Requeue::NotDead { task_type } => Err(Error::new(
                ErrorKind::Finished,
                format!("task {id} is not in the dead-letter list of {task_type}"),
            )),
            Requeue::Gone => Err(Error::unknown_task(id)),
        }
    }

    /// How long a final record stays in Redis (a positive expiry, as Redis wants).
    pub(super) fn record_ttl(&self) -> u64 {
        self.record_ttl_ms.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Option<Vec<String>> {
        Some(values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn cancel_replies_read_as_what_was_done() {
        assert_eq!(Cancel::from_reply(None), Cancel::Gone);
        assert_eq!(Cancel::from_reply(Some("cancelled:running".into())), Cancel::Cancelled);
        assert_eq!(Cancel::from_reply(Some("completed".into())), Cancel::Ended("completed".into()));
    }

    #[test]
    fn requeue_replies_read_as_what_was_done() {
        assert_eq!(Requeue::from_reply(None), Ok(Requeue::Gone));
        assert_eq!(Requeue::from_reply(strings(&["queued"])), Ok(Requeue::Queued));
        assert_eq!(
            Requeue::from_reply(strings(&["not_dead", "running", "echo"])),
            Ok(Requeue::NotDead { task_type: "echo".into() })
        );
        let odd = Requeue::from_reply(strings(&["dead"])).expect_err("an unknown reply");
        assert_eq!(odd.kind(), ErrorKind::Internal);
    }
}
