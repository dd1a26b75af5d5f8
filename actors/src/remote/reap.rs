//! Reaping the leases that ran out anywhere (`REAP`): their instance died, or was cut off for
//! longer than a lease. The script decides nothing: it adopts each such task atomically (a
//! fresh lease, this instance as its `reaper`), so two instances reaping at once never both
//! have it. The lost attempt is then decided here by the retry rule, like any other attempt
//! ([`Failure::Lost`]), and its verdict written by `FINISH` ([`finish`](super::finish)):
//! queued again at once while attempts remain, dead-lettered after the last one.
//!
//! An adopted task is not held here (it runs nowhere): its lease is not renewed and a
//! reconcile leaves it alone. Should this instance die or be cut off before it writes the
//! verdict, the adopted lease runs out in turn and the next reap, anywhere, adopts it again.

use std::time::Duration;

use futures_util::future::join_all;

use super::{Finish, Finished, Remote, Writer};
use crate::error::Error;
use crate::policy::retry::{Failure, RetryPolicy, Verdict};
use crate::task::{TaskId, TaskRecord};

/// A task whose lease ran out, as `REAP` adopted it.
#[derive(Debug, PartialEq, Eq)]
struct Adopted {
    id: TaskId,
    task_type: String,
    /// The lost attempt's number.
    attempt: u32,
    /// `None` when the producer left it out: the type's.
    max_retries: Option<u32>,
    /// The instance that stopped renewing the lease.
    instance: String,
    /// The worker the lost attempt last reported from, if any.
    worker: Option<String>,
}

/// The values `REAP` answers per task.
const ADOPTED_FIELDS: usize = 6;

/// `REAP`'s reply: the tasks it adopted.
fn parse_reap(reply: Vec<String>) -> Vec<Adopted> {
    reply
        .chunks_exact(ADOPTED_FIELDS)
        .map(|f| Adopted {
            id: TaskId::from(f[0].clone()),
            task_type: f[1].clone(),
            attempt: f[2].parse().unwrap_or(1),
            max_retries: f[3].parse().ok(),
            instance: if f[4].is_empty() { "?".to_string() } else { f[4].clone() },
            worker: Some(f[5].clone()).filter(|w| !w.is_empty()),
        })
        .collect()
}

/// What one reap did with the tasks it adopted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reaped {
    /// Queued again for another attempt.
    pub(crate) retried: usize,
    /// Ended (dead-lettered: their last attempt was lost).
    pub(crate) ended: usize,
    /// Each verdict written, by task type, for the metrics.
    pub(crate) verdicts: Vec<(String, Verdict)>,
}

impl Reaped {
    /// Counts one verdict written.
    fn count(&mut self, task_type: &str, verdict: Verdict) {
        self.verdicts.push((task_type.to_string(), verdict));
        match verdict {
            Verdict::End(_) => self.ended += 1,
            Verdict::Retry { .. } | Verdict::Requeue => self.retried += 1,
        }
    }
}

impl Adopted {
    /// The verdict on the lost attempt under `policy` (`default_retries` when the task does
    /// not say its own), with the record to write it with.
    fn decide(&self, policy: &RetryPolicy, default_retries: u32, draining: bool) -> (Verdict, TaskRecord) {
        let max_retries = self.max_retries.unwrap_or(default_retries);
        let failure = Failure::Lost { instance: self.instance.clone() };
        let verdict = policy.decide(&failure, self.attempt, max_retries, draining);
        let mut record = TaskRecord::new(self.id.clone(), &self.task_type, 0, max_retries);
        record.status = verdict.status();
        record.attempts = self.attempt;
        record.error = Some(failure.message());
        record.worker_id = self.worker.clone();
        record.instance_id = Some(self.instance.clone());
        (verdict, record)
    }
}

impl Remote {
    /// Adopts the tasks whose lease ran out and writes the retry rule's verdict on each lost
    /// attempt. A verdict that cannot be written now is left to a later reap.
    pub(crate) async fn reap(&self) -> Result<Reaped, Error> {
        let reply: Vec<String> = self.observe(
            self.scripts
                .reap
                .key(self.keys.leases())
                .key(self.keys.stats())
                .arg(self.keys.base())
                .arg(&self.cfg.instance_id)
                .arg(self.cfg.lease_ms)
                .invoke_async(&mut self.gated()?)
                .await,
        )?;
        let adopted = parse_reap(reply);
        // All at once, so that they go to Redis in one batch; bounded, so that the heartbeat
        // (which renews this instance's own leases) never waits long behind other writes. A
        // verdict not written in time is left to a later reap, once its adopted lease ends.
        let bound = Duration::from_millis(self.cfg.heartbeat_ms.max(2) / 2);
        let written = tokio::time::timeout(bound, join_all(adopted.iter().map(|task| self.end_lost(task))))
            .await
            .unwrap_or_default();
        let mut reaped = Reaped::default();
        for (task, verdict) in adopted.iter().zip(written) {
            if let Some(verdict) = verdict {
                reaped.count(&task.task_type, verdict);
            }
        }
        Ok(reaped)
    }

    /// Writes the verdict on one adopted task's lost attempt; answers it when written.
    async fn end_lost(&self, task: &Adopted) -> Option<Verdict> {
        let limits = self.limits_of(&task.task_type);
        let (verdict, record) = task.decide(&limits.retry, limits.max_retries, self.stopping());
        let id = &task.id;
        match self
            .finish(&task.task_type, id, task.attempt, &Finish::of(verdict, record), Writer::Reaper)
            .await
        {
            Ok(Finished::Recorded) => {
                if verdict.end().is_some() {
                    // Waiters here read the record; others hear the done channel.
                    self.wake_waiters(id, None);
                }
                Some(verdict)
            }
            Ok(found) => {
                log::info!("task {id}: its reaped attempt {} was not ended here ({found:?})", task.attempt);
                None
            }
            Err(e) => {
                log::warn!("task {id}: cannot write how its lost attempt ended ({e}); a later reap will");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::task::TaskStatus;

    const SHARED: RetryPolicy =
        RetryPolicy { base_delay_ms: 1000, retry_on_memory_limit: false, durable: true };

    /// The status a lost attempt's record shows once written: `queued` or its end.
    fn status_of(task: &Adopted, default_retries: u32) -> TaskStatus {
        task.decide(&SHARED, default_retries, false).0.status()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn adopted(attempt: u32, max_retries: Option<u32>) -> Adopted {
        Adopted {
            id: TaskId::from("t1".to_string()),
            task_type: "echo".into(),
            attempt,
            max_retries,
            instance: "a".into(),
            worker: None,
        }
    }

    #[test]
    fn a_reap_reply_reads_as_the_adopted_tasks() {
        let reply = strings(&["t1", "echo", "2", "5", "a", "w-3", "t2", "video", "", "", "", ""]);
        let tasks = parse_reap(reply);
        assert_eq!(tasks.len(), 2);
        assert_eq!(
            tasks[0],
            Adopted {
                id: TaskId::from("t1".to_string()),
                task_type: "echo".into(),
                attempt: 2,
                max_retries: Some(5),
                instance: "a".into(),
                worker: Some("w-3".into()),
            }
        );
        // Fields a producer or an old record left out: the first attempt, the type's retries.
        let t2 = &tasks[1];
        assert_eq!((t2.attempt, t2.max_retries, t2.instance.as_str(), &t2.worker), (1, None, "?", &None));
        assert!(parse_reap(Vec::new()).is_empty());
        // A cut reply drops the incomplete task.
        assert_eq!(parse_reap(strings(&["t1", "echo", "1"])).len(), 0);
    }

    #[test]
    fn a_lost_attempt_with_attempts_left_is_queued_again_at_once_with_the_lease_error() {
        let (verdict, record) = adopted(2, Some(3)).decide(&SHARED, 0, false);
        assert_eq!(verdict, Verdict::Retry { backoff: Duration::ZERO });
        assert_eq!(record.status, TaskStatus::Queued);
        assert_eq!(record.error.as_deref(), Some("lease expired: instance a stopped renewing it"));
        assert_eq!((record.attempts, record.instance_id.as_deref()), (2, Some("a")));
        assert!(matches!(Finish::of(verdict, record), Finish::Retry { backoff_ms: 0, .. }));
    }

    #[test]
    fn a_lost_last_attempt_is_dead() {
        assert_eq!(status_of(&adopted(4, Some(3)), 0), TaskStatus::Dead);
        assert_eq!(status_of(&adopted(1, Some(0)), 3), TaskStatus::Dead);
        // Without its own retries, the type's count.
        assert_eq!(status_of(&adopted(2, None), 2), TaskStatus::Queued);
        assert_eq!(status_of(&adopted(2, None), 1), TaskStatus::Dead);
    }

    #[test]
    fn written_verdicts_are_counted_by_what_they_did() {
        let mut reaped = Reaped::default();
        let retry = Verdict::Retry { backoff: Duration::ZERO };
        reaped.count("a", retry);
        reaped.count("b", Verdict::End(TaskStatus::Dead));
        reaped.count("a", retry);
        assert_eq!((reaped.retried, reaped.ended), (2, 1));
        assert_eq!(reaped.verdicts[1], ("b".to_string(), Verdict::End(TaskStatus::Dead)));
    }
}
