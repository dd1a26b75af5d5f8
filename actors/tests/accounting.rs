//! What an attempt used, in its task's record, on a paused clock: an in-process attempt's
//! wall time is exact to the millisecond, and the sampled figures (CPU, memory, GPU memory),
//! which only a worker process has, are absent. A retried task shows its last attempt.

#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::time::Instant;
use workerpool_actors::testing::{Attempt, PausedSystem, ScriptedExecutor, script_input};
use workerpool_actors::{PoolBuilder, TaskRequest, TaskResources, TaskStatus};

const fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[actix_rt::test(system = "PausedSystem")]
async fn an_in_process_attempt_records_its_exact_wall_time_and_no_sampled_figures() {
    let exec = ScriptedExecutor::new([Attempt::after(millis(1234)).echo()]);
    let (pool, _) = start(config(2), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let task = pool.submit(TaskRequest::new("job", json!({"n": 1}))).await.unwrap();
    // While it runs, no attempt has ended: no figures yet.
    at(t0, 600).await;
    let running = pool.lookup(task.id()).await.unwrap();
    assert_eq!((running.status, running.resources), (TaskStatus::Running, None));

    let record = task.wait().await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    assert_eq!(
        record.resources,
        Some(TaskResources {
            wall_ms: 1234,
            cpu_ms: None,
            peak_rss_bytes: None,
            gpus: vec![],
            peak_gpu_memory_bytes: None
        })
    );
    // The record as the REST API shows it: every figure named, the unknown ones null.
    let shown = serde_json::to_value(&record).unwrap();
    assert_eq!(
        shown["resources"],
        json!({"wall_ms": 1234, "cpu_ms": null, "peak_rss_bytes": null, "gpus": [], "peak_gpu_memory_bytes": null})
    );
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_retried_task_shows_the_figures_of_its_last_attempt() {
    let exec = ScriptedExecutor::new([Attempt::echo()]);
    exec.script("flaky", [Attempt::after(millis(40)).fail("flaky"), Attempt::after(millis(25)).echo()]);
    let (pool, _) = start(config(2), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let task = pool.submit(TaskRequest::new("job", script_input("flaky"))).await.unwrap();
    // Backing off before the retry (100 ms after the first attempt ended at 40 ms): the
    // record shows the failed attempt.
    at(t0, 90).await;
    let between = pool.lookup(task.id()).await.unwrap();
    assert_eq!((between.status, between.attempts), (TaskStatus::Queued, 1));
    assert_eq!(between.resources.map(|r| r.wall_ms), Some(40));

    let record = task.wait().await.unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::Completed, 2));
    assert_eq!(ms(t0, Instant::now()), 165);
    assert_eq!(record.resources.map(|r| (r.wall_ms, r.cpu_ms)), Some((25, None)));
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_timed_out_attempt_records_its_timeout_as_wall_time() {
    let exec = ScriptedExecutor::new([Attempt::hang()]);
    let mut t = in_process(1);
    t.max_retries = 0;
    let (pool, _) = start(config(2), vec![("job", t, &exec)]);
    let record = pool.execute(TaskRequest::new("job", json!({})).timeout_ms(300)).await.unwrap();
    assert_eq!(record.status, TaskStatus::TimedOut);
    assert_eq!(record.resources.map(|r| r.wall_ms), Some(300));
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn the_accounting_series_exist_per_type_and_skip_unknown_peaks() {
    let exec = ScriptedExecutor::new([Attempt::after(millis(5)).echo()]);
    let mut cfg = config(2);
    cfg.types.insert("job".into(), in_process(1));
    let registry = prometheus::Registry::new();
    let pool = PoolBuilder::new(cfg)
        .registry(registry.clone())
        .resource_probe(workerpool_actors::testing::FakeProbe::new())
        .gpu_source(workerpool_actors::testing::FakeGpu::unavailable())
        .handler("job", exec.handler())
        .start()
        .unwrap();
    pool.execute(TaskRequest::new("job", json!({}))).await.unwrap();
    let families = registry.gather();
    let family = |name: &str| families.iter().find(|f| f.name() == name).cloned();
    let rss = family("workerpool_task_peak_rss_bytes").expect("the peak RSS histogram");
    // An in-process attempt has no peak: nothing observed.
    assert_eq!(rss.get_metric()[0].get_histogram().get_sample_count(), 0);
    let gpu = family("workerpool_task_gpu_seconds_total").expect("the GPU seconds counter");
    assert_eq!(gpu.get_metric()[0].get_counter().get_value(), 0.0);
    pool.shutdown().await;
}
