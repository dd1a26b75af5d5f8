//! The health window of a pool: the task outcomes and unplanned worker exits of the last
//! five minutes, which the health verdict reads (see `health.rs`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How far back task outcomes and restarts count for health.
const HEALTH_WINDOW: Duration = Duration::from_secs(300);
/// Most task outcomes kept for the health window.
const MAX_RECENT: usize = 1000;

/// Outcomes and restarts in the health window.
#[derive(Debug, Default)]
pub(crate) struct HealthWindow {
    /// Finished tasks: when, and whether they failed.
    recent: VecDeque<(Instant, bool)>,
    /// Unplanned worker exits.
    restarts: VecDeque<Instant>,
}

impl HealthWindow {
    /// A task ended at `now`, failed or not. The window is pruned only once it holds twice
    /// its bound, so that recording stays cheap.
    #[inline]
    pub(crate) fn finished(&mut self, now: Instant, failed: bool) {
        self.recent.push_back((now, failed));
        if self.recent.len() > 2 * MAX_RECENT {
            self.prune(Instant::now());
        }
    }

    /// A worker exited unplanned at `now`.
    pub(crate) fn restarted(&mut self, now: Instant) {
        self.restarts.push_back(now);
    }

    /// Forgets what left the window as of `now`, and outcomes past the most kept.
    pub(crate) fn prune(&mut self, now: Instant) {
        let horizon = now.checked_sub(HEALTH_WINDOW);
        let old = |at: &Instant| horizon.is_some_and(|h| *at < h);
        while self.recent.front().is_some_and(|(at, _)| old(at)) || self.recent.len() > MAX_RECENT {
            self.recent.pop_front();
        }
        while self.restarts.front().is_some_and(old) {
            self.restarts.pop_front();
        }
    }

    /// Tasks finished in the window.
    pub(crate) fn finished_count(&self) -> u64 {
        self.recent.len() as u64
    }

    /// Tasks failed in the window.
    pub(crate) fn failed_count(&self) -> u64 {
        self.recent.iter().filter(|(_, failed)| *failed).count() as u64
    }

    /// Unplanned worker exits in the window.
    pub(crate) fn restart_count(&self) -> u64 {
        self.restarts.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{HEALTH_WINDOW, HealthWindow, MAX_RECENT};

    #[test]
    fn counts_outcomes_and_restarts() {
        let now = Instant::now();
        let mut w = HealthWindow::default();
        w.finished(now, false);
        w.finished(now, true);
        w.finished(now, true);
        w.restarted(now);
        assert_eq!((w.finished_count(), w.failed_count(), w.restart_count()), (3, 2, 1));
    }

    #[test]
    fn prune_forgets_what_left_the_window() {
        let t0 = Instant::now();
        let mut w = HealthWindow::default();
        w.finished(t0, true);
        w.restarted(t0);
        let t1 = t0 + Duration::from_secs(60);
        w.finished(t1, false);
        w.restarted(t1);
        // Exactly at the edge an entry still counts.
        w.prune(t0 + HEALTH_WINDOW);
        assert_eq!((w.finished_count(), w.restart_count()), (2, 2));
        w.prune(t0 + HEALTH_WINDOW + Duration::from_millis(1));
        assert_eq!((w.finished_count(), w.failed_count(), w.restart_count()), (1, 0, 1));
        w.prune(t1 + HEALTH_WINDOW + Duration::from_secs(1));
        assert_eq!((w.finished_count(), w.restart_count()), (0, 0));
    }

    #[test]
    fn keeps_at_most_the_bound_once_pruned() {
        let now = Instant::now();
        let mut w = HealthWindow::default();
        for i in 0..2 * MAX_RECENT {
            w.finished(now, i % 2 == 0);
        }
        // Not pruned yet: recording only prunes past twice the bound.
        assert_eq!(w.finished_count(), 2 * MAX_RECENT as u64);
        w.finished(now, false);
        assert_eq!(w.finished_count(), MAX_RECENT as u64);
        w.prune(now);
        assert_eq!(w.finished_count(), MAX_RECENT as u64);
    }
}
