//! The GPU memory limit with a real worker process on a fake GPU source: the per-process
//! GPU memory the source reports shows as the worker's gauge; past `gpu_memory_mb` the worker
//! is killed and replaced, its task fails `gpu_memory_limit_exceeded` without a retry (the
//! type has no `retry_on_memory_limit`), and its series goes with it. The limit holds on each
//! GPU of a worker placed on several: more on one of them is over it, whatever the total.

use std::time::{Duration, Instant};

use serde_json::json;
use workerpool_actors::testing::{FakeGpu, FakeProbe};
use workerpool_actors::{
    ExecutorKind, PoolBuilder, PoolConfig, PoolHandle, TaskRequest, TaskStatus, TypeConfig,
};

const LIMIT: Duration = Duration::from_secs(20);

/// A sequential worker: answers pings; a task sleeps `data.sleep` ms and returns its pid.
const PY_WORKER: &str = r#"
import sys, json, time, os
for line in sys.stdin:
    m = json.loads(line)
    if "ping" in m:
        print(json.dumps({"pong": m["ping"]}), flush=True)
        continue
    time.sleep((m.get("data") or {}).get("sleep", 0) / 1000.0)
    print(json.dumps({"id": m["id"], "result": os.getpid()}), flush=True)
"#;

fn start(gpu: &FakeGpu) -> PoolHandle {
    start_on(gpu, 1)
}

/// A pool of type `py` whose workers are placed on `gpus` GPUs, 1024 MiB on each.
fn start_on(gpu: &FakeGpu, gpus: usize) -> PoolHandle {
    let mut t = TypeConfig::defaults_for("py");
    t.executor = ExecutorKind::Process;
    t.command = Some(vec!["python3".into(), "-u".into(), "-c".into(), PY_WORKER.into()]);
    t.max_concurrent = 1;
    t.max_retries = 2;
    t.gpu_required = true;
    t.gpu_memory_mb = Some(1024);
    t.gpus_per_worker = Some(gpus);
    let mut cfg = PoolConfig {
        max_workers: 2,
        min_workers: 0,
        resource_monitor_interval_ms: 50,
        ..PoolConfig::default()
    };
    cfg.types.clear();
    cfg.types.insert("py".into(), t);
    PoolBuilder::new(cfg)
        .resource_probe(FakeProbe::new())
        .gpu_source(gpu.clone())
        .start()
        .expect("pool starts")
}

/// `workerpool_worker_gpu_memory_bytes{worker}`, if the series exists.
fn gauge(pool: &PoolHandle, worker: &str) -> Option<f64> {
    series(pool, "workerpool_worker_gpu_memory_bytes", worker, None)
}

/// The series of `family` for `worker` of type `py` (and on `gpu`), if it exists.
fn series(pool: &PoolHandle, family: &str, worker: &str, gpu: Option<&str>) -> Option<f64> {
    let families = pool.metrics().registry().gather();
    let family = families.into_iter().find(|f| f.name() == family)?;
    let metric = family.get_metric().iter().find(|m| {
        let labels = m.get_label();
        labels.iter().any(|l| l.name() == "worker" && l.value() == worker)
            && labels.iter().any(|l| l.name() == "type" && l.value() == "py")
            && gpu.is_none_or(|g| labels.iter().any(|l| l.name() == "gpu" && l.value() == g))
    })?;
    Some(metric.get_gauge().get_value())
}

/// Polls `cond` every 10 ms until it holds or [`LIMIT`] passes; says which.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[actix_rt::test]
async fn a_worker_past_its_gpu_memory_is_killed_replaced_and_its_task_fails() {
    let gpu = FakeGpu::with_devices(&[8192]);
    let pool = start(&gpu);
    let task = pool.submit(TaskRequest::new("py", json!({ "sleep": 60_000 }))).await.expect("accepted");
    let (worker, pid) = busy_worker(&pool).await;

    gpu.set_process_memory(pid, 512 << 20);
    assert!(eventually(|| gauge(&pool, &worker) == Some((512u64 << 20) as f64)).await, "the gauge shows it");
    gpu.set_process_memory(pid, 2048 << 20);
    let record = tokio::time::timeout(LIMIT, task.wait()).await.expect("in time").expect("a record");
    assert_eq!((record.status, record.attempts), (TaskStatus::Failed, 1), "{record:?}");
    let error = record.error.unwrap_or_default();
    assert!(error.starts_with("gpu_memory_limit_exceeded"), "{error}");
    assert!(error.contains("used 2048 MiB of GPU memory, over the limit of 1024 MiB"), "{error}");
    assert!(eventually(|| gauge(&pool, &worker).is_none()).await, "its series is removed");

    // A fresh worker, another process, runs the next task.
    let next = tokio::time::timeout(LIMIT, pool.execute(TaskRequest::new("py", json!({}))))
        .await
        .expect("in time")
        .expect("a record");
    assert_eq!(next.status, TaskStatus::Completed, "{next:?}");
    assert_ne!(next.result, Some(json!(pid)));
    pool.shutdown().await;
}

#[actix_rt::test]
async fn a_worker_on_two_gpus_past_the_limit_on_one_of_them_is_killed() {
    let gpu = FakeGpu::with_devices(&[8192, 8192]);
    let pool = start_on(&gpu, 2);
    let task = pool.submit(TaskRequest::new("py", json!({ "sleep": 60_000 }))).await.expect("accepted");
    let (worker, pid) = busy_worker(&pool).await;

    gpu.set_process_gpu_memory(pid, "GPU-fake-0", 512 << 20);
    gpu.set_process_gpu_memory(pid, "GPU-fake-1", 100 << 20);
    let per_gpu = |gpu: &str| series(&pool, "workerpool_worker_gpu_device_memory_bytes", &worker, Some(gpu));
    assert!(eventually(|| per_gpu("GPU-fake-1") == Some((100u64 << 20) as f64)).await, "per GPU");
    let resources = pool.resources();
    let usage = resources.workers.iter().find(|w| w.worker_id == worker).expect("sampled");
    assert_eq!(usage.gpu_memory_per_gpu.get("GPU-fake-0"), Some(&(512 << 20)), "{usage:?}");
    assert_eq!(usage.gpu_memory_bytes, Some(612 << 20));
    // 1500 MiB on one GPU: over its 1024 there, though 1600 in all is under 2 × 1024.
    gpu.set_process_gpu_memory(pid, "GPU-fake-0", 1500 << 20);
    let record = tokio::time::timeout(LIMIT, task.wait()).await.expect("in time").expect("a record");
    assert_eq!(record.status, TaskStatus::Failed, "{record:?}");
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("used 1500 MiB of GPU memory, over the limit of 1024 MiB on GPU GPU-fake-0"),
        "{error}"
    );
    assert!(eventually(|| per_gpu("GPU-fake-0").is_none()).await, "its series per GPU are removed");
    pool.shutdown().await;
}

/// The worker running the task, and its pid, once it runs (within [`LIMIT`]).
async fn busy_worker(pool: &PoolHandle) -> (String, u32) {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        let workers = pool.workers().await.expect("workers");
        if let Some(found) =
            workers.into_iter().find(|w| w.state == "busy").and_then(|w| Some((w.id, w.pid?)))
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no worker ran the task within {LIMIT:?}");
}
