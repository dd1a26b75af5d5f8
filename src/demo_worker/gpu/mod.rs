//! The `gpu_alloc {mb, ms}` control op: hold `mb` MiB of device memory for `ms` milliseconds.
//!
//! - With `WORKERPOOL_SIMULATED_GPU_DIR=<dir>` set (a pool whose devices are simulated), no
//!   driver is touched: the allocation is recorded in the usage file `<dir>/<pid>` as
//!   `<uuid> <bytes>`, where `<uuid>` is the first entry of `CUDA_VISIBLE_DEVICES`, for as long
//!   as it is held (see [`simulated`]).
//! - Otherwise the memory is really allocated on the first device the process sees, through the
//!   CUDA driver loaded at run time (feature `cuda`, on by default; see `cuda.rs`). Without a
//!   driver the op fails with `gpu_alloc: no CUDA driver (…)`.
//!
//! The answer is `{"device", "bytes", "held_ms", "simulated", "pid"}`, plus `device_name` for a
//! real device. Bad fields and a missing driver are non-retryable; a failed allocation or a usage
//! file that cannot be written is retryable.

#[cfg(feature = "cuda")]
mod cuda;
mod simulated;

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use super::{params::Params, protocol::TaskError};

/// The largest `gpu_alloc` (1 TiB), past every device's memory.
const MAX_GPU_ALLOC_MB: u64 = 1 << 20;
/// The longest `ms` of a `gpu_alloc` (one hour).
const MAX_GPU_HOLD_MS: u64 = 3_600_000;

/// The simulated allocations of this process.
static USAGE: simulated::UsageFiles = simulated::UsageFiles::new();

/// What the op reads from the environment, apart so tests can set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GpuEnv {
    /// `WORKERPOOL_SIMULATED_GPU_DIR`: where simulated usage is recorded, when set.
    pub(super) simulated_dir: Option<PathBuf>,
    /// `CUDA_VISIBLE_DEVICES`: the devices the pool placed this worker on.
    pub(super) visible_devices: Option<String>,
}

impl GpuEnv {
    /// The environment of this process; empty variables count as unset.
    pub(super) fn from_process() -> Self {
        let var = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        Self {
            simulated_dir: var("WORKERPOOL_SIMULATED_GPU_DIR").map(PathBuf::from),
            visible_devices: var("CUDA_VISIBLE_DEVICES").map(|value| value.to_string_lossy().into_owned()),
        }
    }

    /// The first device in `CUDA_VISIBLE_DEVICES`.
    fn first_visible(&self) -> Result<&str, TaskError> {
        self.visible_devices
            .as_deref()
            .and_then(|list| list.split(',').map(str::trim).find(|entry| !entry.is_empty()))
            .ok_or_else(|| {
                TaskError::invalid(
                    "gpu_alloc: CUDA_VISIBLE_DEVICES is unset or empty, so there is no simulated device",
                )
            })
    }
}

/// Runs `gpu_alloc` with the fields in `params`, as process `pid`.
pub(super) fn gpu_alloc(params: &Params<'_>, env: &GpuEnv, pid: u32) -> Result<Value, TaskError> {
    let mb = params.required_uint("mb", 1..=MAX_GPU_ALLOC_MB)?;
    let ms = params.uint_or("ms", 0, 0..=MAX_GPU_HOLD_MS)?;
    let bytes = mb << 20;
    let hold = Duration::from_millis(ms);
    match &env.simulated_dir {
        Some(dir) => {
            let device = env.first_visible()?;
            let held = USAGE.hold(dir, pid, device, bytes).map_err(|error| {
                TaskError::new(
                    format!("gpu_alloc: cannot record simulated usage in {}: {error}", dir.display()),
                    true,
                )
            })?;
            thread::sleep(hold);
            held.release().map_err(|error| {
                TaskError::new(
                    format!("gpu_alloc: cannot update simulated usage in {}: {error}", dir.display()),
                    true,
                )
            })?;
            Ok(json!({"device": device, "bytes": bytes, "held_ms": ms, "simulated": true, "pid": pid}))
        }
        None => real(bytes, hold, ms, pid, env.visible_devices.as_deref()),
    }
}

/// Allocates on the first real device.
#[cfg(feature = "cuda")]
fn real(bytes: u64, hold: Duration, ms: u64, pid: u32, visible: Option<&str>) -> Result<Value, TaskError> {
    let device = cuda::allocate(bytes, hold, visible)?;
    Ok(json!({
        "device": device.uuid,
        "device_name": device.name,
        "bytes": bytes,
        "held_ms": ms,
        "simulated": false,
        "pid": pid,
    }))
}

/// Without the `cuda` feature there is no way to reach a real device.
#[cfg(not(feature = "cuda"))]
fn real(
    _bytes: u64,
    _hold: Duration,
    _ms: u64,
    _pid: u32,
    _visible: Option<&str>,
) -> Result<Value, TaskError> {
    Err(TaskError::invalid("gpu_alloc: no CUDA driver (this build has no `cuda` feature)"))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn run(data: Value, env: &GpuEnv) -> Result<Value, TaskError> {
        gpu_alloc(&Params::new(&data), env, 42)
    }

    /// An environment with simulated devices in a fresh directory.
    fn simulated(name: &str, visible: Option<&str>) -> GpuEnv {
        let dir = std::env::temp_dir().join(format!("wp-gpu-op-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the directory");
        GpuEnv { simulated_dir: Some(dir), visible_devices: visible.map(str::to_owned) }
    }

    #[test]
    fn bad_fields_are_named_and_not_retryable() {
        let env = simulated("fields", Some("GPU-x"));
        for (data, field) in [
            (json!({}), "'mb' is required"),
            (json!({"mb": 0}), "'mb' must be at least 1"),
            (json!({"mb": "1"}), "'mb' must be a non-negative integer"),
            (json!({"mb": MAX_GPU_ALLOC_MB + 1}), "'mb' must be at most"),
            (json!({"mb": 1, "ms": -5}), "'ms' must be a non-negative integer"),
            (json!({"mb": 1, "ms": MAX_GPU_HOLD_MS + 1}), "'ms' must be at most"),
        ] {
            let error = run(data.clone(), &env).expect_err("refused");
            assert!(!error.retryable, "{data}");
            assert!(error.message.contains(field), "{data}: {}", error.message);
        }
        if let Some(dir) = env.simulated_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn simulated_allocations_use_the_first_visible_device() {
        let env = simulated("first", Some(" GPU-a , GPU-b"));
        let answer = run(json!({"mb": 2, "ms": 0}), &env).expect("allocated");
        assert_eq!(
            answer,
            json!({"device": "GPU-a", "bytes": 2 << 20, "held_ms": 0, "simulated": true, "pid": 42})
        );
        let dir = env.simulated_dir.clone().unwrap_or_default();
        assert_eq!(fs::read_dir(&dir).map(Iterator::count).ok(), Some(0), "released after");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn simulated_allocations_need_a_visible_device() {
        for visible in [None, Some(""), Some(" , ")] {
            let env = simulated("unset", visible);
            let error = run(json!({"mb": 1}), &env).expect_err("refused");
            assert!(!error.retryable);
            assert!(error.message.contains("CUDA_VISIBLE_DEVICES"), "{}", error.message);
            if let Some(dir) = env.simulated_dir {
                let _ = fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn an_unwritable_usage_directory_is_a_retryable_failure() {
        let dir = std::env::temp_dir().join(format!("wp-gpu-op-{}-absent/nested", std::process::id()));
        let env = GpuEnv { simulated_dir: Some(dir), visible_devices: Some("GPU-a".to_owned()) };
        let error = run(json!({"mb": 1}), &env).expect_err("refused");
        assert!(error.retryable);
        assert!(
            error.message.starts_with("gpu_alloc: cannot record simulated usage in"),
            "{}",
            error.message
        );
    }
}
