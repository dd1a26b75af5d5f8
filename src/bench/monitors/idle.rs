//! `monitors-idle-cpu`: the CPU an idle pool of [`WORKERS`] process workers uses with the
//! monitors at their default intervals and at one second, read from `/proc`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use workerpool_actors::{ExecutorKind, PoolBuilder, PoolConfig, TypeConfig};

use super::tick::WORKERS;
use crate::bench::args::BenchArgs;
use crate::bench::case::Case;
use crate::bench::driver::{client_runtime, current_exe};
use crate::bench::report::IdleCpu;

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

pub(crate) fn monitors_idle_cpu(args: &BenchArgs) -> anyhow::Result<IdleCpu> {
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
    use std::hint::black_box;

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
}
