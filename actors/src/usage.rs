//! Per-attempt resource accounting, as pure folding: [`UsageMeter`] takes a worker's samples
//! ([`WorkerSample`], one per resource-monitor tick) and, when an attempt ends, gives its
//! [`TaskResources`].
//!
//! Samples are folded only into the attempt they saw: one taken before the attempt started
//! (but delivered after) is not counted in it. Between samples nothing is read, so the hot
//! path of a task costs no system call: starting an attempt resets a few fields, ending one
//! reads them.
//!
//! CPU time is the difference of the process's accumulated CPU time between a base and the
//! attempt's last sample. The base is the last sample before the attempt when the worker was
//! idle then (an idle worker uses next to no CPU, so little is over-counted), else the
//! attempt's first sample. What the worker used after the attempt's last sample (and, without
//! an idle base, before its first) is not seen: `cpu_ms` is a lower bound, and `None` for an
//! attempt that no two such samples bracket. Peak resident memory is the kernel's high-water
//! mark since the previous sample, where that window lies within the attempt or the idle time
//! before it; otherwise (the attempt's first sample after a busy one) the resident memory at
//! the sample.

use tokio::time::Instant;

use crate::task::TaskResources;

/// What one resource sample saw of one worker process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WorkerSample {
    /// CPU time the process has used since it started, in milliseconds.
    pub(crate) cpu_time_ms: u64,
    /// Resident memory at the sample.
    pub(crate) memory_bytes: u64,
    /// The highest resident memory since the previous sample of the process.
    pub(crate) peak_memory_bytes: u64,
    /// GPU memory of the process over all GPUs, when a GPU source reports it.
    pub(crate) gpu_memory_bytes: Option<u64>,
}

/// Where the worker was when a sample was taken, as its pool tells the meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeenAs {
    /// Idle since before the sample.
    Idle,
    /// Running an attempt (the meter checks that the attempt had started by then).
    Busy,
    /// Anything else (starting, stopping, or idle only since after the sample).
    Other,
}

/// The accumulator of one worker slot: its running attempt's figures so far, and the base an
/// idle worker leaves for its next attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsageMeter {
    /// The start of the attempt being measured; `None` between attempts.
    started: Option<Instant>,
    /// CPU time at the worker's last sample, when it was idle then.
    idle_cpu_ms: Option<u64>,
    /// Whether the attempt's CPU base is an idle sample from before it.
    idle_based: bool,
    /// CPU time at the attempt's base (see the module's docs).
    cpu_base_ms: Option<u64>,
    /// CPU time at the attempt's last sample.
    cpu_last_ms: Option<u64>,
    /// Samples taken within the attempt.
    samples: u32,
    peak_rss_bytes: Option<u64>,
    peak_gpu_memory_bytes: Option<u64>,
}

impl UsageMeter {
    /// An attempt starts at `at`: its figures start afresh, from the idle base if there is one.
    #[inline]
    pub(crate) fn start(&mut self, at: Instant) {
        let base = self.idle_cpu_ms.take();
        *self = UsageMeter {
            started: Some(at),
            idle_based: base.is_some(),
            cpu_base_ms: base,
            ..UsageMeter::default()
        };
    }

    /// Folds one sample taken at `taken`, when the worker was `seen` so.
    pub(crate) fn fold(&mut self, sample: &WorkerSample, taken: Instant, seen: SeenAs) {
        let in_attempt = seen == SeenAs::Busy && self.started.is_some_and(|s| s <= taken);
        if !in_attempt {
            // Only the latest sample can be a base, and only an idle one.
            self.idle_cpu_ms = (seen == SeenAs::Idle).then_some(sample.cpu_time_ms);
            return;
        }
        // The high-water mark covers the time since the previous sample: within this attempt
        // (or the idle time before it) when the attempt has a sample already or an idle base,
        // else partly in whatever the worker did before.
        let peak = if self.samples > 0 || self.idle_based {
            sample.peak_memory_bytes.max(sample.memory_bytes)
        } else {
            sample.memory_bytes
        };
        self.peak_rss_bytes = self.peak_rss_bytes.max(Some(peak));
        if let Some(gpu) = sample.gpu_memory_bytes {
            self.peak_gpu_memory_bytes = self.peak_gpu_memory_bytes.max(Some(gpu));
        }
        self.cpu_base_ms.get_or_insert(sample.cpu_time_ms);
        self.cpu_last_ms = Some(sample.cpu_time_ms);
        self.samples += 1;
    }

    /// The attempt ended after `wall_ms` on the given GPUs: its figures. The meter stops
    /// measuring until the next [`UsageMeter::start`].
    pub(crate) fn finish(&mut self, wall_ms: u64, gpus: Vec<String>) -> TaskResources {
        self.started = None;
        // Two readings bracket the CPU time: an idle base and a sample, or two samples.
        let bracketed = self.samples >= 2 || (self.samples == 1 && self.idle_based);
        let cpu_ms = match (self.cpu_base_ms, self.cpu_last_ms) {
            (Some(base), Some(last)) if bracketed => Some(last.saturating_sub(base)),
            _ => None,
        };
        TaskResources {
            wall_ms,
            cpu_ms,
            peak_rss_bytes: self.peak_rss_bytes,
            gpus,
            peak_gpu_memory_bytes: self.peak_gpu_memory_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MB: u64 = 1 << 20;

    fn sample(cpu_time_ms: u64, memory_mb: u64, peak_mb: u64) -> WorkerSample {
        WorkerSample {
            cpu_time_ms,
            memory_bytes: memory_mb * MB,
            peak_memory_bytes: peak_mb * MB,
            gpu_memory_bytes: None,
        }
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn samples_within_the_attempt_give_peaks_and_the_cpu_between_them() {
        let t0 = Instant::now();
        let mut m = UsageMeter::default();
        m.start(t0);
        m.fold(&sample(1_000, 20, 90), at(t0, 10), SeenAs::Busy);
        m.fold(
            &WorkerSample { gpu_memory_bytes: Some(7), ..sample(1_400, 30, 80) },
            at(t0, 20),
            SeenAs::Busy,
        );
        m.fold(
            &WorkerSample { gpu_memory_bytes: Some(5), ..sample(1_650, 25, 25) },
            at(t0, 30),
            SeenAs::Busy,
        );
        let r = m.finish(35, vec!["GPU-a".to_string()]);
        assert_eq!(r.wall_ms, 35);
        assert_eq!(r.cpu_ms, Some(650), "from the first sample to the last");
        // The first sample's high-water mark (90) may be the previous attempt's: not counted.
        assert_eq!(r.peak_rss_bytes, Some(80 * MB));
        assert_eq!(r.peak_gpu_memory_bytes, Some(7));
        assert_eq!(r.gpus, ["GPU-a"]);
    }

    #[test]
    fn an_idle_base_brackets_an_attempt_with_a_single_sample() {
        let t0 = Instant::now();
        let mut m = UsageMeter::default();
        m.fold(&sample(500, 10, 12), at(t0, 0), SeenAs::Idle);
        m.start(at(t0, 5));
        m.fold(&sample(800, 40, 60), at(t0, 10), SeenAs::Busy);
        let r = m.finish(12, Vec::new());
        assert_eq!((r.cpu_ms, r.peak_rss_bytes), (Some(300), Some(60 * MB)));
    }

    #[test]
    fn one_sample_without_a_base_gives_memory_but_no_cpu() {
        let t0 = Instant::now();
        let mut m = UsageMeter::default();
        m.start(t0);
        m.fold(&sample(800, 40, 60), at(t0, 10), SeenAs::Busy);
        let r = m.finish(12, Vec::new());
        assert_eq!((r.cpu_ms, r.peak_rss_bytes, r.peak_gpu_memory_bytes), (None, Some(40 * MB), None));
    }

    #[test]
    fn a_sample_taken_before_the_start_or_of_another_state_is_not_the_attempts() {
        let t0 = Instant::now();
        let mut m = UsageMeter::default();
        m.start(at(t0, 10));
        // Taken at 5 (the previous attempt), delivered after this one started.
        m.fold(&sample(100, 99, 99), at(t0, 5), SeenAs::Busy);
        m.fold(&sample(100, 99, 99), at(t0, 12), SeenAs::Other);
        let r = m.finish(20, Vec::new());
        assert_eq!(r, TaskResources { wall_ms: 20, ..TaskResources::default() });
    }

    #[test]
    fn each_attempt_starts_afresh_and_only_the_latest_idle_sample_is_a_base() {
        let t0 = Instant::now();
        let mut m = UsageMeter::default();
        m.start(t0);
        m.fold(&sample(100, 50, 50), at(t0, 1), SeenAs::Busy);
        m.fold(&sample(200, 60, 70), at(t0, 2), SeenAs::Busy);
        assert_eq!(m.finish(3, Vec::new()).cpu_ms, Some(100));
        // Idle, then a sample from while it was busy (idle only since after it): no base.
        m.fold(&sample(300, 10, 10), at(t0, 4), SeenAs::Idle);
        m.fold(&sample(350, 10, 10), at(t0, 5), SeenAs::Other);
        m.start(at(t0, 6));
        m.fold(&sample(400, 20, 20), at(t0, 7), SeenAs::Busy);
        let r = m.finish(2, Vec::new());
        assert_eq!((r.cpu_ms, r.peak_rss_bytes), (None, Some(20 * MB)), "nothing of the first attempt");
        // After an attempt ends, its samples no longer count.
        m.fold(&sample(900, 90, 90), at(t0, 9), SeenAs::Busy);
        m.start(at(t0, 10));
        assert_eq!(m.finish(1, Vec::new()), TaskResources { wall_ms: 1, ..TaskResources::default() });
    }
}
