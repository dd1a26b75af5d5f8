//! Integration tests of the demo worker's `gpu_alloc` op, through the real process: simulated
//! devices (the usage file a pool reads) and a machine without a CUDA driver.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::demo_worker::{DemoWorker, TIMEOUT};

/// A fresh directory for simulated usage files, removed when dropped.
struct UsageDir(PathBuf);

impl UsageDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wp-gpu-sim-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the usage directory");
        Self(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for UsageDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Polls `file` until `done` holds for its content (`None`: no file), at most [`TIMEOUT`].
fn wait_for_file(file: &Path, done: impl Fn(Option<&str>) -> bool) -> Option<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let content = fs::read_to_string(file).ok();
        if done(content.as_deref()) {
            return content;
        }
        assert!(Instant::now() < deadline, "{} never got there; last seen {content:?}", file.display());
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn simulated_allocation_is_in_the_usage_file_while_held() {
    let dir = UsageDir::new("held");
    let mut worker = DemoWorker::spawn_with(
        &[("WORKERPOOL_SIMULATED_GPU_DIR", dir.path()), ("CUDA_VISIBLE_DEVICES", "GPU-sim-1")],
        &[],
    );
    let file = dir.0.join(worker.pid().to_string());
    let bytes = 3u64 << 20;
    for round in 0..2 {
        let id = format!("g{round}");
        worker.send(&id, "image_generation", json!({"op": "gpu_alloc", "mb": 3, "ms": 2000}));
        let held = wait_for_file(&file, |content| content.is_some());
        assert_eq!(held, Some(format!("GPU-sim-1 {bytes}\n")), "round {round}");
        let answer = worker.recv();
        assert_eq!(
            answer,
            json!({"id": id, "result": {
                "device": "GPU-sim-1", "bytes": bytes, "held_ms": 2000, "simulated": true, "pid": worker.pid(),
            }})
        );
        // The answer is written after the release, so the file is gone already.
        assert_eq!(fs::read_to_string(&file).ok(), None, "round {round}");
    }
    let names: Vec<_> = fs::read_dir(&dir.0).expect("read the usage directory").collect();
    assert_eq!(names.len(), 0, "no temporary file is left behind");
    worker.finish();
}

#[test]
fn simulated_allocation_without_a_visible_device_is_a_task_error() {
    let dir = UsageDir::new("unset");
    let mut worker =
        DemoWorker::spawn_with(&[("WORKERPOOL_SIMULATED_GPU_DIR", dir.path())], &["CUDA_VISIBLE_DEVICES"]);
    let line = worker.run("g1", "x", json!({"op": "gpu_alloc", "mb": 1}));
    assert_eq!(line["retryable"], false, "{line}");
    let error = line["error"].as_str().unwrap_or_default();
    assert!(error.contains("CUDA_VISIBLE_DEVICES"), "{error}");
    worker.finish();
}

#[test]
fn bad_fields_are_task_errors_that_name_the_field() {
    let mut worker = DemoWorker::spawn();
    for (data, field) in [
        (json!({"op": "gpu_alloc"}), "field 'mb' is required"),
        (json!({"op": "gpu_alloc", "mb": 0}), "field 'mb' must be at least 1"),
        (json!({"op": "gpu_alloc", "mb": 1, "ms": "long"}), "field 'ms' must be a non-negative integer"),
    ] {
        let line = worker.run("g", "x", data);
        assert_eq!(line["retryable"], false, "{line}");
        assert!(line["error"].as_str().is_some_and(|e| e.starts_with(field)), "{line}");
    }
    worker.finish();
}

#[test]
fn without_a_driver_the_op_fails_and_names_the_cause() {
    let mut worker = DemoWorker::spawn_with(&[], &["WORKERPOOL_SIMULATED_GPU_DIR"]);
    let line = worker.run("g1", "x", json!({"op": "gpu_alloc", "mb": 1, "ms": 0}));
    match line["error"].as_str() {
        Some(error) => {
            assert_eq!(line["retryable"], false, "{line}");
            let cause = if cfg!(feature = "cuda") { "libcuda.so.1: " } else { "" };
            let expected = format!("gpu_alloc: no CUDA driver ({cause}");
            assert!(error.starts_with(&expected), "{error}");
        }
        // A machine with a driver really allocates on its first device.
        None => {
            assert!(may_have_cuda_driver(), "allocated without a driver: {line}");
            assert_eq!(line["result"]["simulated"], false, "{line}");
            assert_eq!(line["result"]["bytes"], 1 << 20, "{line}");
        }
    }
    // The worker is still serving.
    assert_eq!(worker.result("e1", "x", json!({"op": "echo"}))["echo"], json!({"op": "echo"}));
    worker.finish();
}

/// Whether `libcuda.so.1` may be installed: it lies in a usual library folder or one in
/// `LD_LIBRARY_PATH`, or the loader's cache names it.
fn may_have_cuda_driver() -> bool {
    let from_env = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let usual =
        ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64"];
    let mut dirs = from_env.split(':').filter(|d| !d.is_empty()).chain(usual);
    let cached =
        fs::read("/etc/ld.so.cache").is_ok_and(|cache| cache.windows(12).any(|w| w == b"libcuda.so.1"));
    cached || dirs.any(|dir| Path::new(dir).join("libcuda.so.1").exists())
}
