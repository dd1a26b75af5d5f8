//! Ending an attempt in Redis (`FINISH`), in batches: its outcome, a retry after a backoff, or
//! a re-queue at shutdown. Only the holder of an attempt may end it, and the same end written
//! twice changes nothing, so a write whose reply was lost is simply written again.

use super::Remote;
use super::batch::BatchCall;
use crate::policy::retry::Verdict;
use crate::task::{TaskId, TaskRecord, now_ms};

/// How an attempt ends, as written to Redis.
#[derive(Debug)]
pub(crate) enum Finish {
    /// A final status, with the record to answer local waiters.
    Final(TaskRecord),
    /// Queued again after its backoff (timed by the Redis server's clock), keeping its
    /// attempt count.
    Retry { record: TaskRecord, backoff_ms: u64 },
    /// Back at the head of its queue without spending the attempt (shutdown).
    Requeue,
}

impl Finish {
    /// How the retry rule's `verdict` on an attempt is written, with its `record`.
    pub(crate) fn of(verdict: Verdict, record: TaskRecord) -> Finish {
        match verdict {
            Verdict::End(_) => Finish::Final(record),
            Verdict::Retry { backoff } => Finish::Retry { record, backoff_ms: backoff.as_millis() as u64 },
            Verdict::Requeue => Finish::Requeue,
        }
    }
}

/// Who ends an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writer {
    /// The instance that holds it (runs it).
    Holder,
    /// The instance that reaped its lease, its holder being lost.
    Reaper,
}

/// What [`Remote::finish`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Written (now, or by an earlier call whose reply was lost).
    Recorded,
    /// The task was cancelled meanwhile; nothing was written.
    Cancelled,
    /// Another attempt holds the task: the outcome was dropped (and counted in `stats`).
    Stale,
    /// The task is not in Redis any more.
    Gone,
}

impl Finished {
    /// From the script's code for one attempt: 1, 2, -1 or 0.
    fn from_code(code: i64) -> Finished {
        match code {
            1 => Finished::Recorded,
            2 => Finished::Cancelled,
            -1 => Finished::Stale,
            _ => Finished::Gone,
        }
    }
}

/// The kind of end, as `FINISH` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Final,
    Retry,
    Requeue,
}

impl How {
    /// The kind `FINISH` reads; a reaper's write of a lost attempt is marked `lost_`.
    fn kind(self, writer: Writer) -> &'static str {
        match (self, writer) {
            (How::Final, Writer::Holder) => "final",
            (How::Retry, Writer::Holder) => "retry",
            (How::Final, Writer::Reaper) => "lost_final",
            (How::Retry, Writer::Reaper) => "lost_retry",
            (How::Requeue, _) => "requeue",
        }
    }
}

/// One attempt for `FINISH`, in the order the script reads an attempt's values.
#[derive(Debug)]
pub(super) struct FinishCall {
    id: TaskId,
    task_type: String,
    attempt: u32,
    how: How,
    writer: Writer,
    /// The status written (`queued` for a retry or a re-queue).
    status: String,
    /// The result, JSON text; '' for none.
    result: String,
    error: String,
    worker: String,
    /// A retry: its backoff in ms; a final status: when it ended; a re-queue: 0.
    when: u64,
    /// The last progress, JSON text; '' for none.
    progress: String,
    /// What the attempt used (`TaskResources`), JSON text; '' for none (a re-queue, or an
    /// attempt that did not run here).
    resources: String,
}

impl FinishCall {
    fn new(task_type: &str, id: &TaskId, attempt: u32, finish: &Finish, writer: Writer) -> FinishCall {
        let (how, record, when) = match finish {
            Finish::Final(r) => (How::Final, Some(r), r.finished_at.unwrap_or_else(now_ms)),
            Finish::Retry { record, backoff_ms } => (How::Retry, Some(record), *backoff_ms),
            Finish::Requeue => (How::Requeue, None, 0),
        };
        FinishCall {
            id: id.clone(),
            task_type: task_type.to_string(),
            attempt,
            how,
            writer,
            status: record.map_or("queued", |r| r.status.as_str()).to_string(),
            result: record.and_then(|r| r.result.as_ref()).map(|v| v.to_string()).unwrap_or_default(),
            error: record.and_then(|r| r.error.clone()).unwrap_or_default(),
            worker: record.and_then(|r| r.worker_id.clone()).unwrap_or_default(),
            when,
            progress: record
                .and_then(|r| r.progress.as_ref())
                .and_then(|p| serde_json::to_string(p).ok())
                .unwrap_or_default(),
            resources: record
                .and_then(|r| r.resources.as_ref())
                .and_then(|u| serde_json::to_string(u).ok())
                .unwrap_or_default(),
        }
    }
}

impl BatchCall for FinishCall {
    type Reply = Finished;

    fn push_args(&self, script: &mut redis::ScriptInvocation<'_>) {
        script
            .arg(self.id.as_str())
            .arg(&self.task_type)
            .arg(self.attempt)
            .arg(self.how.kind(self.writer))
            .arg(&self.status)
            .arg(&self.result)
            .arg(&self.error)
            .arg(&self.worker)
            .arg(self.when)
            .arg(&self.progress)
            .arg(&self.resources);
    }
}

impl Remote {
    /// Ends (or re-queues) the attempt `attempt` of a task, as `writer`: the instance that
    /// holds it, or the one that reaped it (its holder was lost; only while the reap holds,
    /// see `REAP`, `RENEW`). Calls made while a batch is on its way to Redis go together in
    /// the next one.
    pub(crate) async fn finish(
        &self,
        task_type: &str,
        id: &TaskId,
        attempt: u32,
        how: &Finish,
        writer: Writer,
    ) -> Result<Finished, crate::error::Error> {
        self.finishing.call(FinishCall::new(task_type, id, attempt, how, writer)).await
    }

    /// Sends the waiting `finish` calls in batches, one script call each; runs until the
    /// instance stops.
    pub(crate) async fn finish_batches(&self) {
        self.finishing
            .run(|batch| async move {
                let mut call = self.scripts.finish.key(self.keys.leases());
                call.key(self.keys.stats())
                    .arg(self.keys.base())
                    .arg(&self.cfg.instance_id)
                    .arg(now_ms())
                    .arg(self.record_ttl())
                    .arg(self.keys.done_channel())
                    .arg(self.keys.wake_channel());
                for attempt in &batch {
                    attempt.push_args(&mut call);
                }
                let codes: Vec<i64> = self.observe_write(call.invoke_async(&mut self.gated()?).await)?;
                Ok(codes.into_iter().map(Finished::from_code).collect())
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskStatus;

    #[test]
    fn finish_codes_read_as_what_was_found() {
        let found: Vec<Finished> = [1, 2, -1, 0].into_iter().map(Finished::from_code).collect();
        assert_eq!(found, [Finished::Recorded, Finished::Cancelled, Finished::Stale, Finished::Gone]);
    }

    #[test]
    fn a_retry_carries_its_backoff_and_a_requeue_the_queued_status() {
        let id = TaskId::from("t1".to_string());
        let mut record = TaskRecord::new(id.clone(), "echo", 0, 3);
        record.status = TaskStatus::Queued;
        record.error = Some("crashed".into());
        record.resources = Some(crate::task::TaskResources { wall_ms: 7, ..Default::default() });
        let retry =
            FinishCall::new("echo", &id, 2, &Finish::Retry { record, backoff_ms: 400 }, Writer::Holder);
        assert_eq!(
            (retry.how.kind(retry.writer), retry.status.as_str(), retry.when),
            ("retry", "queued", 400)
        );
        assert_eq!(retry.error, "crashed");
        let resources: serde_json::Value = serde_json::from_str(&retry.resources).unwrap();
        assert_eq!((resources["wall_ms"].as_u64(), resources["cpu_ms"].is_null()), (Some(7), true));
        let requeue = FinishCall::new("echo", &id, 2, &Finish::Requeue, Writer::Holder);
        assert_eq!((requeue.how, requeue.status.as_str(), requeue.when), (How::Requeue, "queued", 0));
        assert!(requeue.result.is_empty() && requeue.progress.is_empty() && requeue.resources.is_empty());
    }

    #[test]
    fn a_verdict_is_written_as_its_kind_of_end() {
        let id = TaskId::from("t1".to_string());
        let record = TaskRecord::new(id.clone(), "echo", 0, 3);
        assert!(matches!(Finish::of(Verdict::Requeue, record.clone()), Finish::Requeue));
        assert!(matches!(Finish::of(Verdict::End(TaskStatus::Dead), record.clone()), Finish::Final(_)));
        let now = Finish::of(Verdict::Retry { backoff: std::time::Duration::ZERO }, record);
        assert!(matches!(now, Finish::Retry { backoff_ms: 0, .. }), "{now:?}");
    }
}
