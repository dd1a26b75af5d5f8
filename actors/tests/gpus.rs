//! GPU placement on paused time: spread and pack, reservations against the free memory the
//! GPUs report, whole GPUs for one worker, several GPUs per worker, a type that waits for
//! room and starts once another worker exits, and a machine without a GPU, which refuses.

#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use workerpool_actors::testing::{Attempt, FakeGpu, FakeProbe, ScriptedExecutor};
use workerpool_actors::{
    ErrorKind, GpuPlacement, PoolBuilder, PoolConfig, PoolHandle, TaskRequest, TaskStatus, TypeConfig,
    assess_health,
};

use support::{at, config, in_process};

const GIB_MB: u64 = 1024;

/// An in-process GPU type: `gpus` GPUs per worker, `memory_mb` reserved on each (`None`:
/// whole GPUs), up to `max_concurrent` workers.
fn gpu_type(gpus: usize, memory_mb: Option<u64>, max_concurrent: usize) -> TypeConfig {
    TypeConfig {
        gpu_required: true,
        gpus_per_worker: Some(gpus),
        gpu_memory_mb: memory_mb,
        ..in_process(max_concurrent)
    }
}

/// Starts a pool of the given types on `gpu`, each task taking a second.
fn start(mut cfg: PoolConfig, types: &[(&str, TypeConfig)], gpu: &FakeGpu) -> (PoolHandle, ScriptedExecutor) {
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_secs(1)).answer("done")]);
    let mut builder = PoolBuilder::new({
        for (name, t) in types {
            cfg.types.insert(name.to_string(), t.clone());
        }
        cfg
    })
    .resource_probe(FakeProbe::new())
    .gpu_source(gpu.clone());
    for (name, _) in types {
        builder = builder.handler(*name, exec.handler());
    }
    (builder.start().expect("the pool starts"), exec)
}

async fn submit(pool: &PoolHandle, task_type: &str, n: usize) -> Vec<workerpool_actors::TaskHandle> {
    let mut handles = Vec::new();
    for _ in 0..n {
        handles.push(pool.submit(TaskRequest::new(task_type, json!({}))).await.expect("accepted"));
    }
    handles
}

/// The GPUs of each worker, in worker order.
async fn placements(pool: &PoolHandle) -> Vec<Vec<String>> {
    pool.workers().await.unwrap().into_iter().map(|w| w.gpus).collect()
}

/// `workerpool_gpu_memory_reserved_bytes{gpu}`.
fn reserved_gauge(pool: &PoolHandle, uuid: &str) -> f64 {
    let families = pool.metrics().registry().gather();
    let family = families.iter().find(|f| f.name() == "workerpool_gpu_memory_reserved_bytes");
    let metric = family.and_then(|f| {
        f.get_metric().iter().find(|m| m.get_label().iter().any(|l| l.name() == "gpu" && l.value() == uuid))
    });
    metric.map_or(0.0, |m| m.get_gauge().get_value())
}

fn uuids(indexes: &[usize]) -> Vec<String> {
    indexes.iter().map(|i| format!("GPU-fake-{i}")).collect()
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn spread_puts_each_worker_where_most_room_is() {
    let gpu = FakeGpu::with_devices(&[80 * GIB_MB, 80 * GIB_MB]);
    let (pool, _) = start(config(8), &[("g", gpu_type(1, Some(10 * GIB_MB), 3))], &gpu);
    let t0 = Instant::now();
    submit(&pool, "g", 3).await;
    at(t0, 10).await;
    assert_eq!(placements(&pool).await, [uuids(&[0]), uuids(&[1]), uuids(&[0])]);
    // The next resource sample shows what is reserved where.
    at(t0, 10_100).await;
    let reserved: Vec<u64> = pool.resources().gpus.iter().map(|g| g.memory_reserved_bytes).collect();
    assert_eq!(reserved, [20 << 30, 10 << 30]);
    assert_eq!(reserved_gauge(&pool, "GPU-fake-0"), (20u64 << 30) as f64);
    assert_eq!(reserved_gauge(&pool, "GPU-fake-1"), (10u64 << 30) as f64);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn pack_fills_one_gpu_before_the_next() {
    let gpu = FakeGpu::with_devices(&[80 * GIB_MB, 80 * GIB_MB]);
    let cfg = PoolConfig { gpu_placement: GpuPlacement::Pack, ..config(8) };
    let (pool, _) = start(cfg, &[("g", gpu_type(1, Some(10 * GIB_MB), 3))], &gpu);
    let t0 = Instant::now();
    submit(&pool, "g", 3).await;
    at(t0, 10).await;
    assert_eq!(placements(&pool).await, [uuids(&[0]), uuids(&[0]), uuids(&[0])]);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn reservations_count_against_the_free_memory_reported() {
    // Others use 65 GiB of the first GPU: 15 GiB are free there.
    let gpu = FakeGpu::with_devices(&[80 * GIB_MB, 80 * GIB_MB]);
    gpu.set_free(0, 15 << 30);
    let cfg = PoolConfig { gpu_placement: GpuPlacement::Pack, ..config(8) };
    let (pool, _) = start(cfg, &[("g", gpu_type(1, Some(10 * GIB_MB), 3))], &gpu);
    let t0 = Instant::now();
    submit(&pool, "g", 3).await;
    at(t0, 10).await;
    // The first reservation leaves 5 GiB on the first GPU: the others go to the second.
    assert_eq!(placements(&pool).await, [uuids(&[0]), uuids(&[1]), uuids(&[1])]);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn whole_gpus_several_per_worker_wait_for_room_then_start() {
    let gpu = FakeGpu::with_devices(&[80 * GIB_MB, 80 * GIB_MB, 80 * GIB_MB]);
    // Two whole GPUs per worker; each worker ends after one task.
    let pair = TypeConfig { max_tasks_per_worker: Some(1), ..gpu_type(2, None, 2) };
    let (pool, exec) = start(config(8), &[("pair", pair)], &gpu);
    let t0 = Instant::now();
    let tasks = submit(&pool, "pair", 2).await;
    at(t0, 10).await;
    // One worker holds two GPUs for itself; the third GPU is too few for the second worker,
    // which waits (the task is queued, not refused) and says why.
    assert_eq!(placements(&pool).await, [uuids(&[0, 1])]);
    let stats = pool.stats().await.unwrap();
    let why = stats.by_type["pair"].start_blocked.clone().unwrap_or_default();
    assert!(why.contains("waiting for GPU room") && why.contains("2 GPU(s)"), "{why}");
    assert_eq!(pool.gpu_wait("pair").as_deref(), Some(why.as_str()));
    let health = assess_health(&stats, false);
    assert!(health.types["pair"].reasons.iter().any(|r| r.contains("waiting for GPU room")), "{health:?}");
    // The first worker exits after its task; its GPUs go to the second.
    at(t0, 1100).await;
    assert_eq!(placements(&pool).await.len(), 1);
    for t in tasks {
        assert_eq!(t.wait().await.unwrap().status, TaskStatus::Completed);
    }
    let starts: Vec<u64> = exec.calls().iter().map(|c| support::ms(t0, c.started)).collect();
    assert_eq!(starts.len(), 2);
    assert!(starts[1] >= 1000, "the second task ran only once the first worker was gone: {starts:?}");
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_type_waits_for_a_gpu_another_type_holds_and_runs_when_it_exits() {
    let gpu = FakeGpu::with_devices(&[80 * GIB_MB]);
    let holder = TypeConfig { max_tasks_per_worker: Some(1), ..gpu_type(1, None, 1) };
    let shared = gpu_type(1, Some(GIB_MB), 1);
    let (pool, exec) = start(config(8), &[("holder", holder), ("sharer", shared)], &gpu);
    let t0 = Instant::now();
    let first = submit(&pool, "holder", 1).await;
    at(t0, 10).await;
    let second = submit(&pool, "sharer", 1).await;
    at(t0, 20).await;
    let stats = pool.stats().await.unwrap();
    assert!(stats.by_type["sharer"].start_blocked.as_deref().unwrap_or("").contains("waiting for GPU room"));
    assert_eq!(stats.by_type["sharer"].total, 0);
    for t in first.into_iter().chain(second) {
        assert_eq!(t.wait().await.unwrap().status, TaskStatus::Completed);
    }
    let calls = exec.calls();
    assert_eq!(support::ms(t0, calls[1].started), 1000, "it started as soon as the holder exited");
    assert_eq!(pool.stats().await.unwrap().by_type["sharer"].start_blocked, None);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_machine_without_a_gpu_still_refuses() {
    let (pool, _) = start(config(8), &[("g", gpu_type(1, Some(GIB_MB), 1))], &FakeGpu::unavailable());
    let Err(refused) = pool.submit(TaskRequest::new("g", json!({}))).await else {
        panic!("a GPU type is refused where no GPU is usable");
    };
    assert_eq!(refused.error().kind(), ErrorKind::Unavailable);
    assert!(refused.error().to_string().contains("fake: no GPU"), "{}", refused.error());
    pool.shutdown().await;
}

/// `workerpool_task_gpu_seconds_total{type}`.
fn gpu_seconds(pool: &PoolHandle, task_type: &str) -> f64 {
    let families = pool.metrics().registry().gather();
    let family = families.iter().find(|f| f.name() == "workerpool_task_gpu_seconds_total");
    let metric = family.and_then(|f| {
        f.get_metric()
            .iter()
            .find(|m| m.get_label().iter().any(|l| l.name() == "type" && l.value() == task_type))
    });
    metric.map_or(0.0, |m| m.get_counter().get_value())
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_tasks_record_names_the_gpus_it_ran_on_and_its_gpu_seconds_are_counted() {
    let gpu = FakeGpu::with_devices(&[80 * GIB_MB, 80 * GIB_MB]);
    let (pool, _) = start(config(8), &[("g", gpu_type(2, Some(10 * GIB_MB), 1))], &gpu);
    let record = submit(&pool, "g", 1).await.remove(0).wait().await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    let resources = record.resources.expect("an ended attempt has its figures");
    // One second on two GPUs.
    assert_eq!((resources.wall_ms, resources.gpus), (1000, uuids(&[0, 1])));
    assert_eq!(gpu_seconds(&pool, "g"), 2.0);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_type_no_gpu_here_can_ever_hold_is_refused_rather_than_left_waiting() {
    let gpu = FakeGpu::with_devices(&[80 * GIB_MB]);
    let types = [("pair", gpu_type(2, None, 1)), ("huge", gpu_type(1, Some(100 * GIB_MB), 1))];
    let (pool, _) = start(config(8), &types, &gpu);
    for (name, why) in
        [("pair", "needs 2 GPU(s) (whole GPUs)"), ("huge", "needs 1 GPU(s) (102400 MiB on each)")]
    {
        let Err(refused) = pool.submit(TaskRequest::new(name, json!({}))).await else {
            panic!("{name} was queued to wait for room that can never be");
        };
        assert_eq!(refused.error().kind(), ErrorKind::Unavailable, "{name}");
        assert!(refused.to_string().contains(why), "{name}: {refused}");
    }
    pool.shutdown().await;
}
