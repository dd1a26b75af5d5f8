//! What a pool counts of its attempts: tasks completed and failed, the mean run time of the
//! completed ones and the percentiles of the most recent ones, and a running average of
//! recent attempts, which decides `auto_prefetch`.

use std::time::Duration;

/// `auto_prefetch` sends a task ahead while recent attempts average less than this.
const SHORT_BELOW: Duration = Duration::from_millis(1);
/// Weight of the newest attempt in the running average of attempt durations.
const RECENT_WEIGHT: f64 = 0.2;
/// How many of the latest completed tasks the duration percentiles are taken over.
pub(super) const KEPT_DURATIONS: usize = 512;

/// The counts of one pool.
#[derive(Debug, Default)]
pub(super) struct Tally {
    completed: u64,
    failed: u64,
    busy_ms_total: u64,
    /// Running average of how long recent attempts took, in seconds (`None` before the first).
    recent_secs: Option<f64>,
    /// The run times (ms) of the latest completed tasks, a ring of [`KEPT_DURATIONS`].
    latest_ms: Vec<u32>,
}

/// The median and 95th percentile of the latest completed tasks' run times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Percentiles {
    pub(super) p50_ms: u64,
    pub(super) p95_ms: u64,
}

impl Tally {
    /// A task completed; its attempt took `took`.
    #[inline]
    pub(super) fn completed(&mut self, took: Duration) {
        self.completed += 1;
        let ms = took.as_millis() as u64;
        self.busy_ms_total += ms;
        let ms = u32::try_from(ms).unwrap_or(u32::MAX);
        if self.latest_ms.len() < KEPT_DURATIONS {
            self.latest_ms.push(ms);
        } else {
            self.latest_ms[(self.completed as usize - 1) % KEPT_DURATIONS] = ms;
        }
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

    /// The median and 95th percentile (nearest rank) of the latest completed tasks' run
    /// times; `None` before the first.
    pub(super) fn percentiles(&self) -> Option<Percentiles> {
        let mut sorted = self.latest_ms.clone();
        sorted.sort_unstable();
        let rank = |q: f64| {
            let at = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            u64::from(sorted[at - 1])
        };
        (!sorted.is_empty()).then(|| Percentiles { p50_ms: rank(0.50), p95_ms: rank(0.95) })
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
    fn percentiles_are_of_the_latest_completed_tasks() {
        let mut t = Tally::default();
        assert_eq!(t.percentiles(), None);
        t.completed(Duration::from_millis(7));
        assert_eq!(t.percentiles(), Some(Percentiles { p50_ms: 7, p95_ms: 7 }));
        let mut t = Tally::default();
        for ms in 1..=100 {
            t.completed(Duration::from_millis(ms));
        }
        t.failed();
        assert_eq!(t.percentiles(), Some(Percentiles { p50_ms: 50, p95_ms: 95 }));
        // Past the ring's size, the oldest run times are forgotten.
        for _ in 0..KEPT_DURATIONS {
            t.completed(Duration::from_millis(1000));
        }
        assert_eq!(t.percentiles(), Some(Percentiles { p50_ms: 1000, p95_ms: 1000 }));
        t.completed(Duration::from_secs(u64::from(u32::MAX)));
        assert_eq!(t.percentiles().map(|p| p.p95_ms), Some(1000));
    }

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
