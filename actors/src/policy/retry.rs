//! The retry rule: how an attempt that ended without a result decides the task's next step,
//! for every backend (in the style of tower's `retry::Policy`: the decision apart from the
//! mechanism that carries it out).
//!
//! The pools carry the verdict out: with the in-process backend, a retry waits in the pool
//! and an end is written to the task store; with a durable backend (Redis), the verdict goes
//! back to the backend, which schedules the retry, re-queues or records the end where every
//! instance sees it. An attempt whose instance went away (its lease ran out) is decided by
//! the same rule, on the instance that reaps the lease.

use std::time::Duration;

use super::retry_backoff;
use crate::config::TypeConfig;
use crate::executor::TaskError;
use crate::task::TaskStatus;

/// How an attempt ended without a result.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The task's code returned an error.
    Error(TaskError),
    /// The worker died under it.
    Crash(String),
    /// The attempt ran past its timeout (the task's timeout).
    Timeout(Duration),
    /// A caller cancelled it.
    Cancelled,
    /// The pool shut down before it could run or finish.
    Shutdown,
    /// The worker passed the type's memory limit and was killed.
    MemoryLimit(String),
    /// The worker's GPU memory passed the type's `gpu_memory_mb` and it was killed.
    GpuMemoryLimit(String),
    /// The worker wrote a stdout line past `max_output_line_mb` and was killed.
    OutputTooLarge(String),
    /// No worker of the type could be started to run it (the type gave up starting).
    NotStarted(String),
    /// Its instance stopped renewing the attempt's lease (it died, or was cut off for longer
    /// than the lease): another instance reaped it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Lost { instance: String },
}

impl Failure {
    /// Every [`Failure::reason`], for the metrics' zero series.
    pub(crate) const REASONS: [&'static str; 10] = [
        "error",
        "crashed",
        "timeout",
        "cancelled",
        "shutdown",
        "memory_limit_exceeded",
        "gpu_memory_limit_exceeded",
        "output_too_large",
        "not_started",
        "lease_expired",
    ];

    /// The kind of failure as the `reason` label of `workerpool_task_retries_total` names it:
    /// one of a closed set, never the task's own message.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Failure::Error(_) => "error",
            Failure::Crash(_) => "crashed",
            Failure::Timeout(_) => "timeout",
            Failure::Cancelled => "cancelled",
            Failure::Shutdown => "shutdown",
            Failure::MemoryLimit(_) => "memory_limit_exceeded",
            Failure::GpuMemoryLimit(_) => "gpu_memory_limit_exceeded",
            Failure::OutputTooLarge(_) => "output_too_large",
            Failure::NotStarted(_) => "not_started",
            Failure::Lost { .. } => "lease_expired",
        }
    }

    /// The task's error, as its record and events show it.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Error(e) => e.message.clone(),
            Failure::Crash(m) | Failure::NotStarted(m) => m.clone(),
            Failure::Timeout(t) => format!("timed out after {} ms", t.as_millis()),
            Failure::Cancelled => "cancelled".to_string(),
            Failure::Shutdown => "shutdown".to_string(),
            Failure::MemoryLimit(detail) => format!("memory_limit_exceeded: {detail}"),
            Failure::GpuMemoryLimit(detail) => format!("gpu_memory_limit_exceeded: {detail}"),
            Failure::OutputTooLarge(detail) => format!("output_too_large: {detail}"),
            Failure::Lost { instance } => format!("lease expired: instance {instance} stopped renewing it"),
        }
    }
}

/// What happens to a task after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Run it again after `backoff`, the attempt spent.
    Retry { backoff: Duration },
    /// It ends with this status.
    End(TaskStatus),
    /// Back to the head of its queue without spending the attempt: it did nothing wrong, and
    /// another instance may run it.
    Requeue,
}

impl Verdict {
    /// The status the task ends with, if it ends.
    pub(crate) fn end(self) -> Option<TaskStatus> {
        match self {
            Verdict::End(status) => Some(status),
            Verdict::Retry { .. } | Verdict::Requeue => None,
        }
    }

    /// The status its record shows: the end, or `queued` while it goes on.
    pub(crate) fn status(self) -> TaskStatus {
        self.end().unwrap_or(TaskStatus::Queued)
    }
}

/// The retry rule of one type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// The first retry's delay, doubled for each later one (`retry_delay_ms`).
    pub(crate) base_delay_ms: u64,
    /// Whether a task whose worker passed its memory limit is retried
    /// (`retry_on_memory_limit`).
    pub(crate) retry_on_memory_limit: bool,
    /// Whether the queue outlives this instance (Redis): then what this instance cannot run
    /// (shutdown, no worker can start) goes back to the queue for another one.
    pub(crate) durable: bool,
}

impl RetryPolicy {
    /// The rule of a type configured as `cfg`; `durable` when its queue outlives this
    /// instance.
    pub(crate) fn for_type(cfg: &TypeConfig, durable: bool) -> RetryPolicy {
        RetryPolicy {
            base_delay_ms: cfg.retry_delay_ms,
            retry_on_memory_limit: cfg.retry_on_memory_limit,
            durable,
        }
    }

    /// The verdict on attempt number `attempt` (1 = the first) of a task allowed
    /// `max_retries` retries, while the pool is `draining` or not.
    ///
    /// A retryable failure (an error marked retryable, a crash, a timeout, a memory or GPU
    /// memory limit with `retry_on_memory_limit`, a lost instance) is retried while attempts remain; after
    /// the last one the task ends `dead` (`timed_out` for a timeout). A retry waits its
    /// backoff, except after a lost instance: the task did nothing wrong and had waited its
    /// turn already, so it runs again at once. A draining pool retries only through a
    /// durable queue. Anything else ends the task: `failed`, or `cancelled`.
    pub(crate) fn decide(
        &self,
        failure: &Failure,
        attempt: u32,
        max_retries: u32,
        draining: bool,
    ) -> Verdict {
        let backoff = retry_backoff(self.base_delay_ms, attempt);
        // When it may be retried (after how long), and how it ends otherwise.
        let (retry, end) = match failure {
            Failure::Error(e) if e.retryable => (Some(backoff), TaskStatus::Dead),
            Failure::Error(_) | Failure::OutputTooLarge(_) => (None, TaskStatus::Failed),
            Failure::Crash(_) => (Some(backoff), TaskStatus::Dead),
            Failure::Timeout(_) => (Some(backoff), TaskStatus::TimedOut),
            Failure::MemoryLimit(_) | Failure::GpuMemoryLimit(_) if self.retry_on_memory_limit => {
                (Some(backoff), TaskStatus::Dead)
            }
            Failure::MemoryLimit(_) | Failure::GpuMemoryLimit(_) => (None, TaskStatus::Failed),
            Failure::Lost { .. } => (Some(Duration::ZERO), TaskStatus::Dead),
            Failure::Cancelled => (None, TaskStatus::Cancelled),
            Failure::Shutdown | Failure::NotStarted(_) if self.durable => return Verdict::Requeue,
            Failure::Shutdown | Failure::NotStarted(_) => (None, TaskStatus::Failed),
        };
        match retry {
            Some(backoff) if attempt <= max_retries && (!draining || self.durable) => {
                Verdict::Retry { backoff }
            }
            _ => Verdict::End(end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: RetryPolicy =
        RetryPolicy { base_delay_ms: 100, retry_on_memory_limit: false, durable: false };
    const SHARED: RetryPolicy = RetryPolicy { durable: true, ..LOCAL };

    fn error(retryable: bool) -> Failure {
        Failure::Error(TaskError { message: "boom".into(), retryable })
    }

    #[test]
    fn every_failure_has_one_of_the_listed_reasons() {
        let all = [
            error(true),
            Failure::Crash("x".into()),
            Failure::Timeout(Duration::from_secs(1)),
            Failure::Cancelled,
            Failure::Shutdown,
            Failure::MemoryLimit("x".into()),
            Failure::GpuMemoryLimit("x".into()),
            Failure::OutputTooLarge("x".into()),
            Failure::NotStarted("x".into()),
            Failure::Lost { instance: "i".into() },
        ];
        let reasons: Vec<&str> = all.iter().map(Failure::reason).collect();
        assert_eq!(reasons, Failure::REASONS);
    }

    #[test]
    fn retryable_failures_back_off_while_attempts_remain() {
        for failure in
            [error(true), Failure::Crash("exit 1".into()), Failure::Timeout(Duration::from_secs(1))]
        {
            assert_eq!(
                LOCAL.decide(&failure, 1, 2, false),
                Verdict::Retry { backoff: Duration::from_millis(100) }
            );
            assert_eq!(
                LOCAL.decide(&failure, 2, 2, false),
                Verdict::Retry { backoff: Duration::from_millis(200) }
            );
        }
    }

    #[test]
    fn the_last_attempt_ends_dead_or_timed_out() {
        assert_eq!(LOCAL.decide(&error(true), 3, 2, false), Verdict::End(TaskStatus::Dead));
        assert_eq!(LOCAL.decide(&Failure::Crash("x".into()), 1, 0, false), Verdict::End(TaskStatus::Dead));
        let timeout = Failure::Timeout(Duration::from_secs(1));
        assert_eq!(LOCAL.decide(&timeout, 3, 2, false), Verdict::End(TaskStatus::TimedOut));
    }

    #[test]
    fn final_failures_end_at_once() {
        assert_eq!(LOCAL.decide(&error(false), 1, 5, false), Verdict::End(TaskStatus::Failed));
        let big = Failure::OutputTooLarge("64 MiB".into());
        assert_eq!(SHARED.decide(&big, 1, 5, false), Verdict::End(TaskStatus::Failed));
        assert_eq!(SHARED.decide(&Failure::Cancelled, 1, 5, false), Verdict::End(TaskStatus::Cancelled));
    }

    #[test]
    fn memory_limits_retry_only_when_configured() {
        for over in [Failure::MemoryLimit("rss 900 MiB".into()), Failure::GpuMemoryLimit("2 GiB".into())] {
            assert_eq!(LOCAL.decide(&over, 1, 3, false), Verdict::End(TaskStatus::Failed));
            let retrying = RetryPolicy { retry_on_memory_limit: true, ..LOCAL };
            assert!(matches!(retrying.decide(&over, 1, 3, false), Verdict::Retry { .. }));
            assert_eq!(retrying.decide(&over, 4, 3, false), Verdict::End(TaskStatus::Dead));
        }
    }

    #[test]
    fn a_draining_pool_retries_only_through_a_durable_queue() {
        assert_eq!(LOCAL.decide(&error(true), 1, 3, true), Verdict::End(TaskStatus::Dead));
        assert!(matches!(SHARED.decide(&error(true), 1, 3, true), Verdict::Retry { .. }));
    }

    #[test]
    fn what_this_instance_cannot_run_goes_back_to_a_durable_queue() {
        for failure in [Failure::Shutdown, Failure::NotStarted("no worker".into())] {
            assert_eq!(SHARED.decide(&failure, 1, 0, true), Verdict::Requeue);
            assert_eq!(LOCAL.decide(&failure, 1, 0, true), Verdict::End(TaskStatus::Failed));
        }
    }

    #[test]
    fn a_lost_instance_counts_the_attempt_and_retries_at_once_while_attempts_remain() {
        let lost = Failure::Lost { instance: "a".into() };
        for policy in [LOCAL, SHARED] {
            assert_eq!(policy.decide(&lost, 1, 2, false), Verdict::Retry { backoff: Duration::ZERO });
            assert_eq!(policy.decide(&lost, 2, 2, false), Verdict::Retry { backoff: Duration::ZERO });
            // The lost attempt was the last one.
            assert_eq!(policy.decide(&lost, 3, 2, false), Verdict::End(TaskStatus::Dead));
            assert_eq!(policy.decide(&lost, 1, 0, false), Verdict::End(TaskStatus::Dead));
        }
        // Only a shared queue has lost instances; it retries them while draining too.
        assert_eq!(SHARED.decide(&lost, 1, 2, true), Verdict::Retry { backoff: Duration::ZERO });
    }

    #[test]
    fn a_type_configuration_gives_its_rule() {
        let mut cfg = TypeConfig::defaults_for("text_processing");
        cfg.retry_delay_ms = 250;
        cfg.retry_on_memory_limit = true;
        let policy = RetryPolicy::for_type(&cfg, true);
        assert_eq!((policy.base_delay_ms, policy.retry_on_memory_limit, policy.durable), (250, true, true));
    }

    #[test]
    fn messages_name_the_failure() {
        assert_eq!(Failure::Timeout(Duration::from_millis(250)).message(), "timed out after 250 ms");
        assert_eq!(Failure::MemoryLimit("rss 2 GiB".into()).message(), "memory_limit_exceeded: rss 2 GiB");
        assert_eq!(Failure::OutputTooLarge("x".into()).message(), "output_too_large: x");
        assert_eq!(Failure::GpuMemoryLimit("x".into()).message(), "gpu_memory_limit_exceeded: x");
        assert_eq!(Failure::Shutdown.message(), "shutdown");
        assert_eq!(
            Failure::Lost { instance: "worker-7".into() }.message(),
            "lease expired: instance worker-7 stopped renewing it"
        );
    }
}
