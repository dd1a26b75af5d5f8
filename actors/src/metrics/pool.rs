//! [`PoolMetrics`]: the collectors, created and registered together.

use prometheus::core::Collector;
use prometheus::{
    CounterVec, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::messages::TypeStats;

/// Help of the duration histogram (the same on every series, buckets of its own or not).
pub(crate) const DURATION_HELP: &str = "Run time of completed tasks";
/// Help of the wait histogram.
pub(crate) const WAIT_HELP: &str = "Time from ready to running, per attempt";

/// The duration and wait histograms of each type, by (family, type).
type Histograms = Arc<Mutex<HashMap<(&'static str, String), Histogram>>>;

/// Buckets of the task duration and wait histograms, in seconds: 10 ms to 30 min.
pub(crate) const TIME_BUCKETS: [f64; 17] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0];
/// Buckets of the peak resident memory histogram, in bytes: 1 MiB to 64 GiB, by fours.
fn peak_rss_buckets() -> Vec<f64> {
    (0..9).map(|i| f64::from(1u32 << 20) * 4f64.powi(i)).collect()
}

/// The collectors.
#[derive(Clone, Debug)]
pub struct PoolMetrics {
    registry: Registry,
    histograms: Histograms,
    /// `workerpool_workers{type,state}`.
    pub workers: IntGaugeVec,
    /// `workerpool_queue_length{type}`.
    pub queue_length: IntGaugeVec,
    /// `workerpool_tasks_total{type,outcome}`: each task once, by its final status.
    pub tasks_total: IntCounterVec,
    /// `workerpool_task_retries_total{type,reason}`: failed attempts that were retried.
    pub task_retries: IntCounterVec,
    /// `workerpool_tasks_enqueued_total{type}`: tasks accepted by `enqueue`/`execute`.
    pub tasks_enqueued: IntCounterVec,
    /// `workerpool_dead_letters{type}`: entries in each type's dead-letter list.
    pub dead_letters: IntGaugeVec,
    /// `workerpool_queue_oldest_wait_seconds{type}`: how long the oldest ready task waited.
    pub queue_oldest_wait: GaugeVec,
    /// `workerpool_redis_up`: 1 while Redis answers, 0 while it is known not to; registered
    /// only where Redis is configured.
    pub redis_up: IntGauge,
    /// `workerpool_worker_restarts_total{type,reason}`.
    pub worker_restarts: IntCounterVec,
    /// `workerpool_scale_events_total{type,direction}`.
    pub scale_events: IntCounterVec,
    /// `workerpool_worker_memory_bytes{worker,type}`.
    pub worker_memory: IntGaugeVec,
    /// `workerpool_worker_cpu_percent{worker,type}`.
    pub worker_cpu: prometheus::GaugeVec,
    /// `workerpool_worker_gpu_memory_bytes{worker,type}`: GPU memory of each worker process
    /// that holds some (NVML per process, or what a worker on simulated GPUs reports).
    pub worker_gpu_memory: IntGaugeVec,
    /// `workerpool_worker_gpu_device_memory_bytes{worker,type,gpu}`: the same per GPU (its
    /// UUID), as NVML reports it per device; what `gpu_memory_mb` is checked against.
    pub worker_gpu_device_memory: IntGaugeVec,
    /// `workerpool_gpu_utilization_percent{gpu}`.
    pub gpu_utilization: prometheus::GaugeVec,
    /// `workerpool_gpu_memory_used_bytes{gpu}` (the GPU's UUID).
    pub gpu_memory_used: prometheus::IntGaugeVec,
    /// `workerpool_gpu_memory_total_bytes{gpu}` (the GPU's UUID).
    pub gpu_memory_total: prometheus::IntGaugeVec,
    /// `workerpool_gpu_memory_reserved_bytes{gpu}` (the GPU's UUID): reserved by the pool's
    /// workers placed there.
    pub gpu_memory_reserved: prometheus::IntGaugeVec,
    /// `workerpool_stale_results_total`: results of attempts that had lost their lease
    /// (shared queues only), dropped instead of recorded twice.
    pub stale_results: prometheus::IntCounter,
    /// `workerpool_task_peak_rss_bytes{type}`: the peak resident memory of each ended attempt
    /// whose peak is known (process workers that were sampled while it ran).
    pub task_peak_rss: HistogramVec,
    /// `workerpool_task_gpu_seconds_total{type}`: wall seconds of ended attempts times the
    /// GPUs their worker held.
    pub task_gpu_seconds: CounterVec,
}

impl PoolMetrics {
    /// Creates the collectors and registers them on `registry`.
    ///
    /// # Examples
    /// ```
    /// let registry = prometheus::Registry::new();
    /// let metrics = workerpool_actors::PoolMetrics::new(&registry).unwrap();
    /// metrics.tasks_total.with_label_values(&["t", "completed"]).inc();
    /// assert!(registry.gather().iter().any(|f| f.name() == "workerpool_tasks_total"));
    /// ```
    pub fn new(registry: &Registry) -> Result<PoolMetrics, prometheus::Error> {
        let m = PoolMetrics {
            registry: registry.clone(),
            histograms: Histograms::default(),
            workers: IntGaugeVec::new(
                Opts::new("workerpool_workers", "Live workers by type and state"),
                &["type", "state"],
            )?,
            queue_length: IntGaugeVec::new(
                Opts::new("workerpool_queue_length", "Tasks waiting to run, by type"),
                &["type"],
            )?,
            tasks_total: IntCounterVec::new(
                Opts::new("workerpool_tasks_total", "Tasks that ended, each once, by type and final status"),
                &["type", "outcome"],
            )?,
            task_retries: IntCounterVec::new(
                Opts::new(
                    "workerpool_task_retries_total",
                    "Failed attempts that were retried, by type and reason",
                ),
                &["type", "reason"],
            )?,
            tasks_enqueued: IntCounterVec::new(
                Opts::new("workerpool_tasks_enqueued_total", "Tasks accepted into the queue, by type"),
                &["type"],
            )?,
            dead_letters: IntGaugeVec::new(
                Opts::new("workerpool_dead_letters", "Entries in the dead-letter list, by type"),
                &["type"],
            )?,
            queue_oldest_wait: GaugeVec::new(
                Opts::new(
                    "workerpool_queue_oldest_wait_seconds",
                    "How long the oldest ready task has waited, by type",
                ),
                &["type"],
            )?,
            redis_up: IntGauge::new(
                "workerpool_redis_up",
                "Whether Redis answers (1) or is known not to (0)",
            )?,
            worker_restarts: IntCounterVec::new(
                Opts::new("workerpool_worker_restarts_total", "Workers replaced, by type and reason"),
                &["type", "reason"],
            )?,
            scale_events: IntCounterVec::new(
                Opts::new("workerpool_scale_events_total", "Scaling steps, by type and direction"),
                &["type", "direction"],
            )?,
            worker_memory: IntGaugeVec::new(
                Opts::new("workerpool_worker_memory_bytes", "Resident memory of each worker process"),
                &["worker", "type"],
            )?,
            worker_cpu: prometheus::GaugeVec::new(
                Opts::new(
                    "workerpool_worker_cpu_percent",
                    "CPU of each worker process (percent of one core)",
                ),
                &["worker", "type"],
            )?,
            worker_gpu_memory: IntGaugeVec::new(
                Opts::new("workerpool_worker_gpu_memory_bytes", "GPU memory of each worker process"),
                &["worker", "type"],
            )?,
            worker_gpu_device_memory: IntGaugeVec::new(
                Opts::new(
                    "workerpool_worker_gpu_device_memory_bytes",
                    "GPU memory of each worker process on each of its GPUs",
                ),
                &["worker", "type", "gpu"],
            )?,
            gpu_utilization: prometheus::GaugeVec::new(
                Opts::new("workerpool_gpu_utilization_percent", "Utilisation of each GPU"),
                &["gpu"],
            )?,
            gpu_memory_used: prometheus::IntGaugeVec::new(
                Opts::new(
                    "workerpool_gpu_memory_used_bytes",
                    "Memory in use on each GPU the pool uses, by UUID",
                ),
                &["gpu"],
            )?,
            gpu_memory_total: prometheus::IntGaugeVec::new(
                Opts::new(
                    "workerpool_gpu_memory_total_bytes",
                    "All memory of each GPU the pool uses, by UUID",
                ),
                &["gpu"],
            )?,
            gpu_memory_reserved: prometheus::IntGaugeVec::new(
                Opts::new(
                    "workerpool_gpu_memory_reserved_bytes",
                    "Memory reserved by the pool's workers on each GPU, by UUID",
                ),
                &["gpu"],
            )?,
            stale_results: prometheus::IntCounter::new(
                "workerpool_stale_results_total",
                "Results dropped because their attempt had lost its lease to another one",
            )?,
            task_peak_rss: HistogramVec::new(
                HistogramOpts::new(
                    "workerpool_task_peak_rss_bytes",
                    "Peak resident memory of the worker process during each ended attempt (where sampled)",
                )
                .buckets(peak_rss_buckets()),
                &["type"],
            )?,
            task_gpu_seconds: CounterVec::new(
                Opts::new(
                    "workerpool_task_gpu_seconds_total",
                    "Wall seconds of ended attempts times the GPUs their worker held",
                ),
                &["type"],
            )?,
        };
        registry.register(Box::new(m.workers.clone()))?;
        registry.register(Box::new(m.queue_length.clone()))?;
        registry.register(Box::new(m.tasks_total.clone()))?;
        registry.register(Box::new(m.task_retries.clone()))?;
        registry.register(Box::new(m.tasks_enqueued.clone()))?;
        registry.register(Box::new(m.dead_letters.clone()))?;
        registry.register(Box::new(m.queue_oldest_wait.clone()))?;
        registry.register(Box::new(m.worker_restarts.clone()))?;
        registry.register(Box::new(m.scale_events.clone()))?;
        registry.register(Box::new(m.worker_memory.clone()))?;
        registry.register(Box::new(m.worker_cpu.clone()))?;
        registry.register(Box::new(m.worker_gpu_memory.clone()))?;
        registry.register(Box::new(m.worker_gpu_device_memory.clone()))?;
        registry.register(Box::new(m.gpu_utilization.clone()))?;
        registry.register(Box::new(m.gpu_memory_used.clone()))?;
        registry.register(Box::new(m.gpu_memory_total.clone()))?;
        registry.register(Box::new(m.gpu_memory_reserved.clone()))?;
        registry.register(Box::new(m.stale_results.clone()))?;
        registry.register(Box::new(m.task_peak_rss.clone()))?;
        registry.register(Box::new(m.task_gpu_seconds.clone()))?;
        Ok(m)
    }

    /// The series of `family` (`workerpool_task_duration_seconds` or `..._wait_seconds`) for
    /// `task_type`, with `buckets` (default [`TIME_BUCKETS`]): a histogram per type, `type`
    /// a constant label, registered once (the registry merges them into one family). A
    /// histogram vector cannot hold series with buckets of their own.
    pub(crate) fn histogram(
        &self,
        family: &'static str,
        task_type: &str,
        buckets: Option<&[f64]>,
    ) -> Result<Histogram, prometheus::Error> {
        let help = if family == "workerpool_task_wait_seconds" { WAIT_HELP } else { DURATION_HELP };
        let mut own = self.histograms.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (family, task_type.to_string());
        if let Some(h) = own.get(&key) {
            return Ok(h.clone());
        }
        let bounds = buckets.map_or_else(|| TIME_BUCKETS.to_vec(), <[f64]>::to_vec);
        let opts = HistogramOpts::new(family, help).const_label("type", task_type).buckets(bounds);
        let h = Histogram::with_opts(opts)?;
        self.registry.register(Box::new(h.clone()))?;
        own.insert(key, h.clone());
        Ok(h)
    }

    /// Registers `workerpool_redis_up`, for a pool whose queues are in Redis.
    pub(crate) fn register_redis(&self) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(self.redis_up.clone()))
    }

    /// The registry the collectors are registered on.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts the verdict on an attempt whose instance was lost (reaped here): as a retry
    /// with reason `lease_expired`, or the task's end; a re-queue is neither.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn lost_attempt(&self, task_type: &str, verdict: crate::policy::retry::Verdict) {
        use crate::policy::retry::Verdict;
        match verdict {
            Verdict::Retry { .. } => self.task_retries.with_label_values(&[task_type, "lease_expired"]).inc(),
            Verdict::End(status) => self.tasks_total.with_label_values(&[task_type, status.as_str()]).inc(),
            Verdict::Requeue => {}
        }
    }

    /// Counts an exit that needs a replacement (one not part of normal operation).
    pub(crate) fn worker_restarted(&self, task_type: &str, reason: &str) {
        self.worker_restarts.with_label_values(&[task_type, reason]).inc();
    }

    /// Removes the per-worker series of a worker that exited.
    pub(crate) fn forget_worker(&self, worker: &str, task_type: &str) {
        let _ = self.worker_memory.remove_label_values(&[worker, task_type]);
        let _ = self.worker_cpu.remove_label_values(&[worker, task_type]);
        let _ = self.worker_gpu_memory.remove_label_values(&[worker, task_type]);
        // Its series per GPU: whichever GPUs it was seen on.
        for family in self.worker_gpu_device_memory.collect() {
            for series in family.get_metric() {
                let labels = series.get_label();
                let is =
                    |name: &str, value: &str| labels.iter().any(|l| l.name() == name && l.value() == value);
                if is("worker", worker)
                    && is("type", task_type)
                    && let Some(gpu) = labels.iter().find(|l| l.name() == "gpu")
                {
                    let _ =
                        self.worker_gpu_device_memory.remove_label_values(&[worker, task_type, gpu.value()]);
                }
            }
        }
    }

    pub(crate) fn set_gauges(&self, task_type: &str, stats: &TypeStats) {
        let starting = stats.total.saturating_sub(stats.available + stats.busy);
        for (state, n) in [("idle", stats.available), ("busy", stats.busy), ("starting", starting)] {
            self.workers.with_label_values(&[task_type, state]).set(n as i64);
        }
        self.queue_length.with_label_values(&[task_type]).set(stats.queued as i64);
        self.dead_letters.with_label_values(&[task_type]).set(stats.dead_letters as i64);
        self.queue_oldest_wait.with_label_values(&[task_type]).set(stats.oldest_wait_ms as f64 / 1000.0);
    }
}
