//! `monitor-tick`: one resource-monitor sample over [`WORKERS`] demo-worker processes, plus
//! the cost of NVML and of the pure scaling and health decisions.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use workerpool_actors::policy::{ScalingInput, scaling_decision};
use workerpool_actors::{
    GpuSource, NvmlSource, PoolStats, ResourceProbe, SysinfoProbe, TypeStats, assess_health,
};

use crate::bench::args::BenchArgs;
use crate::bench::case::Case;
use crate::bench::driver::current_exe;
use crate::bench::report::{CaseResult, Run, Unit, median_index, percentile};

/// Worker processes both cases watch.
pub(super) const WORKERS: usize = 50;
/// Samples per measured run of `monitor-tick`.
const SAMPLES: usize = 200;
/// Samples taken and thrown away first (the first sample of a process reads no CPU).
const DISCARDED_SAMPLES: usize = 3;
/// How long a pure-function timing loop runs, at least.
const MIN_TIMING: Duration = Duration::from_millis(200);

/// Demo workers started by hand (no pool), killed when dropped.
struct Workers {
    children: Vec<Child>,
}

impl Workers {
    /// Starts `n` demo workers and pings each, so that all are up and serving.
    fn start(exe: &Path, n: usize) -> anyhow::Result<Workers> {
        let mut workers = Workers { children: Vec::with_capacity(n) };
        let mut outs: Vec<BufReader<ChildStdout>> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut child = Command::new(exe)
                .arg("demo-worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {} demo-worker", exe.display()))?;
            let stdout = child.stdout.take().context("the worker's stdout was not piped")?;
            workers.children.push(child);
            outs.push(BufReader::new(stdout));
        }
        for (child, out) in workers.children.iter_mut().zip(&mut outs) {
            let stdin = child.stdin.as_mut().context("the worker's stdin was not piped")?;
            stdin
                .write_all(b"{\"ping\":1}\n")
                .and_then(|()| stdin.flush())
                .context("cannot ping a worker")?;
            let mut line = String::new();
            out.read_line(&mut line).context("cannot read a worker's pong")?;
            if !line.contains("pong") {
                bail!("a demo worker answered a ping with {:?}", line.trim_end());
            }
        }
        Ok(workers)
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// Nanoseconds per call of `f`, over batches that double until one takes [`MIN_TIMING`].
fn ns_per_call<T>(mut f: impl FnMut() -> T) -> f64 {
    let mut n: u64 = 1;
    loop {
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        let elapsed = t0.elapsed();
        if elapsed >= MIN_TIMING || n >= 1 << 30 {
            return elapsed.as_nanos() as f64 / n as f64;
        }
        n *= 2;
    }
}

/// Three inputs of the scaling policy: a deep queue, idle workers past their timeout, a
/// steady pool.
fn scaling_inputs() -> [ScalingInput; 3] {
    let up = ScalingInput {
        live: 2,
        idle_for: vec![],
        ready: 40,
        oldest_wait: Duration::from_millis(1500),
        max_workers: 8,
        can_start: true,
        idle_timeout: Duration::from_secs(300),
        ..ScalingInput::default()
    };
    let down = ScalingInput {
        live: 8,
        idle_for: vec![Duration::from_secs(400); 6],
        min_workers: 2,
        max_workers: 8,
        can_start: true,
        idle_timeout: Duration::from_secs(300),
        ..ScalingInput::default()
    };
    let hold = ScalingInput {
        live: 4,
        idle_for: vec![Duration::from_secs(3); 2],
        ready: 1,
        min_workers: 2,
        max_workers: 8,
        can_start: true,
        idle_timeout: Duration::from_secs(300),
        ..ScalingInput::default()
    };
    [up, down, hold]
}

/// Pool figures with the contract's six types: four healthy, one degraded by errors and
/// restarts, one degraded by a long wait.
fn six_type_stats() -> PoolStats {
    let names = [
        "video_generation",
        "audio_synthesis",
        "image_generation",
        "text_processing",
        "world_building",
        "content_analysis",
    ];
    let mut stats = PoolStats::default();
    for (i, name) in names.into_iter().enumerate() {
        let mut t = TypeStats {
            total: 2,
            available: 1,
            busy: 1,
            queued: i,
            ready: i,
            tasks_completed: 1000,
            tasks_failed: 10,
            recent_finished: 200,
            recent_failed: 2,
            avg_task_ms: 12.5,
            ..TypeStats::default()
        };
        if i == 1 {
            t.recent_failed = 80;
            t.recent_restarts = 4;
        }
        if i == 4 {
            t.oldest_wait_ms = 90_000;
        }
        stats.total += t.total;
        stats.available += t.available;
        stats.busy += t.busy;
        stats.tasks_completed += t.tasks_completed;
        stats.tasks_failed += t.tasks_failed;
        stats.by_type.insert(name.to_string(), t);
    }
    stats
}

pub(crate) fn monitor_tick(args: &BenchArgs) -> anyhow::Result<CaseResult> {
    let exe = current_exe()?;
    let workers = Workers::start(&exe, WORKERS)?;
    let pids = workers.pids();

    let t0 = Instant::now();
    let mut probe = SysinfoProbe::new().context("sysinfo does not support this platform")?;
    let probe_new = t0.elapsed();
    for _ in 0..DISCARDED_SAMPLES {
        black_box(probe.sample(&pids));
    }
    let mut runs = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        let mut latencies = Vec::with_capacity(SAMPLES);
        let started = Instant::now();
        for _ in 0..SAMPLES {
            let t0 = Instant::now();
            let (system, processes) = probe.sample(&pids);
            latencies.push(t0.elapsed());
            if processes.len() != pids.len() {
                bail!("a sample saw {} of the {} worker processes", processes.len(), pids.len());
            }
            black_box(system);
        }
        runs.push(Run::new(started.elapsed(), latencies));
    }
    drop(workers);

    let t0 = Instant::now();
    let mut nvml = NvmlSource::new();
    let nvml_new = t0.elapsed();
    let mut nvml_samples: Vec<Duration> = Vec::new();
    let mut gpu_available = false;
    for _ in 0..20 {
        let t0 = Instant::now();
        let sample = nvml.sample();
        nvml_samples.push(t0.elapsed());
        gpu_available = sample.available;
    }
    nvml_samples.sort_unstable();

    let inputs = scaling_inputs();
    let mut k = 0usize;
    let scaling_ns = ns_per_call(|| {
        k = (k + 1) % inputs.len();
        scaling_decision(black_box(&inputs[k]))
    });
    let stats = six_type_stats();
    let health_ns = ns_per_call(|| assess_health(black_box(&stats), false));

    let rates: Vec<f64> = runs.iter().map(Run::rate).collect();
    let median = median_index(&rates).map(|i| &runs[i]).context("no run")?;
    let p50 = percentile(&median.latencies, 50.0).unwrap_or_default();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(CaseResult {
        case: Case::MonitorTick.name(),
        unit: Unit::Samples,
        runs,
        window: 1,
        details: format!(
            "workers={WORKERS} per-sample-us={:.0} discarded={DISCARDED_SAMPLES} probe=sysinfo \
             probe-new-us={:.0} nvml={} nvml-new-us={:.0} nvml-sample-us={:.1} \
             scaling-decision-ns={scaling_ns:.1} assess-health-ns={health_ns:.0}(6-types)",
            us(p50),
            us(probe_new),
            if gpu_available { "available" } else { "unavailable" },
            us(nvml_new),
            us(percentile(&nvml_samples, 50.0).unwrap_or_default()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_inputs_take_each_branch() {
        use workerpool_actors::HealthStatus;
        use workerpool_actors::policy::ScalingDecision;
        let [up, down, hold] = scaling_inputs();
        assert!(matches!(scaling_decision(&up), ScalingDecision::Up(..)));
        assert!(matches!(scaling_decision(&down), ScalingDecision::Down(..)));
        assert_eq!(scaling_decision(&hold), ScalingDecision::Hold);
        let report = assess_health(&six_type_stats(), false);
        assert_eq!(report.types.len(), 6);
        assert_eq!(report.status, HealthStatus::Degraded);
    }
}
