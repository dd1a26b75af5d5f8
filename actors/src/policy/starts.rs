//! When a type whose workers fail to start may try again: one rule for every way a start
//! fails (the program cannot be run, the worker exits before it is ready, it never answers
//! its first ping).
//!
//! Each failure in a row doubles the wait before the next try, from `start_retry_delay_ms`
//! up to `start_retry_max_delay_ms`; a worker that becomes ready ends the run of failures.
//! From `max_start_failures` failures in a row the type has given up: its waiting tasks fail
//! with the reason, it takes no new ones, and it keeps trying at the longest wait, so it
//! recovers by itself once its workers can start.

use std::time::{Duration, Instant};

use crate::config::TypeConfig;

/// The start failures of one type in a row, and the wait they call for.
#[derive(Clone, Debug)]
pub(crate) struct StartBackoff {
    base: Duration,
    max: Duration,
    give_up_after: u32,
    failures: u32,
    retry_at: Option<Instant>,
    error: Option<String>,
}

/// What one more failure means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StartFailed {
    /// The wait before the next try.
    pub(crate) retry_in: Duration,
    /// Whether the type has now given up (its waiting tasks fail).
    pub(crate) give_up: bool,
    /// Failures in a row, this one included.
    pub(crate) failures: u32,
}

impl StartBackoff {
    pub(crate) fn new(cfg: &TypeConfig) -> StartBackoff {
        StartBackoff {
            base: Duration::from_millis(cfg.start_retry_delay_ms),
            max: Duration::from_millis(cfg.start_retry_max_delay_ms.max(cfg.start_retry_delay_ms)),
            give_up_after: cfg.max_start_failures.max(1),
            failures: 0,
            retry_at: None,
            error: None,
        }
    }

    /// A start failed at `now` with `error`.
    pub(crate) fn failed(&mut self, now: Instant, error: String) -> StartFailed {
        self.failures = self.failures.saturating_add(1);
        let factor = 1u32.checked_shl(self.failures - 1).unwrap_or(u32::MAX);
        let retry_in = self.base.saturating_mul(factor).min(self.max);
        self.retry_at = Some(now + retry_in);
        self.error = Some(error);
        StartFailed { retry_in, give_up: self.gave_up(), failures: self.failures }
    }

    /// A program that cannot be run at all: given up at once.
    pub(crate) fn unusable(&mut self, now: Instant, error: String) -> StartFailed {
        self.failures = self.failures.max(self.give_up_after - 1);
        self.failed(now, error)
    }

    /// A worker became ready: the run of failures is over.
    pub(crate) fn ready(&mut self) {
        self.failures = 0;
        self.retry_at = None;
        self.error = None;
    }

    /// How long to wait before the next try, if a wait is on at `now`.
    pub(crate) fn wait(&self, now: Instant) -> Option<Duration> {
        self.retry_at.map(|at| at.saturating_duration_since(now)).filter(|d| !d.is_zero())
    }

    /// Whether the type has given up: it takes no new tasks until a worker starts.
    pub(crate) fn gave_up(&self) -> bool {
        self.failures >= self.give_up_after
    }

    /// Failures in a row.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Why the type cannot start workers, while failures are counted (refusals, failed tasks).
    pub(crate) fn reason(&self, task_type: &str) -> Option<String> {
        let error = self.error.as_deref()?;
        let n = self.failures;
        let starts = if n == 1 { "start" } else { "starts" };
        Some(format!("workers of {task_type} cannot start ({n} failed {starts} in a row, last: {error})"))
    }

    /// [`StartBackoff::reason`] with when the next try comes (`/types`, `/health`).
    pub(crate) fn status(&self, task_type: &str, now: Instant) -> Option<String> {
        let reason = self.reason(task_type)?;
        Some(match self.wait(now) {
            Some(d) => format!("{reason}; next try in {} ms", d.as_millis()),
            None => format!("{reason}; trying again"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(base: u64, max: u64, give_up: u32) -> StartBackoff {
        let mut cfg = TypeConfig::defaults_for("x");
        cfg.start_retry_delay_ms = base;
        cfg.start_retry_max_delay_ms = max;
        cfg.max_start_failures = give_up;
        StartBackoff::new(&cfg)
    }

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = backoff(100, 1000, 10);
        let waits: Vec<u128> = (0..6).map(|_| b.failed(t0, "boom".into()).retry_in.as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.wait(t0), Some(Duration::from_millis(1000)));
        assert_eq!(b.wait(t0 + Duration::from_millis(400)), Some(Duration::from_millis(600)));
        assert_eq!(b.wait(t0 + Duration::from_secs(1)), None, "the wait is over");
        // Many more failures do not overflow.
        for _ in 0..100 {
            b.failed(t0, "boom".into());
        }
        assert_eq!(b.failed(t0, "boom".into()).retry_in, Duration::from_secs(1));
    }

    #[test]
    fn a_ready_worker_ends_the_run() {
        let t0 = Instant::now();
        let mut b = backoff(100, 1000, 3);
        b.failed(t0, "exited with code 1".into());
        b.failed(t0, "exited with code 1".into());
        assert_eq!(b.failures(), 2);
        b.ready();
        assert_eq!((b.failures(), b.wait(t0), b.reason("x")), (0, None, None));
        assert_eq!(b.failed(t0, "again".into()).retry_in, Duration::from_millis(100));
    }

    #[test]
    fn gives_up_after_the_configured_failures() {
        let t0 = Instant::now();
        let mut b = backoff(10, 100, 3);
        assert!(!b.failed(t0, "e".into()).give_up);
        assert!(!b.failed(t0, "e".into()).give_up);
        let third = b.failed(t0, "e".into());
        assert!(third.give_up && b.gave_up());
        assert_eq!(third.failures, 3);
        assert!(b.failed(t0, "e".into()).give_up, "and stays given up while failures go on");
        let reason = b.reason("video").unwrap();
        assert_eq!(reason, "workers of video cannot start (4 failed starts in a row, last: e)");
        let status = b.status("video", t0).unwrap();
        assert_eq!(status, format!("{reason}; next try in 80 ms"));
        assert_eq!(
            b.status("video", t0 + Duration::from_secs(1)).unwrap(),
            format!("{reason}; trying again")
        );
    }

    #[test]
    fn an_unusable_program_gives_up_at_once() {
        let t0 = Instant::now();
        let mut b = backoff(10, 100, 5);
        let f = b.unusable(t0, "no such program".into());
        assert!(f.give_up && f.failures == 5, "{f:?}");
    }
}
