//! The monitors with real worker processes: memory limits, CPU threshold and GPU gating through
//! fake sources, health pings, autoscaling.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::*;
use workerpool_actors::testing::{FakeGpu, FakeProbe};
use workerpool_actors::{
    ErrorKind, EventKind, PoolBuilder, PoolConfig, ResourceProbe, SysinfoProbe, TaskRequest, TaskStatus,
};

const LIMIT: Duration = Duration::from_secs(30);

fn fast(mut cfg: PoolConfig) -> PoolConfig {
    cfg.resource_monitor_interval_ms = 100;
    cfg.health_check_interval_ms = 100;
    cfg.scaling_interval_ms = 100;
    cfg
}

fn metric(pool: &workerpool_actors::PoolHandle, name: &str, labels: &[(&str, &str)]) -> f64 {
    for family in pool.metrics().registry().gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let all =
                labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v));
            if all {
                // Only one of the two is set; the other reads 0.
                return m.get_counter().get_value() + m.get_gauge().get_value();
            }
        }
    }
    0.0
}

#[tokio::test]
async fn a_worker_over_its_memory_limit_is_killed_and_its_task_fails() {
    let mut t = demo_type(1);
    t.memory_limit_mb = 64;
    let pool = PoolBuilder::new(fast(config(vec![("work", t)]))).start().unwrap();
    let record =
        within(LIMIT, pool.execute(op("alloc", json!({ "mb": 256, "hold_ms": 10_000 })))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Failed, "{record:?}");
    let error = record.error.clone().unwrap();
    assert!(error.starts_with("memory_limit_exceeded"), "{error}");
    assert!(error.contains("over the limit of 64 MiB"), "{error}");
    assert_eq!(record.attempts, 1, "not retried unless the type says so");
    let pid = u64::from(record.worker_pid.unwrap());
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)).await);
    // The exit is counted once the pool hears of it, just after the process is gone.
    let counted = wait_until(Duration::from_secs(5), || {
        metric(&pool, "workerpool_worker_restarts_total", &[("reason", "memory_limit_exceeded")]) == 1.0
    });
    assert!(counted.await);
    // A small task still runs, on a fresh worker.
    let next = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    assert_eq!(next.status, TaskStatus::Completed);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_memory_spike_between_two_samples_is_caught() {
    // 400 MiB for 150 ms, then back to a few MiB: a one-second sample of the resident
    // memory alone would miss it most of the time; the peak since the last sample does not.
    let mut t = demo_type(1);
    t.command = Some(vec!["python3".into(), support::misbehaving::WORKER.into(), "spike".into()]);
    t.memory_limit_mb = 128;
    let mut cfg = fast(config(vec![("work", t)]));
    cfg.resource_monitor_interval_ms = 1000;
    let pool = PoolBuilder::new(cfg).start().unwrap();
    let spike = TaskRequest::new("work", json!({ "mb": 400, "ms": 150, "then_ms": 4000 }));
    let record = within(LIMIT, pool.execute(spike)).await.unwrap();
    assert_eq!(record.status, TaskStatus::Failed, "{record:?}");
    let error = record.error.clone().unwrap();
    assert!(error.starts_with("memory_limit_exceeded"), "{error}");
    assert!(error.contains("over the limit of 128 MiB"), "{error}");
    pool.shutdown().await;
}

#[tokio::test]
async fn resources_report_worker_memory_and_gauges() {
    let pool = PoolBuilder::new(fast(config(vec![("work", demo_type(1))]))).start().unwrap();
    let r = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    let pid = r.worker_pid.unwrap();
    assert!(wait_until(LIMIT, || pool.resources().workers.iter().any(|w| w.pid == pid)).await);
    let snapshot = pool.resources();
    let w = snapshot.workers.iter().find(|w| w.pid == pid).unwrap();
    assert!(w.memory_bytes > 0);
    assert!(snapshot.system.memory_total_bytes > 0 && snapshot.system.cpus > 0);
    assert!(metric(&pool, "workerpool_worker_memory_bytes", &[("worker", &w.worker_id)]) > 0.0);
    pool.shutdown().await;
}

#[tokio::test]
async fn no_further_worker_starts_above_the_cpu_threshold() {
    let cpu = FakeProbe::new();
    cpu.set_cpu(95.0);
    let mut t = demo_type(3);
    t.cpu_threshold = 80.0;
    let pool = PoolBuilder::new(fast(config(vec![("work", t)]))).resource_probe(cpu.clone()).start().unwrap();
    // Wait for a sample at 95%.
    assert!(wait_until(LIMIT, || pool.resources().system.cpu_percent > 90.0).await);
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(pool.submit(op("sleep", json!({ "ms": 300 }))).await.unwrap());
    }
    // Only the type's first worker may start while CPU is above the threshold.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.by_type["work"].total, 1, "{stats:?}");
    assert!(stats.by_type["work"].start_blocked.as_deref().unwrap().contains("cpu_threshold 80%"));
    cpu.set_cpu(10.0);
    assert!(wait_until(LIMIT, || futures_total(&pool) >= 2).await, "no worker started once CPU fell");
    for h in handles {
        assert_eq!(within(LIMIT, h.wait()).await.unwrap().status, TaskStatus::Completed);
    }
    pool.shutdown().await;
}

fn futures_total(pool: &workerpool_actors::PoolHandle) -> usize {
    let pool = pool.clone();
    on_thread(move || async move { pool.stats().await.unwrap().by_type["work"].total })
}

#[tokio::test]
async fn gpu_types_take_tasks_only_while_a_gpu_is_usable() {
    let gpu = FakeGpu::unavailable();
    let mut t = demo_type(1);
    t.gpu_required = true;
    let pool = PoolBuilder::new(fast(config(vec![("work", t)]))).gpu_source(gpu.clone()).start().unwrap();
    let refused = pool.enqueue(op("echo", json!({}))).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable);
    assert!(refused.to_string().contains("fake: no GPU"), "{refused}");
    assert!(pool.availability("work").is_err());

    gpu.set_available(true);
    assert!(wait_until(LIMIT, || pool.availability("work").is_ok()).await);
    let record = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    assert_eq!(pool.resources().gpus[0].name, "Fake GPU");
    assert_eq!(metric(&pool, "workerpool_gpu_utilization_percent", &[("gpu", "0")]), 42.0);
    pool.shutdown().await;
}

#[tokio::test]
async fn the_real_nvml_path_says_why_no_gpu_is_usable() {
    let mut t = demo_type(1);
    t.gpu_required = true;
    let pool = PoolBuilder::new(config(vec![("work", t)])).start().unwrap();
    let gpu = pool.resources().gpu;
    if gpu.available {
        // A machine with a GPU: the type takes tasks.
        let record = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
        assert_eq!(record.status, TaskStatus::Completed);
    } else {
        let reason = gpu.reason.unwrap();
        assert!(reason.starts_with("NVML"), "{reason}");
        let err = pool.enqueue(op("echo", json!({}))).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains(&reason));
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_stops_answering_pings_is_replaced() {
    let pool = PoolBuilder::new(fast(config(vec![("work", demo_type(1))]))).start().unwrap();
    let mut events = pool.subscribe();
    let muted = within(LIMIT, pool.execute(op("mute", json!({})))).await.unwrap();
    let pid = u64::from(muted.worker_pid.unwrap());
    assert!(wait_until(LIMIT, || !alive(pid)).await, "the silent worker {pid} was not replaced");
    let mut unhealthy = false;
    while let Ok(e) = events.try_recv() {
        if let EventKind::WorkerHealth { healthy: false, detail, .. } = e.kind {
            assert!(detail.contains("no pong"), "{detail}");
            unhealthy = true;
        }
    }
    assert!(unhealthy, "no worker_health event");
    let counted = wait_until(Duration::from_secs(5), || {
        metric(&pool, "workerpool_worker_restarts_total", &[("reason", "unresponsive")]) == 1.0
    });
    assert!(counted.await);
    let next = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    assert_ne!(result_pid(&next), pid);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_burst_scales_up_to_the_limit_then_idles_back_to_min_workers() {
    let mut t = demo_type(3);
    t.min_workers = 1;
    t.idle_timeout_ms = 300;
    let pool = PoolBuilder::new(fast(config(vec![("work", t)]))).start().unwrap();
    let mut events = pool.subscribe();
    // Pre-warmed.
    assert!(wait_until(LIMIT, || futures_total(&pool) == 1).await);
    let peak = Arc::new(Mutex::new(0));
    let mut handles = Vec::new();
    for _ in 0..9 {
        handles.push(pool.submit(op("sleep", json!({ "ms": 200 }))).await.unwrap());
    }
    for h in handles {
        let r = within(LIMIT, h.wait()).await.unwrap();
        assert_eq!(r.status, TaskStatus::Completed);
        let n = futures_total(&pool);
        let mut p = peak.lock().unwrap();
        *p = (*p).max(n);
    }
    assert_eq!(*peak.lock().unwrap(), 3);
    assert!(wait_until(LIMIT, || futures_total(&pool) == 1).await, "did not scale back down");
    let (mut ups, mut downs) = (0, 0);
    while let Ok(e) = events.try_recv() {
        match e.kind {
            EventKind::ScaleUp { .. } => ups += 1,
            EventKind::ScaleDown { reason, .. } => {
                assert_eq!(reason, "idle");
                downs += 1;
            }
            _ => {}
        }
    }
    assert!(ups >= 1 && downs >= 1, "ups {ups} downs {downs}");
    assert!(metric(&pool, "workerpool_scale_events_total", &[("direction", "down")]) >= 1.0);
    pool.shutdown().await;
}

#[tokio::test]
async fn the_pool_wide_minimum_is_prewarmed_on_usable_types() {
    let mut gpu_type = demo_type(2);
    gpu_type.gpu_required = true;
    let mut cfg = config(vec![("a", demo_type(2)), ("b", gpu_type), ("c", demo_type(2))]);
    cfg.min_workers = 2;
    let pool = PoolBuilder::new(cfg).gpu_source(FakeGpu::unavailable()).start().unwrap();
    let ready = wait_until(LIMIT, || {
        let pool = pool.clone();
        on_thread(move || async move {
            let s = pool.stats().await.unwrap();
            (s.by_type["a"].available, s.by_type["b"].total, s.by_type["c"].available)
        }) == (1, 0, 1)
    })
    .await;
    assert!(ready, "expected one warm worker on each usable type");
    // Scaling down below the warm minimum is refused.
    let err = pool.scale("a", workerpool_actors::ScaleAction::Down(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    pool.shutdown().await;
}

#[test]
fn the_sysinfo_probe_sees_a_child_spin() {
    // A real child that spins a core shows CPU after a couple of samples.
    let mut child = std::process::Command::new(demo_command()[0].as_str())
        .arg("demo-worker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let line = json!({"id": "s", "type": "x", "data": {"op": "spin", "ms": 2000}, "attempt": 1}).to_string();
    writeln!(child.stdin.as_mut().unwrap(), "{line}").unwrap();
    let mut probe = SysinfoProbe::new().unwrap();
    let mut best = 0.0f32;
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(250));
        let (_, procs) = probe.sample(&[child.id()]);
        best = best.max(procs.get(&child.id()).map_or(0.0, |p| p.cpu_percent));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(best > 20.0, "the spinning child showed {best}% CPU");
}

#[tokio::test]
async fn unused_request_type_is_still_refused() {
    let pool = PoolBuilder::new(config(vec![("work", demo_type(1))])).start().unwrap();
    let err = pool.enqueue(TaskRequest::new("nope", json!({}))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownType);
    pool.shutdown().await;
}

#[tokio::test]
async fn warm_workers_give_their_slots_to_real_work() {
    // Two slots, both taken by warm workers of other types: a task of a third type still runs.
    let mut cfg = config(vec![("a", demo_type(2)), ("b", demo_type(2)), ("c", demo_type(2))]);
    cfg.max_workers = 2;
    cfg.min_workers = 2;
    let pool = PoolBuilder::new(cfg).start().unwrap();
    let warm = wait_until(LIMIT, || {
        let pool = pool.clone();
        on_thread(move || async move {
            let s = pool.stats().await.unwrap();
            (s.by_type["a"].available, s.by_type["b"].available)
        }) == (1, 1)
    })
    .await;
    assert!(warm, "the pool-wide minimum was not pre-warmed");
    let req = TaskRequest::new("c", json!({ "op": "echo" }));
    let record = within(LIMIT, pool.execute(req)).await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_gpu_type_cannot_be_scaled_up_without_a_gpu() {
    let mut t = demo_type(2);
    t.gpu_required = true;
    let pool =
        PoolBuilder::new(config(vec![("work", t)])).gpu_source(FakeGpu::unavailable()).start().unwrap();
    let err = pool.scale("work", workerpool_actors::ScaleAction::Up(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("fake: no GPU"), "{err}");
    assert_eq!(pool.stats().await.unwrap().total, 0);
    pool.shutdown().await;
}
