//! GPU placement with real processes on simulated GPUs: each demo worker reports the
//! `CUDA_VISIBLE_DEVICES` it really got (the `env` op), and under spread two workers that
//! live at once get different GPUs. A worker that holds more than its type's `gpu_memory_mb`
//! is killed, its task fails with `gpu_memory_limit_exceeded` (retried only with
//! `retry_on_memory_limit`), and its usage report is removed. A worker of a type without
//! GPUs sees none.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;
use workerpool_actors::{PoolBuilder, PoolHandle, SimulatedGpu, TaskRecord, TaskStatus, TypeConfig};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn workers_under_spread_see_different_gpus() {
    let mut t = demo_type(2);
    t.gpu_required = true;
    t.gpu_memory_mb = Some(1024);
    // A fresh worker per task: both tasks run on workers that live at the same time.
    t.max_tasks_per_worker = Some(1);
    let mut cfg = config(vec![("work", t)]);
    cfg.simulated_gpus = SimulatedGpu::parse_list("2x81920").expect("a valid spec");
    let pool = PoolBuilder::new(cfg).start().expect("pool starts");
    let resources = pool.resources();
    assert!(resources.gpu.available && resources.gpu.simulated, "{resources:?}");
    let uuids: Vec<&str> = resources.gpus.iter().map(|g| g.uuid.as_str()).collect();
    assert_eq!(uuids, ["GPU-sim-0", "GPU-sim-1"]);

    let first = pool.submit(op("env", serde_json::json!({}))).await.expect("queued");
    let second = pool.submit(op("env", serde_json::json!({}))).await.expect("queued");
    let mut seen = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for handle in [first, second] {
        let record = within(LIMIT, handle.wait()).await.expect("a record");
        assert_eq!(record.status, TaskStatus::Completed, "{record:?}");
        let env = record.result.clone().unwrap_or_default();
        let cuda = env["CUDA_VISIBLE_DEVICES"].as_str().unwrap_or_default().to_string();
        assert_eq!(env["NVIDIA_VISIBLE_DEVICES"], env["CUDA_VISIBLE_DEVICES"], "{env}");
        let dir = env["WORKERPOOL_SIMULATED_GPU_DIR"].as_str().unwrap_or_default().to_string();
        assert!(std::path::Path::new(&dir).is_dir(), "{env}");
        dirs.insert(dir);
        seen.insert(cuda);
    }
    let expected: BTreeSet<String> = ["GPU-sim-0", "GPU-sim-1"].into_iter().map(String::from).collect();
    assert_eq!(seen, expected, "one worker on each simulated GPU");
    assert_eq!(dirs.len(), 1, "one directory for the whole pool");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_worker_of_a_type_without_gpus_sees_none() {
    let mut gpu = demo_type(1);
    gpu.gpu_required = true;
    let mut cfg = config(vec![("work", demo_type(1)), ("gpu", gpu)]);
    cfg.simulated_gpus = SimulatedGpu::parse_list("1x81920").expect("a valid spec");
    let pool = PoolBuilder::new(cfg).start().expect("pool starts");
    let record = within(LIMIT, pool.execute(op("env", serde_json::json!({})))).await.expect("a record");
    assert_eq!(record.status, TaskStatus::Completed, "{record:?}");
    let env = record.result.clone().unwrap_or_default();
    // Not the server's variables (inherited): none at all, so it cannot use a GPU the pool
    // reserved for another worker.
    assert_eq!(env["CUDA_VISIBLE_DEVICES"], "", "{env}");
    assert_eq!(env["NVIDIA_VISIBLE_DEVICES"], "void", "{env}");
    assert!(env["WORKERPOOL_SIMULATED_GPU_DIR"].is_null(), "{env}");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_crashes_leaves_its_attempt_with_its_gpus() {
    let mut t = demo_type(1);
    t.gpu_required = true;
    t.max_retries = 0;
    let mut cfg = config(vec![("work", t)]);
    cfg.simulated_gpus = SimulatedGpu::parse_list("1x81920").expect("a valid spec");
    let pool = PoolBuilder::new(cfg).start().expect("pool starts");
    let handle = pool.submit(op("crash", serde_json::json!({"code": 3}))).await.expect("queued");
    let record = within(LIMIT, handle.wait()).await.expect("a record");
    assert_eq!(record.status, TaskStatus::Dead, "{record:?}");
    let resources = record.resources.expect("the crashed attempt has its figures");
    assert_eq!(resources.gpus, ["GPU-sim-0"], "{resources:?}");
    pool.shutdown().await;
}

/// A type placed on one simulated GPU with `gpu_memory_mb = 64`, one worker at a time.
fn limited_type(retry_on_memory_limit: bool) -> TypeConfig {
    let mut t = demo_type(1);
    t.gpu_required = true;
    t.gpu_memory_mb = Some(64);
    t.max_retries = 1;
    t.retry_on_memory_limit = retry_on_memory_limit;
    t
}

fn limited_pool(t: TypeConfig) -> PoolHandle {
    let mut cfg = config(vec![("work", t)]);
    cfg.simulated_gpus = SimulatedGpu::parse_list("1x1024").expect("a valid spec");
    cfg.resource_monitor_interval_ms = 50;
    PoolBuilder::new(cfg).start().expect("pool starts")
}

/// Runs a `gpu_alloc` of 256 MiB held for a minute (past any wait here): answers its record
/// and the directory its worker reported to.
async fn over_the_limit(pool: &PoolHandle) -> (TaskRecord, std::path::PathBuf) {
    let env = within(LIMIT, pool.execute(op("env", serde_json::json!({})))).await.expect("a record");
    let env = env.result.unwrap_or_default();
    let dir = std::path::PathBuf::from(env["WORKERPOOL_SIMULATED_GPU_DIR"].as_str().unwrap_or_default());
    assert!(dir.is_dir(), "{env}");
    let alloc = op("gpu_alloc", serde_json::json!({ "mb": 256, "ms": 60_000 }));
    let record = within(LIMIT, pool.execute(alloc)).await.expect("a record");
    (record, dir)
}

#[tokio::test]
async fn a_worker_over_its_gpu_memory_is_killed_and_its_task_fails() {
    let pool = limited_pool(limited_type(false));
    let (record, dir) = over_the_limit(&pool).await;
    assert_eq!(record.status, TaskStatus::Failed, "{record:?}");
    let error = record.error.clone().unwrap_or_default();
    assert!(error.starts_with("gpu_memory_limit_exceeded"), "{error}");
    assert!(error.contains("256 MiB of GPU memory, over the limit of 64 MiB"), "{error}");
    assert_eq!(record.attempts, 1, "not retried unless the type says so");
    let pid = record.worker_pid.expect("it ran on a process");
    assert!(wait_until(LIMIT, || !alive(u64::from(pid))).await, "the worker is killed");
    let report = dir.join(pid.to_string());
    assert!(wait_until(LIMIT, || !report.exists()).await, "its usage report is removed");
    // A fresh worker serves the type.
    let next = within(LIMIT, pool.execute(op("echo", serde_json::json!({})))).await.expect("a record");
    assert_eq!(next.status, TaskStatus::Completed, "{next:?}");
    assert_ne!(next.worker_pid, Some(pid));
    pool.shutdown().await;
}

#[tokio::test]
async fn the_gpu_memory_limit_is_retried_only_as_the_memory_limit_is() {
    let pool = limited_pool(limited_type(true));
    let (record, _) = over_the_limit(&pool).await;
    assert_eq!((record.status, record.attempts), (TaskStatus::Dead, 2), "{record:?}");
    let error = record.error.clone().unwrap_or_default();
    assert!(error.starts_with("gpu_memory_limit_exceeded"), "{error}");
    pool.shutdown().await;
}
