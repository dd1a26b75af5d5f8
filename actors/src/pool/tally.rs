//! What a pool counts of its attempts: tasks completed and failed, the mean run time of the
//! completed ones, and a running average of recent attempts, which decides `auto_prefetch`.

use std::time::Duration;

/// `auto_prefetch` sends a task ahead while recent attempts average less than this.
const SHORT_BELOW: Duration = Duration::from_millis(1);
/// Weight of the newest attempt in the running average of attempt durations.
const RECENT_WEIGHT: f64 = 0.2;

/// The counts of one pool.
#[derive(Debug, Default)]
pub(super) struct Tally {
    completed: u64,
    failed: u64,
    busy_ms_total: u64,
    /// Running average of how long recent attempts took, in seconds (`None` before the first).
    recent_secs: Option<f64>,
}

impl Tally {
    /// A task completed; its attempt took `took`.
    #[inline]
    pub(super) fn completed(&mut self, took: Duration) {
        self.completed += 1;
        self.busy_ms_total += took.as_millis() as u64;
        self.attempt_took(took);
    }

    /// A task ended without a result (cancels are not counted).
    #[inline]
    pub(super) fn failed(&mut self) {
        self.failed += 1;
    }

    /// An attempt took `took` (a timed-out one counts as long as its timeout).
    #[inline]
    pub(super) fn attempt_took(&mut self, took: Duration) {
        let took = took.as_secs_f64();
        self.recent_secs = Some(self.recent_secs.map_or(took, |avg| avg + RECENT_WEIGHT * (took - avg)));
    }

    /// Whether recent attempts are short enough for `auto_prefetch` to send tasks ahead.
    #[inline]
    pub(super) fn short_attempts(&self) -> bool {
        self.recent_secs.is_some_and(|s| s < SHORT_BELOW.as_secs_f64())
    }

    pub(super) fn completed_count(&self) -> u64 {
        self.completed
    }

    pub(super) fn failed_count(&self) -> u64 {
        self.failed
    }

    /// The mean run time of completed tasks, in milliseconds (0 before the first).
    pub(super) fn avg_task_ms(&self) -> f64 {
        if self.completed == 0 { 0.0 } else { self.busy_ms_total as f64 / self.completed as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_is_over_completed_tasks_only() {
        let mut t = Tally::default();
        assert_eq!(t.avg_task_ms(), 0.0);
        t.completed(Duration::from_millis(10));
        t.completed(Duration::from_millis(30));
        t.failed();
        t.attempt_took(Duration::from_secs(60));
        assert_eq!((t.completed_count(), t.failed_count(), t.avg_task_ms()), (2, 1, 20.0));
    }

    #[test]
    fn attempts_are_short_while_their_running_average_is_under_a_millisecond() {
        let mut t = Tally::default();
        assert!(!t.short_attempts(), "nothing is known before the first attempt");
        t.completed(Duration::from_micros(100));
        assert!(t.short_attempts());
        // Each attempt moves the average by a fifth of the difference: 0.1 + 0.2 · 5 = 1.1 ms.
        t.attempt_took(Duration::from_micros(5_100));
        assert!(!t.short_attempts(), "{t:?}");
        // 1.1 − 0.2 · 1 = 0.9 ms.
        t.completed(Duration::from_micros(100));
        assert!(t.short_attempts(), "{t:?}");
    }
}
