//! The monitor cases: what one resource sample costs (`monitor-tick`) and what the monitors
//! add to an idle pool (`monitors-idle-cpu`).

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use workerpool_actors::{
    ExecutorKind, GpuSource, NvmlSource, PoolBuilder, PoolConfig, PoolStats, ResourceProbe, ScalingInput,
    SysinfoProbe, TypeConfig, TypeStats, assess_health, scaling_decision,
};

use super::args::BenchArgs;
use super::case::Case;
use super::driver::{client_runtime, current_exe};
use super::report::{CaseResult, IdleCpu, Run, Unit, median_index, percentile};

/// Worker processes both cases watch.
const WORKERS: usize = 50;
/// Samples per measured run of `monitor-tick`.
const SAMPLES: usize = 200;
/// Samples taken and thrown away first (the first sample of a process reads no CPU).
const DISCARDED_SAMPLES: usize = 3;
/// How long a pure-function timing loop runs, at least.
const MIN_TIMING: Duration = Duration::from_millis(200);

// ===== monitor-tick =====

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

pub(super) fn monitor_tick(args: &BenchArgs) -> anyhow::Result<CaseResult> {
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

// ===== monitors-idle-cpu =====

/// The three monitor intervals, in milliseconds: health, scaling, resource.
#[derive(Clone, Copy)]
struct Intervals {
    health: u64,
    scaling: u64,
    resource: u64,
}

/// The contract's defaults.
const DEFAULT_INTERVALS: Intervals = Intervals { health: 30_000, scaling: 60_000, resource: 10_000 };
/// Every monitor each second.
const FAST_INTERVALS: Intervals = Intervals { health: 1_000, scaling: 1_000, resource: 1_000 };
/// The type of the idle pool.
const IDLE_TYPE: &str = "idle";
/// How long the pool may take to have all its workers idle.
const IDLE_START: Duration = Duration::from_secs(60);
/// The quiet time between the last worker becoming idle and the measurement.
const SETTLE: Duration = Duration::from_secs(1);

/// CPU time (user + system) of a process in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the name.
    match (
        fields.get(11).and_then(|f| f.parse::<u64>().ok()),
        fields.get(12).and_then(|f| f.parse::<u64>().ok()),
    ) {
        (Some(utime), Some(stime)) => Ok(utime + stime),
        _ => bail!("{path} has no utime and stime"),
    }
}

/// Clock ticks per second: `getconf CLK_TCK`, else Linux's usual 100.
fn clock_ticks_per_sec() -> (u64, &'static str) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .map_or((100, "assumed"), |t| (t, "getconf"))
}

/// What one monitor setting cost.
struct IdlePhase {
    /// This process (the pool and its monitors), percent of one core.
    pool_percent: f64,
    /// The 50 workers together (answering the health monitor's pings), percent of one core.
    workers_percent: f64,
    /// From the pool's start to all its workers idle.
    startup: Duration,
}

/// Starts a pool of [`WORKERS`] idle demo workers with the given monitor intervals, waits
/// until all are idle and [`SETTLE`] more, then measures the CPU of this process and of the
/// workers over `secs`.
fn idle_phase(exe: &Path, every: Intervals, secs: u64, clk_tck: u64) -> anyhow::Result<IdlePhase> {
    let mut config = PoolConfig::default();
    config.types.clear();
    let mut t = TypeConfig::defaults_for(IDLE_TYPE);
    t.executor = ExecutorKind::Process;
    t.command = Some(vec![exe.to_string_lossy().into_owned(), "demo-worker".into()]);
    t.max_concurrent = WORKERS;
    t.min_workers = WORKERS;
    t.cpu_threshold = 100.0;
    config.max_workers = WORKERS;
    config.min_workers = WORKERS;
    config.health_check_interval_ms = every.health;
    config.scaling_interval_ms = every.scaling;
    config.resource_monitor_interval_ms = every.resource;
    config.types.insert(IDLE_TYPE.into(), t);
    let started = Instant::now();
    let pool = PoolBuilder::new(config).start().context("cannot start the idle pool")?;
    let rt = client_runtime()?;
    let measured = rt.block_on(async {
        loop {
            let stats = pool.stats().await.context("cannot read the pool's figures")?;
            let idle = stats.by_type.get(IDLE_TYPE).map_or(0, |t| t.available);
            if idle >= WORKERS {
                break;
            }
            if started.elapsed() > IDLE_START {
                bail!("only {idle} of {WORKERS} workers are idle after {IDLE_START:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let startup = started.elapsed();
        tokio::time::sleep(SETTLE).await;
        let pids: Vec<String> = pool
            .workers()
            .await
            .context("cannot list the pool's workers")?
            .iter()
            .filter_map(|w| w.pid.map(|p| p.to_string()))
            .collect();
        if pids.len() != WORKERS {
            bail!("{} of the {WORKERS} workers have a process", pids.len());
        }
        let workers_ticks = |pids: &[String]| pids.iter().map(|p| cpu_ticks(p)).sum::<anyhow::Result<u64>>();
        let (me0, w0) = (cpu_ticks("self")?, workers_ticks(&pids)?);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (me1, w1) = (cpu_ticks("self")?, workers_ticks(&pids).context("a worker exited while idle")?);
        let wall = t0.elapsed().as_secs_f64();
        let percent = |ticks: u64| ticks as f64 / clk_tck as f64 / wall * 100.0;
        Ok(IdlePhase { pool_percent: percent(me1 - me0), workers_percent: percent(w1 - w0), startup })
    });
    rt.block_on(pool.shutdown());
    measured
}

pub(super) fn monitors_idle_cpu(args: &BenchArgs) -> anyhow::Result<IdleCpu> {
    let exe = current_exe()?;
    let (clk_tck, clk_source) = clock_ticks_per_sec();
    let default =
        idle_phase(&exe, DEFAULT_INTERVALS, args.idle_secs, clk_tck).context("default intervals")?;
    let fast = idle_phase(&exe, FAST_INTERVALS, args.idle_secs, clk_tck).context("fast intervals")?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let secs = |ms: u64| format!("{}s", ms as f64 / 1000.0);
    let every = |i: Intervals| format!("{},{},{}", secs(i.health), secs(i.scaling), secs(i.resource));
    Ok(IdleCpu {
        case: Case::MonitorsIdleCpu.name(),
        default_percent: default.pool_percent,
        fast_percent: fast.pool_percent,
        details: format!(
            "this-process-only idle-secs={} workers={WORKERS} fast-minus-default={:.2}% \
             workers-cpu-default={:.2}% workers-cpu-fast={:.2}% \
             default=health,scaling,resource:{} fast=health,scaling,resource:{} \
             clk-tck={clk_tck}({clk_source}) resolution={:.2}% startup-default={:.1}s startup-fast={:.1}s \
             cores={cores} runs=1(one-window-per-setting:periodic-ticks)",
            args.idle_secs,
            fast.pool_percent - default.pool_percent,
            default.workers_percent,
            fast.workers_percent,
            every(DEFAULT_INTERVALS),
            every(FAST_INTERVALS),
            100.0 / clk_tck as f64 / args.idle_secs as f64,
            default.startup.as_secs_f64(),
            fast.startup.as_secs_f64(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_ticks() {
        let before = cpu_ticks("self").unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(50) {
            black_box(t0.elapsed());
        }
        assert!(cpu_ticks("self").unwrap() >= before);
        assert!(cpu_ticks("no-such-process").is_err());
    }

    #[test]
    fn the_decision_inputs_take_each_branch() {
        use workerpool_actors::{HealthStatus, ScalingDecision};
        let [up, down, hold] = scaling_inputs();
        assert!(matches!(scaling_decision(&up), ScalingDecision::Up(..)));
        assert!(matches!(scaling_decision(&down), ScalingDecision::Down(..)));
        assert_eq!(scaling_decision(&hold), ScalingDecision::Hold);
        let report = assess_health(&six_type_stats(), false);
        assert_eq!(report.types.len(), 6);
        assert_eq!(report.status, HealthStatus::Degraded);
    }
}
