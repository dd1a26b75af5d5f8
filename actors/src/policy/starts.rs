//! When a type whose workers fail to start may try again: one rule for every way a start
//! fails (the program cannot be run, the worker exits before it is ready, it never answers
//! its first ping).
//!
//! Each failure in a row doubles the wait before the next try, from `start_retry_delay_ms`
//! up to `start_retry_max_delay_ms`; workers started together fail as one try (only a worker
//! started after the last counted failure counts again); a worker that becomes ready ends the
//! run of failures. From `max_start_failures` failures in a row the type has given up: its
//! waiting tasks fail with the reason, it takes no new ones, and it tries again at the longest
//! wait, so it recovers by itself once its workers can start.

use std::time::Duration;

use tokio::time::Instant;

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
    /// When the last counted failure was.
    counted_at: Option<Instant>,
    /// The program cannot be run at all (no worker was started).
    unusable: bool,
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
            counted_at: None,
            unusable: false,
        }
    }

    /// A worker started at `started` failed to start, seen at `now`, with `error`. A worker
    /// started before the last counted failure was part of that try: it only updates the error.
    pub(crate) fn failed(&mut self, now: Instant, started: Instant, error: String) -> StartFailed {
        self.error = Some(error);
        self.unusable = false;
        if self.counted_at.is_some_and(|at| started < at) {
            let retry_in = self.wait(now).unwrap_or_default();
            return StartFailed { retry_in, give_up: self.gave_up(), failures: self.failures };
        }
        self.count(now)
    }

    /// A program that cannot be run at all: given up at once.
    pub(crate) fn unusable(&mut self, now: Instant, error: String) -> StartFailed {
        self.failures = self.failures.max(self.give_up_after - 1);
        self.error = Some(error);
        self.unusable = true;
        self.count(now)
    }

    fn count(&mut self, now: Instant) -> StartFailed {
        self.failures = self.failures.saturating_add(1);
        self.counted_at = Some(now);
        let factor = 1u32.checked_shl(self.failures - 1).unwrap_or(u32::MAX);
        // Once given up, each try waits the longest.
        let retry_in = if self.gave_up() { self.max } else { self.base.saturating_mul(factor).min(self.max) };
        self.retry_at = Some(now + retry_in);
        StartFailed { retry_in, give_up: self.gave_up(), failures: self.failures }
    }

    /// A worker became ready: the run of failures is over.
    pub(crate) fn ready(&mut self) {
        self.failures = 0;
        self.retry_at = None;
        self.error = None;
        self.counted_at = None;
        self.unusable = false;
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
        if self.unusable {
            return Some(format!("workers of {task_type} cannot start: {error}"));
        }
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
        let waits: Vec<u128> = (0..6).map(|_| b.failed(t0, t0, "boom".into()).retry_in.as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.wait(t0), Some(Duration::from_millis(1000)));
        assert_eq!(b.wait(t0 + Duration::from_millis(400)), Some(Duration::from_millis(600)));
        assert_eq!(b.wait(t0 + Duration::from_secs(1)), None, "the wait is over");
        // Many more failures do not overflow.
        for _ in 0..100 {
            b.failed(t0, t0, "boom".into());
        }
        assert_eq!(b.failed(t0, t0, "boom".into()).retry_in, Duration::from_secs(1));
    }

    #[test]
    fn a_ready_worker_ends_the_run() {
        let t0 = Instant::now();
        let mut b = backoff(100, 1000, 3);
        b.failed(t0, t0, "exited with code 1".into());
        b.failed(t0, t0, "exited with code 1".into());
        assert_eq!(b.failures(), 2);
        b.ready();
        assert_eq!((b.failures(), b.wait(t0), b.reason("x")), (0, None, None));
        assert_eq!(b.failed(t0, t0, "again".into()).retry_in, Duration::from_millis(100));
    }

    #[test]
    fn gives_up_after_the_configured_failures() {
        let t0 = Instant::now();
        let mut b = backoff(10, 100, 3);
        assert!(!b.failed(t0, t0, "e".into()).give_up);
        assert!(!b.failed(t0, t0, "e".into()).give_up);
        let third = b.failed(t0, t0, "e".into());
        assert!(third.give_up && b.gave_up());
        assert_eq!(third.failures, 3);
        assert!(b.failed(t0, t0, "e".into()).give_up, "and stays given up while failures go on");
        let reason = b.reason("video").unwrap();
        assert_eq!(reason, "workers of video cannot start (4 failed starts in a row, last: e)");
        let status = b.status("video", t0).unwrap();
        assert_eq!(status, format!("{reason}; next try in 100 ms"), "given up: the longest wait");
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
        assert_eq!(f.retry_in, Duration::from_millis(100));
        assert_eq!(b.reason("x").unwrap(), "workers of x cannot start: no such program");
    }

    #[test]
    fn workers_started_together_fail_as_one_try() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = backoff(100, 1000, 3);
        assert_eq!(b.failed(t0 + ms(10), t0, "a".into()).failures, 1);
        let second = b.failed(t0 + ms(11), t0, "b".into());
        assert_eq!((second.failures, second.retry_in), (1, ms(99)));
        assert_eq!(b.reason("x").unwrap(), "workers of x cannot start (1 failed start in a row, last: b)");
        // A worker started after that failure is the next try.
        assert_eq!(b.failed(t0 + ms(300), t0 + ms(150), "c".into()).failures, 2);
    }
}
