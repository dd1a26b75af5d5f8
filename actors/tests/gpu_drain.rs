//! Drained GPUs on paused time: a GPU that vanishes from the sample, or answers with an
//! error, gets no new worker; its workers are stopped and their tasks run elsewhere without
//! spending an attempt; the pool's health names it; and it takes workers again once a sample
//! reads it.

#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use workerpool_actors::testing::{Attempt, FakeGpu, FakeProbe, ScriptedExecutor};
use workerpool_actors::{
    HealthStatus, PoolBuilder, PoolConfig, PoolHandle, TaskHandle, TaskRequest, TaskStatus, TypeConfig,
    assess_health,
};

use support::{at, config, in_process};

/// A GPU type of 10 GiB per worker, two at a time, each worker ending after one task (so
/// every task gets a freshly placed worker), each task taking five seconds; resource samples
/// every 100 ms.
fn start(gpu: &FakeGpu) -> (PoolHandle, ScriptedExecutor) {
    let t = TypeConfig {
        gpu_required: true,
        gpu_memory_mb: Some(10 << 10),
        max_tasks_per_worker: Some(1),
        ..in_process(2)
    };
    let mut cfg = PoolConfig { resource_monitor_interval_ms: 100, ..config(8) };
    cfg.types.insert("g".to_string(), t);
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_secs(5)).answer("done")]);
    let pool = PoolBuilder::new(cfg)
        .handler("g", exec.handler())
        .resource_probe(FakeProbe::new())
        .gpu_source(gpu.clone())
        .start()
        .expect("the pool starts");
    (pool, exec)
}

async fn submit(pool: &PoolHandle) -> TaskHandle {
    pool.submit(TaskRequest::new("g", json!({}))).await.expect("accepted")
}

/// The GPUs of each live worker, in worker order.
async fn placements(pool: &PoolHandle) -> Vec<Vec<String>> {
    pool.workers().await.unwrap().into_iter().map(|w| w.gpus).collect()
}

fn on(uuid: &str) -> Vec<String> {
    vec![uuid.to_string()]
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_vanished_gpu_is_drained_its_task_runs_elsewhere_and_it_comes_back() {
    let gpu = FakeGpu::with_devices(&[80 << 10, 80 << 10]);
    let (pool, exec) = start(&gpu);
    let t0 = Instant::now();
    let (first, second) = (submit(&pool).await, submit(&pool).await);
    at(t0, 1000).await;
    assert_eq!(placements(&pool).await, [on("GPU-fake-0"), on("GPU-fake-1")]);

    gpu.vanish(0);
    at(t0, 1250).await;
    // The worker on the vanished GPU is gone; its task runs on a worker placed on the other.
    assert_eq!(placements(&pool).await, [on("GPU-fake-1"), on("GPU-fake-1")]);
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.drained_gpus["GPU-fake-0"], "gone from the GPU sample");
    let health = assess_health(&stats, false);
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.reasons.contains(&"GPU GPU-fake-0 drained: gone from the GPU sample".to_string()));
    let listed = pool.resources().gpus;
    assert_eq!(listed[1].drained.as_deref(), Some("gone from the GPU sample"), "{listed:?}");

    for task in [first, second] {
        let record = task.wait().await.unwrap();
        // The stopped attempt was not spent.
        assert_eq!((record.status, record.attempts), (TaskStatus::Completed, 1), "{record:?}");
        assert_eq!(record.resources.map(|r| r.gpus), Some(on("GPU-fake-1")), "it ended on the other GPU");
    }
    let calls = exec.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls.iter().filter(|c| c.dropped.is_some()).count(), 1);

    // It comes back with the next sample that reads it, and takes the next worker.
    gpu.restore(0);
    at(t0, 6500).await;
    assert!(pool.stats().await.unwrap().drained_gpus.is_empty());
    let third = submit(&pool).await;
    at(t0, 6510).await;
    assert_eq!(placements(&pool).await, [on("GPU-fake-0")]);
    assert_eq!(third.wait().await.unwrap().status, TaskStatus::Completed);
    assert_eq!(assess_health(&pool.stats().await.unwrap(), false).status, HealthStatus::Healthy);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_gpu_answering_errors_gets_no_worker_until_it_reads_well() {
    let gpu = FakeGpu::with_devices(&[80 << 10, 40 << 10]);
    gpu.fail(0, "GPU is lost");
    let (pool, _) = start(&gpu);
    let t0 = Instant::now();
    at(t0, 50).await;
    let task = submit(&pool).await;
    at(t0, 60).await;
    // Spread would take the first, roomier GPU; it is drained.
    assert_eq!(placements(&pool).await, [on("GPU-fake-1")]);
    let health = assess_health(&pool.stats().await.unwrap(), false);
    assert!(health.reasons.contains(&"GPU GPU-fake-0 drained: NVML error: GPU is lost".to_string()));
    assert_eq!(task.wait().await.unwrap().status, TaskStatus::Completed);
    gpu.restore(0);
    at(t0, 5200).await;
    let task = submit(&pool).await;
    at(t0, 5210).await;
    assert_eq!(placements(&pool).await, [on("GPU-fake-0")]);
    assert_eq!(task.wait().await.unwrap().status, TaskStatus::Completed);
    pool.shutdown().await;
}
