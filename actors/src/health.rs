//! The health verdict of a pool: a pure function of its figures.
//!
//! Per type, over the health window (the last five minutes of finished tasks and worker
//! restarts):
//! - **unhealthy** when at least [`MIN_SAMPLE`] tasks finished and more than
//!   [`UNHEALTHY_ERROR_RATE`] of them failed, or [`UNHEALTHY_RESTARTS`] workers were replaced;
//! - **degraded** when more than [`DEGRADED_ERROR_RATE`] failed (same sample floor),
//!   [`DEGRADED_RESTARTS`] workers were replaced, or the oldest ready task has waited longer
//!   than [`DEGRADED_WAIT_MS`];
//! - healthy otherwise.
//!
//! The pool is unhealthy when it is shutting down or every type that has run tasks is
//! unhealthy, degraded when any type is not healthy or a GPU is drained (each drained GPU
//! is named among the reasons), healthy otherwise.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::answers::PoolStats;

/// Finished tasks a type needs before its error rate counts.
pub const MIN_SAMPLE: u64 = 10;
/// Error rate above which a type is degraded.
pub const DEGRADED_ERROR_RATE: f64 = 0.25;
/// Error rate above which a type is unhealthy.
pub const UNHEALTHY_ERROR_RATE: f64 = 0.75;
/// Worker restarts in the window from which a type is degraded.
pub const DEGRADED_RESTARTS: u64 = 3;
/// Worker restarts in the window from which a type is unhealthy.
pub const UNHEALTHY_RESTARTS: u64 = 10;
/// Wait of the oldest ready task above which a type is degraded.
pub const DEGRADED_WAIT_MS: u64 = 60_000;

/// A verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// All is well.
    Healthy,
    /// Working, with a problem worth a look.
    Degraded,
    /// Not fit to take work.
    Unhealthy,
}

/// The health of one type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeHealth {
    /// The verdict.
    pub status: HealthStatus,
    /// Failed / finished tasks.
    pub error_rate: f64,
    /// Finished tasks the rate is taken over.
    pub finished: u64,
    /// Workers replaced in the window.
    pub restarts: u64,
    /// How long the oldest ready task has waited.
    pub oldest_wait_ms: u64,
    /// Tasks waiting.
    pub queue_length: usize,
    /// Why it is not healthy.
    pub reasons: Vec<String>,
}

/// The health of the pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// Per type.
    pub types: BTreeMap<String, TypeHealth>,
    /// Why it is not healthy.
    pub reasons: Vec<String>,
}

/// Judges a pool from its figures.
///
/// # Examples
/// ```
/// use workerpool_actors::{HealthStatus, PoolStats, assess_health};
/// let report = assess_health(&PoolStats::default(), false);
/// assert_eq!(report.status, HealthStatus::Healthy);
/// assert_eq!(assess_health(&PoolStats::default(), true).status, HealthStatus::Unhealthy);
/// ```
pub fn assess_health(stats: &PoolStats, shutting_down: bool) -> HealthReport {
    let mut types = BTreeMap::new();
    for (name, t) in &stats.by_type {
        let finished = t.recent_finished;
        let error_rate = if finished == 0 { 0.0 } else { t.recent_failed as f64 / finished as f64 };
        let mut reasons = Vec::new();
        let mut status = HealthStatus::Healthy;
        if finished >= MIN_SAMPLE && error_rate > UNHEALTHY_ERROR_RATE {
            status = HealthStatus::Unhealthy;
            reasons.push(format!("{:.0}% of {finished} tasks failed", error_rate * 100.0));
        } else if finished >= MIN_SAMPLE && error_rate > DEGRADED_ERROR_RATE {
            status = HealthStatus::Degraded;
            reasons.push(format!("{:.0}% of {finished} tasks failed", error_rate * 100.0));
        }
        if t.recent_restarts >= UNHEALTHY_RESTARTS {
            status = HealthStatus::Unhealthy;
            reasons.push(format!("{} workers replaced in five minutes", t.recent_restarts));
        } else if t.recent_restarts >= DEGRADED_RESTARTS {
            status = status.max(HealthStatus::Degraded);
            reasons.push(format!("{} workers replaced in five minutes", t.recent_restarts));
        }
        if t.start_failures > 0 {
            let status_now = if t.cannot_start { HealthStatus::Unhealthy } else { HealthStatus::Degraded };
            status = status.max(status_now);
            let why = t.start_blocked.clone();
            reasons.push(
                why.unwrap_or_else(|| format!("{} workers failed to start in a row", t.start_failures)),
            );
        } else if let Some(why) = t.start_blocked.as_ref().filter(|_| t.ready > 0) {
            // Tasks wait for a worker that may not start yet (CPU, memory, GPU room): say why.
            reasons.push(format!("tasks wait: {why}"));
        }
        if t.oldest_wait_ms > DEGRADED_WAIT_MS {
            status = status.max(HealthStatus::Degraded);
            reasons.push(format!("the oldest task has waited {} s", t.oldest_wait_ms / 1000));
        }
        let health = TypeHealth {
            status,
            error_rate,
            finished,
            restarts: t.recent_restarts,
            oldest_wait_ms: t.oldest_wait_ms,
            queue_length: t.queued,
            reasons,
        };
        types.insert(name.clone(), health);
    }
    let mut reasons = Vec::new();
    let active: Vec<&TypeHealth> = types.values().filter(|t| t.finished > 0 || t.restarts > 0).collect();
    let none_can_start = !stats.by_type.is_empty() && stats.by_type.values().all(|t| t.cannot_start);
    let status = if shutting_down {
        reasons.push("shutting down".to_string());
        HealthStatus::Unhealthy
    } else if none_can_start {
        reasons.push("no type can start workers".to_string());
        HealthStatus::Unhealthy
    } else if !active.is_empty() && active.iter().all(|t| t.status == HealthStatus::Unhealthy) {
        reasons.push("every type that ran tasks is unhealthy".to_string());
        HealthStatus::Unhealthy
    } else if !stats.drained_gpus.is_empty() {
        HealthStatus::Degraded
    } else {
        types.values().map(|t| t.status).max().unwrap_or(HealthStatus::Healthy).min(HealthStatus::Degraded)
    };
    for (uuid, why) in &stats.drained_gpus {
        reasons.push(format!("GPU {uuid} drained: {why}"));
    }
    for (name, t) in &types {
        reasons.extend(t.reasons.iter().map(|r| format!("{name}: {r}")));
    }
    HealthReport { status, types, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::TypeStats;

    fn stats(types: &[(&str, u64, u64, u64)]) -> PoolStats {
        let mut s = PoolStats::default();
        for &(name, ok, failed, wait) in types {
            let t = TypeStats {
                recent_finished: ok + failed,
                recent_failed: failed,
                oldest_wait_ms: wait,
                ..TypeStats::default()
            };
            s.by_type.insert(name.to_string(), t);
        }
        s
    }

    #[test]
    fn error_rates_and_waits_decide() {
        let r = assess_health(&stats(&[("a", 100, 1, 0), ("b", 0, 0, 0)]), false);
        assert_eq!(r.status, HealthStatus::Healthy);
        let r = assess_health(&stats(&[("a", 6, 4, 0), ("b", 10, 0, 0)]), false);
        assert_eq!(r.types["a"].status, HealthStatus::Degraded);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.reasons[0].starts_with("a: 40% of 10 tasks failed"), "{:?}", r.reasons);
        let r = assess_health(&stats(&[("a", 1, 9, 0), ("b", 10, 0, 0)]), false);
        assert_eq!((r.types["a"].status, r.status), (HealthStatus::Unhealthy, HealthStatus::Degraded));
        let r = assess_health(&stats(&[("a", 1, 9, 0), ("b", 0, 0, 0)]), false);
        assert_eq!(r.status, HealthStatus::Unhealthy);
        let r = assess_health(&stats(&[("a", 0, 3, 0)]), false);
        assert_eq!(r.status, HealthStatus::Healthy, "too few tasks to judge");
        let r = assess_health(&stats(&[("a", 5, 0, 61_000)]), false);
        assert_eq!(r.status, HealthStatus::Degraded);
        let mut s = stats(&[("a", 5, 0, 0)]);
        s.by_type.get_mut("a").unwrap().recent_restarts = 3;
        assert_eq!(assess_health(&s, false).status, HealthStatus::Degraded);
        s.by_type.get_mut("a").unwrap().recent_restarts = 10;
        let r = assess_health(&s, false);
        assert_eq!(r.status, HealthStatus::Unhealthy);
        assert!(r.reasons.iter().any(|x| x.contains("10 workers replaced")), "{:?}", r.reasons);
    }

    #[test]
    fn a_drained_gpu_degrades_the_pool_and_is_named() {
        let mut s = stats(&[("a", 10, 0, 0)]);
        s.drained_gpus.insert("GPU-1".into(), "gone from the GPU sample".into());
        let r = assess_health(&s, false);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert_eq!(r.reasons, ["GPU GPU-1 drained: gone from the GPU sample"]);
        assert_eq!(assess_health(&s, true).status, HealthStatus::Unhealthy);
    }

    #[test]
    fn failed_starts_degrade_then_make_a_type_unhealthy() {
        let mut s = stats(&[("a", 0, 0, 0), ("b", 0, 0, 0)]);
        let a = s.by_type.get_mut("a").unwrap();
        a.start_failures = 2;
        a.start_blocked = Some("workers of a cannot start (2 failed starts in a row, last: boom)".into());
        let r = assess_health(&s, false);
        assert_eq!((r.types["a"].status, r.status), (HealthStatus::Degraded, HealthStatus::Degraded));
        assert!(r.reasons.iter().any(|x| x.starts_with("a: workers of a cannot start")), "{:?}", r.reasons);
        s.by_type.get_mut("a").unwrap().cannot_start = true;
        let r = assess_health(&s, false);
        assert_eq!((r.types["a"].status, r.status), (HealthStatus::Unhealthy, HealthStatus::Degraded));
        s.by_type.remove("b");
        let r = assess_health(&s, false);
        assert_eq!(r.status, HealthStatus::Unhealthy, "its only type cannot start");
        assert!(r.reasons.contains(&"no type can start workers".to_string()), "{:?}", r.reasons);
    }
}
