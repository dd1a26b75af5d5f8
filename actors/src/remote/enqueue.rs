//! Queueing a task in Redis (`ENQUEUE`), in batches: the calls made while a batch is on its
//! way go together in the next one. A queueing whose reply was lost is settled in
//! [`outcome`](super::outcome).

use std::sync::atomic::Ordering;

use super::batch::BatchCall;
use super::{Remote, TypeLimits};
use crate::error::{Error, ErrorKind};
use crate::task::{TaskId, TaskRequest, now_ms};

/// One task for `ENQUEUE`, in the order the script reads a task's values.
#[derive(Debug)]
pub(super) struct EnqueueCall {
    id: TaskId,
    task_type: String,
    /// The input, as JSON text.
    data: String,
    priority: i32,
    max_retries: u32,
    /// Per attempt, in ms.
    timeout: u64,
    /// In ms; 0: ready now.
    delay: u64,
    /// The type's `queue_size`.
    limit: usize,
    /// Who is told on the done channel when it ends: an instance id, or '' for no one.
    watcher: String,
    /// Its queue member less the millisecond the script puts in front.
    member: String,
}

impl BatchCall for EnqueueCall {
    type Reply = Enqueued;

    fn push_args(&self, script: &mut redis::ScriptInvocation<'_>) {
        script
            .arg(self.id.as_str())
            .arg(&self.task_type)
            .arg(&self.data)
            .arg(self.priority)
            .arg(self.max_retries)
            .arg(self.timeout)
            .arg(self.delay)
            .arg(self.limit)
            .arg(&self.watcher)
            .arg(&self.member);
    }
}

/// What `ENQUEUE` did with one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Enqueued {
    Queued,
    /// The type's queue holds `queue_size` tasks already.
    QueueFull,
    /// Its queueing was settled as not done ([`outcome`](super::outcome)): this late write
    /// queued nothing.
    Fenced,
}

impl Enqueued {
    /// From the script's code for one task: 1, -1 or 0.
    fn from_code(code: i64) -> Enqueued {
        match code {
            1 => Enqueued::Queued,
            -1 => Enqueued::QueueFull,
            _ => Enqueued::Fenced,
        }
    }
}

impl Remote {
    /// Queues a task in Redis under `id`; `watched` when this instance waits for its end.
    /// Calls made while a batch is on its way to Redis go together in the next one.
    pub(crate) async fn enqueue(
        &self,
        id: &TaskId,
        request: &TaskRequest,
        watched: bool,
    ) -> Result<(), Error> {
        let task_type = &request.task_type;
        let &TypeLimits { queue_size: limit, max_retries, timeout_ms: timeout, .. } =
            self.limits.get(task_type).ok_or_else(|| Error::unknown_type(task_type))?;
        let o = &request.options;
        let data = serde_json::to_string(&request.data)
            .map_err(|e| Error::new(ErrorKind::InvalidRequest, format!("data: {e}")))?;
        let call = EnqueueCall {
            id: id.clone(),
            task_type: task_type.clone(),
            data,
            priority: o.priority.unwrap_or(0),
            max_retries: o.max_retries.unwrap_or(max_retries),
            timeout: o.timeout.unwrap_or(timeout),
            delay: o.delay.unwrap_or(0),
            limit,
            watcher: if watched { self.cfg.instance_id.clone() } else { String::new() },
            member: self.member(id),
        };
        // Before anything was heard from Redis (just started), ask it first: a server that
        // cannot be reached or refuses this client is then refused before anything is sent.
        if !self.link.known() {
            self.ping().await?;
        }
        match self.enqueuing.call(call).await {
            Ok(Enqueued::Queued) => Ok(()),
            Ok(Enqueued::QueueFull) => Err(Error::new(
                ErrorKind::QueueFull,
                format!("the queue of {task_type} is full ({limit} tasks)"),
            )),
            Ok(Enqueued::Fenced) => {
                Err(Error::new(ErrorKind::Unavailable, format!("task {id} was not queued")).with_task(id))
            }
            Err(e) if e.kind() == ErrorKind::OutcomeUnknown => self.settle(id, &e).await,
            Err(e) => Err(e),
        }
    }

    /// Sends the waiting `enqueue` calls in batches, one script call each; runs until the
    /// instance stops.
    pub(crate) async fn enqueue_batches(&self) {
        self.enqueuing
            .run(|batch| async move {
                let mut call = self.scripts.enqueue.key(self.keys.stats());
                call.arg(self.keys.base()).arg(now_ms()).arg(self.keys.wake_channel());
                for task in &batch {
                    task.push_args(&mut call);
                }
                let codes: Vec<i64> = self.observe_write(call.invoke_async(&mut self.gated()?).await)?;
                Ok(codes.into_iter().map(Enqueued::from_code).collect())
            })
            .await;
    }

    /// A task's member in its queue, less the millisecond the script puts in front (by the
    /// Redis server's clock): a counter of this instance and the id, so equal priorities run
    /// in submission order (across instances, to the millisecond).
    pub(super) fn member(&self, id: &TaskId) -> String {
        let n = self.member_counter.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        format!("{n:06}:{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueue_codes_read_as_what_was_done() {
        assert_eq!(Enqueued::from_code(1), Enqueued::Queued);
        assert_eq!(Enqueued::from_code(-1), Enqueued::QueueFull);
        assert_eq!(Enqueued::from_code(0), Enqueued::Fenced);
    }
}
