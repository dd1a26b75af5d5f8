//! GPU placement with real processes on simulated GPUs: each demo worker reports the
//! `CUDA_VISIBLE_DEVICES` it really got (the `env` op), and under spread two workers that
//! live at once get different GPUs.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;
use workerpool_actors::{PoolBuilder, SimulatedGpu, TaskStatus};

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
