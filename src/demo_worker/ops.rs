//! Control ops: what a test or benchmark asks of the worker through `data.op`.
//!
//! The ops, their fields and their answers are tabled in the `demo_worker` module docs.

use std::hint::black_box;
use std::process;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    gpu::{self, GpuEnv},
    hash::mix64,
    params::Params,
    protocol::{Output, Progress, TaskError},
};

/// The longest `sleep` (one hour), well past every default type's timeout.
const MAX_SLEEP_MS: u64 = 3_600_000;
/// The longest `spin` (ten minutes): a busy core is costlier than a sleeping one.
const MAX_SPIN_MS: u64 = 600_000;
/// The largest `alloc` (64 GiB), past every default type's memory limit.
const MAX_ALLOC_MB: u64 = 65_536;
/// The longest `hold_ms` of an `alloc` (one hour).
const MAX_HOLD_MS: u64 = 3_600_000;
/// The most `progress` steps.
const MAX_STEPS: u64 = 10_000;
/// The longest `progress` step (one minute).
const MAX_STEP_MS: u64 = 60_000;
/// The message of a `fail` without one.
const DEFAULT_FAILURE: &str = "requested failure";

/// A control op named in `data.op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Answer the data back.
    Echo,
    /// Sleep `ms` milliseconds.
    Sleep,
    /// Keep one CPU busy for `ms` milliseconds.
    Spin,
    /// Make `mb` MiB resident for `hold_ms` milliseconds.
    Alloc,
    /// Hold `mb` MiB of device memory (real or simulated) for `ms` milliseconds.
    GpuAlloc,
    /// Exit the process with `code`, without answering.
    Crash,
    /// Answer with an error.
    Fail,
    /// Report `steps` progress lines, `step_ms` apart.
    Progress,
    /// Stop answering pings from now on (tasks are still served): a hung worker, for health checks.
    Mute,
    /// Answer the worker's environment of the pool's own families (`WORKERPOOL_*`, `CUDA_*`,
    /// `NVIDIA_*`, `REDIS_*`): what the pool gave it (its GPUs, always present, null when
    /// unset) and what it did not (the server's secrets).
    Env,
}

/// The environment variables `env` always answers: the GPUs a worker was given, and where a
/// worker on simulated GPUs reports what it holds.
const ENV_VARS: [&str; 3] =
    ["CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "WORKERPOOL_SIMULATED_GPU_DIR"];

/// The prefixes of the variables `env` answers besides [`ENV_VARS`]: the pool's, the GPUs' and
/// Redis's, and nothing else of the environment (a cloud key, say).
const ENV_FAMILIES: [&str; 4] = ["WORKERPOOL_", "CUDA_", "NVIDIA_", "REDIS_"];

/// Set by `mute`: pings go unanswered.
pub(super) static MUTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Op {
    /// The op called `name`; an unknown name is a non-retryable error.
    pub(super) fn parse(name: &str) -> Result<Self, TaskError> {
        match name {
            "echo" => Ok(Self::Echo),
            "sleep" => Ok(Self::Sleep),
            "spin" => Ok(Self::Spin),
            "alloc" => Ok(Self::Alloc),
            "gpu_alloc" => Ok(Self::GpuAlloc),
            "crash" => Ok(Self::Crash),
            "fail" => Ok(Self::Fail),
            "progress" => Ok(Self::Progress),
            "mute" => Ok(Self::Mute),
            "env" => Ok(Self::Env),
            _ => Err(TaskError::invalid(format!("unknown op '{name}'"))),
        }
    }

    /// Carries out the op with the parameters in `data`.
    pub(super) fn run<'d>(
        self,
        data: &'d Value,
        attempt: u64,
        pid: u32,
        progress: &mut dyn Progress,
    ) -> Result<Output<'d>, TaskError> {
        let params = Params::new(data);
        // `until_attempt: n` limits `crash` and `fail` to the first n attempts; later attempts
        // echo, so a test can show a retry that succeeds.
        let until = params.uint_or("until_attempt", u64::MAX, 1..=u64::MAX)?;
        if matches!(self, Self::Crash | Self::Fail) && attempt > until {
            return Ok(Output::Json(json!({"recovered_on_attempt": attempt, "pid": pid})));
        }
        let result = match self {
            Self::Echo => return Ok(Output::Echo { echo: data, pid }),
            Self::Sleep => {
                let ms = params.required_uint("ms", 0..=MAX_SLEEP_MS)?;
                thread::sleep(Duration::from_millis(ms));
                json!({"slept_ms": ms, "pid": pid})
            }
            Self::Spin => {
                let ms = params.required_uint("ms", 0..=MAX_SPIN_MS)?;
                let iterations = spin(Duration::from_millis(ms));
                json!({"spun_ms": ms, "iterations": iterations, "pid": pid})
            }
            Self::Alloc => {
                let mb = params.required_uint("mb", 0..=MAX_ALLOC_MB)?;
                let hold_ms = params.uint_or("hold_ms", 0, 0..=MAX_HOLD_MS)?;
                allocate(mb, Duration::from_millis(hold_ms))?;
                json!({"allocated_mb": mb, "pid": pid})
            }
            Self::GpuAlloc => gpu::gpu_alloc(&params, &GpuEnv::from_process(), pid)?,
            Self::Crash => {
                let code = params.uint_or("code", 3, 0..=255)?;
                crash(code, pid)
            }
            Self::Fail => {
                let retryable = params.bool_or("retryable", true)?;
                let message = params.str("message")?.unwrap_or(DEFAULT_FAILURE);
                return Err(TaskError::new(message, retryable));
            }
            Self::Mute => {
                MUTED.store(true, std::sync::atomic::Ordering::Relaxed);
                json!({"muted": true, "pid": pid})
            }
            Self::Env => {
                // The GPU variables always (null when unset), then every variable of the pool's
                // own families (where its secrets would be, were they passed on).
                let mut vars = serde_json::Map::new();
                for name in ENV_VARS {
                    vars.insert(name.to_string(), Value::Null);
                }
                for (name, value) in std::env::vars_os() {
                    let name = name.to_string_lossy();
                    if ENV_FAMILIES.iter().any(|family| name.starts_with(family)) {
                        vars.insert(name.into_owned(), json!(value.to_string_lossy()));
                    }
                }
                vars.insert("pid".to_string(), json!(pid));
                Value::Object(vars)
            }
            Self::Progress => {
                let steps = params.uint_or("steps", 5, 0..=MAX_STEPS)?;
                let step_ms = params.uint_or("step_ms", 10, 0..=MAX_STEP_MS)?;
                report_steps(steps, Duration::from_millis(step_ms), progress);
                json!({"steps": steps, "pid": pid})
            }
        };
        Ok(Output::Json(result))
    }
}

/// Busy-loops for `duration` and returns how many hash rounds it ran.
fn spin(duration: Duration) -> u64 {
    // Reading the clock is far costlier than a hash round, so it is read once per batch.
    const BATCH: u64 = 1024;
    let start = Instant::now();
    let mut state = 0u64;
    let mut iterations = 0u64;
    loop {
        for _ in 0..BATCH {
            state = black_box(mix64(state));
        }
        iterations += BATCH;
        if start.elapsed() >= duration {
            return iterations;
        }
    }
}

/// Allocates `mb` MiB, makes every page resident, holds it for `hold` and frees it.
fn allocate(mb: u64, hold: Duration) -> Result<(), TaskError> {
    // A page's worth of non-zero bytes: copying it in (a `memcpy`, fast even in debug builds)
    // writes every page, so none can stay a shared zero page.
    const PAGE: [u8; 4096] = [0xa5; 4096];
    let bytes = usize::try_from(mb << 20)
        .map_err(|_| TaskError::invalid(format!("{mb} MiB does not fit in memory here")))?;
    let mut block: Vec<u8> = Vec::new();
    block
        .try_reserve_exact(bytes)
        .map_err(|error| TaskError::new(format!("could not allocate {mb} MiB: {error}"), true))?;
    while block.len() < bytes {
        block.extend_from_slice(&PAGE);
    }
    black_box(&block);
    thread::sleep(hold);
    drop(block);
    Ok(())
}

/// Writes a line to stderr and exits with `code`, without answering the task.
fn crash(code: u64, pid: u32) -> ! {
    eprintln!("demo-worker[{pid}]: crashing on request with exit code {code}");
    // `code` was checked to lie in 0..=255.
    process::exit(i32::try_from(code).unwrap_or(255))
}

/// Reports `steps` progress lines at `100 * i / steps` percent, sleeping `step` before each.
fn report_steps(steps: u64, step: Duration, progress: &mut dyn Progress) {
    for i in 1..=steps {
        thread::sleep(step);
        let percent = u8::try_from(100 * i / steps).unwrap_or(100);
        progress.report(percent, &format!("step {i}/{steps}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: Value) -> (Result<Value, TaskError>, Vec<(u8, String)>) {
        let mut reports = Vec::new();
        let op = data["op"].as_str().map(Op::parse);
        let result = match op {
            Some(Ok(op)) => op.run(&data, 1, 42, &mut reports).map(|output| match output {
                Output::Echo { echo, pid } => json!({"echo": echo, "pid": pid}),
                Output::Json(value) => value,
            }),
            Some(Err(error)) => Err(error),
            None => Err(TaskError::invalid("no op")),
        };
        (result, reports)
    }

    #[test]
    fn env_answers_the_gpu_variables() {
        let answer = run(json!({"op": "env"})).0.unwrap();
        for name in ENV_VARS {
            let seen = std::env::var(name).ok();
            assert_eq!(answer[name].as_str(), seen.as_deref(), "{name}");
        }
        assert_eq!(answer["pid"], 42);
    }

    #[test]
    fn echo_answers_the_data() {
        let data = json!({"op": "echo", "n": 1});
        assert_eq!(run(data.clone()).0, Ok(json!({"echo": data, "pid": 42})));
    }

    #[test]
    fn progress_reports_each_step() {
        let (result, reports) = run(json!({"op": "progress", "steps": 4, "step_ms": 0}));
        assert_eq!(result, Ok(json!({"steps": 4, "pid": 42})));
        let percents: Vec<u8> = reports.iter().map(|(p, _)| *p).collect();
        assert_eq!(percents, [25, 50, 75, 100]);
        assert_eq!(reports[3].1, "step 4/4");
    }

    #[test]
    fn fail_defaults_to_retryable() {
        assert_eq!(run(json!({"op": "fail"})).0, Err(TaskError::new(DEFAULT_FAILURE, true)));
        assert_eq!(
            run(json!({"op": "fail", "retryable": false, "message": "no"})).0,
            Err(TaskError::new("no", false))
        );
    }

    #[test]
    fn spin_and_alloc_do_their_work() {
        let (spun, _) = run(json!({"op": "spin", "ms": 5}));
        assert!(spun.is_ok_and(|v| v["iterations"].as_u64() >= Some(1024)));
        let (allocated, _) = run(json!({"op": "alloc", "mb": 3}));
        assert_eq!(allocated, Ok(json!({"allocated_mb": 3, "pid": 42})));
    }

    #[test]
    fn bad_parameters_are_not_retryable() {
        for data in [
            json!({"op": "sleep"}),
            json!({"op": "sleep", "ms": "x"}),
            json!({"op": "spin", "ms": -1}),
            json!({"op": "alloc", "mb": MAX_ALLOC_MB + 1}),
            json!({"op": "crash", "code": 256}),
            json!({"op": "nope"}),
        ] {
            let (result, _) = run(data);
            assert!(result.is_err_and(|e| !e.retryable));
        }
    }
}
