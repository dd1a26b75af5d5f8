//! [`TypeMetrics`]: the handles a pool updates on its hot path, looked up once per type when
//! the pool starts, so counting an outcome is an array scan over a handful of entries with
//! no hashing and no allocation.

use prometheus::{Histogram, IntCounter};

use super::PoolMetrics;
use crate::config::TypeConfig;
use crate::policy::retry::Failure;
use crate::pool::StopReason;
use crate::task::TaskStatus;

/// The final statuses a task can end with: the `outcome` label of `workerpool_tasks_total`.
pub(crate) const OUTCOMES: [TaskStatus; 5] = [
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::TimedOut,
    TaskStatus::Cancelled,
    TaskStatus::Dead,
];

/// The per-type handles a pool updates on its hot path.
#[derive(Clone, Debug)]
pub(crate) struct TypeMetrics {
    pub(crate) completed: IntCounter,
    pub(crate) duration: Histogram,
    pub(crate) wait: Histogram,
    pub(crate) peak_rss: Histogram,
    pub(crate) gpu_seconds: prometheus::Counter,
    outcomes: [(TaskStatus, IntCounter); OUTCOMES.len()],
    retries: [(&'static str, IntCounter); Failure::REASONS.len()],
}

impl TypeMetrics {
    /// The handles of `task_type`; every label set of the type is created here, so each
    /// `{type,outcome}`, `{type,reason}` and `{type,state}` series reads 0 before anything
    /// happened rather than being absent.
    pub(crate) fn new(m: &PoolMetrics, task_type: &str, cfg: &TypeConfig) -> TypeMetrics {
        for reason in StopReason::UNPLANNED {
            m.worker_restarts.with_label_values(&[task_type, reason.as_str()]);
        }
        for direction in ["up", "down"] {
            m.scale_events.with_label_values(&[task_type, direction]);
        }
        for state in ["idle", "busy", "starting"] {
            m.workers.with_label_values(&[task_type, state]);
        }
        m.queue_length.with_label_values(&[task_type]);
        m.dead_letters.with_label_values(&[task_type]);
        m.queue_oldest_wait.with_label_values(&[task_type]);
        m.tasks_enqueued.with_label_values(&[task_type]);
        TypeMetrics {
            completed: m.tasks_total.with_label_values(&[task_type, TaskStatus::Completed.as_str()]),
            duration: histogram(m, "workerpool_task_duration_seconds", task_type, &cfg.duration_buckets_s),
            wait: histogram(m, "workerpool_task_wait_seconds", task_type, &cfg.wait_buckets_s),
            peak_rss: m.task_peak_rss.with_label_values(&[task_type]),
            gpu_seconds: m.task_gpu_seconds.with_label_values(&[task_type]),
            outcomes: OUTCOMES.map(|s| (s, m.tasks_total.with_label_values(&[task_type, s.as_str()]))),
            retries: Failure::REASONS.map(|r| (r, m.task_retries.with_label_values(&[task_type, r]))),
        }
    }

    /// Counts a task that ended without a result, once, by its final status.
    pub(crate) fn ended(&self, status: TaskStatus) {
        if let Some((_, c)) = self.outcomes.iter().find(|(s, _)| *s == status) {
            c.inc();
        }
    }

    /// Counts a failed attempt that will be retried, by the kind of failure.
    pub(crate) fn retried(&self, failure: &Failure) {
        let reason = failure.reason();
        if let Some((_, c)) = self.retries.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }
}

/// The type's histogram of `family`; one that cannot be registered (a name taken by the
/// embedding application) still counts, unexposed, rather than failing the pool.
fn histogram(
    m: &PoolMetrics,
    family: &'static str,
    task_type: &str,
    buckets: &Option<Vec<f64>>,
) -> Histogram {
    m.histogram(family, task_type, buckets.as_deref()).unwrap_or_else(|e| {
        log::warn!("{family} of {task_type} cannot be registered: {e}");
        Histogram::with_opts(prometheus::HistogramOpts::new(family, "unregistered"))
            .unwrap_or_else(|_| unreachable!("the family name and help are valid"))
    })
}

#[cfg(test)]
mod tests {
    use prometheus::Registry;

    use super::*;

    fn value(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        registry.gather().iter().filter(|f| f.name() == name).flat_map(|f| f.get_metric().to_vec()).find_map(
            |m| {
                let has =
                    |(k, v): &(&str, &str)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v);
                labels.iter().all(has).then(|| m.get_counter().get_value() + m.get_gauge().get_value())
            },
        )
    }

    #[test]
    fn every_label_set_of_a_type_exists_at_zero() {
        let registry = Registry::new();
        let m = PoolMetrics::new(&registry).unwrap();
        let _t = TypeMetrics::new(&m, "job", &TypeConfig::defaults_for("job"));
        for s in OUTCOMES {
            assert_eq!(
                value(&registry, "workerpool_tasks_total", &[("type", "job"), ("outcome", s.as_str())]),
                Some(0.0)
            );
        }
        for r in Failure::REASONS {
            assert_eq!(
                value(&registry, "workerpool_task_retries_total", &[("type", "job"), ("reason", r)]),
                Some(0.0)
            );
        }
        let restarts =
            value(&registry, "workerpool_worker_restarts_total", &[("type", "job"), ("reason", "crashed")]);
        assert_eq!(restarts, Some(0.0));
        assert_eq!(value(&registry, "workerpool_dead_letters", &[("type", "job")]), Some(0.0));
    }

    #[test]
    fn a_type_with_buckets_of_its_own_shares_the_family() {
        let registry = Registry::new();
        let m = PoolMetrics::new(&registry).unwrap();
        let own = TypeConfig { duration_buckets_s: Some(vec![1.0, 2.0]), ..TypeConfig::defaults_for("own") };
        let t = TypeMetrics::new(&m, "own", &own);
        let again = TypeMetrics::new(&m, "own", &own);
        let plain = TypeMetrics::new(&m, "plain", &TypeConfig::defaults_for("plain"));
        t.duration.observe(1.5);
        plain.duration.observe(1.5);
        assert_eq!(again.duration.get_sample_count(), 1, "registered once, shared");
        let families = registry.gather();
        let family = families.iter().find(|f| f.name() == "workerpool_task_duration_seconds").unwrap();
        let bounds = |ty: &str| -> usize {
            let series = family.get_metric().iter().find(|s| s.get_label().iter().any(|l| l.value() == ty));
            series.map_or(0, |s| s.get_histogram().get_bucket().len())
        };
        assert_eq!((bounds("own"), bounds("plain")), (2, super::super::pool::TIME_BUCKETS.len()));
    }

    #[test]
    fn an_outcome_and_a_retry_count_in_their_own_series() {
        let registry = Registry::new();
        let m = PoolMetrics::new(&registry).unwrap();
        let t = TypeMetrics::new(&m, "job", &TypeConfig::defaults_for("job"));
        t.retried(&Failure::Crash("gone".into()));
        t.ended(TaskStatus::Dead);
        assert_eq!(value(&registry, "workerpool_task_retries_total", &[("reason", "crashed")]), Some(1.0));
        assert_eq!(value(&registry, "workerpool_tasks_total", &[("outcome", "dead")]), Some(1.0));
        let total: f64 = OUTCOMES
            .iter()
            .filter_map(|s| value(&registry, "workerpool_tasks_total", &[("outcome", s.as_str())]))
            .sum();
        assert_eq!(total, 1.0);
    }
}
