//! A manual scale-up of a GPU type on paused time: what the GPUs have room for starts now, the
//! answer says how many wait and why, the rest start as soon as room frees, and a scale-down
//! takes the waiting ones back first.

#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use workerpool_actors::testing::{Attempt, FakeGpu, FakeProbe, ScriptedExecutor};
use workerpool_actors::{
    ErrorKind, PoolBuilder, PoolHandle, ScaleAction, TaskRequest, TaskStatus, TypeConfig,
};

use support::{at, config, in_process};

/// An in-process type taking `gpus` whole GPUs per worker, up to `max_concurrent` workers.
fn whole_gpus(gpus: usize, max_concurrent: usize) -> TypeConfig {
    TypeConfig { gpu_required: true, gpus_per_worker: Some(gpus), ..in_process(max_concurrent) }
}

/// A pool of `types` on `devices` fake GPUs, each task taking a second.
fn start(devices: usize, types: &[(&str, TypeConfig)]) -> PoolHandle {
    let gpu = FakeGpu::with_devices(&vec![81_920; devices]);
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_secs(1)).answer("done")]);
    let mut cfg = config(8);
    for (name, t) in types {
        cfg.types.insert(name.to_string(), t.clone());
    }
    let mut builder = PoolBuilder::new(cfg).resource_probe(FakeProbe::new()).gpu_source(gpu);
    for (name, _) in types {
        builder = builder.handler(*name, exec.handler());
    }
    builder.start().expect("the pool starts")
}

async fn live(pool: &PoolHandle, task_type: &str) -> usize {
    pool.stats().await.expect("stats").by_type[task_type].total
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn workers_the_gpus_have_no_room_for_wait_and_start_when_room_frees() {
    // One worker of `holder` takes a GPU for one task; `g` is scaled up by two on the other.
    let holder = TypeConfig { max_tasks_per_worker: Some(1), ..whole_gpus(1, 1) };
    let pool = start(2, &[("holder", holder), ("g", whole_gpus(1, 3))]);
    let t0 = Instant::now();
    let held = pool.submit(TaskRequest::new("holder", json!({}))).await.expect("accepted");
    at(t0, 10).await;

    let scaled = pool.scale("g", ScaleAction::Up(2)).await.expect("accepted");
    assert_eq!((scaled.workers, scaled.started, scaled.waiting), (2, 1, 1), "{scaled:?}");
    let why = scaled.gpu_wait.clone().unwrap_or_default();
    assert!(why.contains("waiting for GPU room"), "{why}");
    // The wait shows where demand-driven waits do.
    assert_eq!(pool.gpu_wait("g").as_deref(), Some(why.as_str()));
    let stats = pool.stats().await.expect("stats");
    assert_eq!(stats.by_type["g"].start_blocked.as_deref(), Some(why.as_str()));
    assert_eq!(stats.by_type["g"].total, 1);

    // The holder's worker ends after its task: the waiting worker takes its GPU at once.
    assert_eq!(held.wait().await.expect("a record").status, TaskStatus::Completed);
    at(t0, 1_100).await;
    assert_eq!(live(&pool, "g").await, 2);
    assert_eq!(pool.gpu_wait("g"), None);
    assert_eq!(pool.stats().await.expect("stats").by_type["g"].start_blocked, None);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_scale_down_takes_back_the_waiting_workers_first() {
    // Three GPUs, two of them held by `holder`'s warm workers.
    let holder = TypeConfig { min_workers: 2, ..whole_gpus(1, 2) };
    let pool = start(3, &[("holder", holder), ("g", whole_gpus(1, 3))]);
    let t0 = Instant::now();
    at(t0, 10).await;
    assert_eq!(live(&pool, "holder").await, 2);
    let scaled = pool.scale("g", ScaleAction::Up(3)).await.expect("accepted");
    assert_eq!((scaled.workers, scaled.started, scaled.waiting), (3, 1, 2), "{scaled:?}");
    // One of the two waiting is not started after all; the other still waits.
    let down = pool.scale("g", ScaleAction::Down(1)).await.expect("accepted");
    assert_eq!((down.workers, down.started, down.waiting), (2, 0, 1), "{down:?}");
    assert!(down.gpu_wait.is_some(), "{down:?}");
    let down = pool.scale("g", ScaleAction::Down(1)).await.expect("accepted");
    assert_eq!((down.workers, down.waiting, down.gpu_wait.clone()), (1, 0, None), "{down:?}");
    assert_eq!(pool.gpu_wait("g"), None);
    // Past a resource sample and a scaling round, still the one worker that started.
    at(t0, 61_000).await;
    assert_eq!(live(&pool, "g").await, 1);
    // Past max_concurrent, counting those waiting: refused, as before.
    let up = pool.scale("g", ScaleAction::Up(2)).await.expect("accepted");
    assert_eq!((up.workers, up.started, up.waiting), (3, 0, 2), "{up:?}");
    let err = pool.scale("g", ScaleAction::Up(1)).await.expect_err("past max_concurrent");
    assert_eq!(err.kind(), ErrorKind::Limit, "{err}");
    assert!(err.to_string().contains("waiting for GPU room (2)"), "{err}");
    // The worker that started idles past its idle timeout, but the scale-up still waits to
    // complete: it is kept, not retired and started again.
    let before: Vec<String> = pool.workers().await.expect("workers").into_iter().map(|w| w.id).collect();
    at(t0, 61_000 + 400_000).await;
    let after: Vec<String> = pool.workers().await.expect("workers").into_iter().map(|w| w.id).collect();
    assert_eq!(before, after);
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_scale_up_past_what_the_gpus_could_ever_hold_at_once_is_refused() {
    // One GPU: one whole-GPU worker at a time, whatever max_concurrent says.
    let pool = start(1, &[("g", whole_gpus(1, 3))]);
    let err = pool.scale("g", ScaleAction::Up(2)).await.expect_err("two can never run at once");
    assert_eq!(err.kind(), ErrorKind::Limit, "{err}");
    assert!(err.to_string().contains("at most 1 of its workers at once"), "{err}");
    assert_eq!(pool.gpu_wait("g"), None, "nothing waits for ever");
    let one = pool.scale("g", ScaleAction::Up(1)).await.expect("one fits");
    assert_eq!((one.workers, one.started, one.waiting), (1, 1, 0), "{one:?}");
    let err = pool.scale("g", ScaleAction::Up(1)).await.expect_err("a second never fits beside it");
    assert!(err.to_string().contains("and 1 are alive"), "{err}");
    pool.shutdown().await;
}

#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]
async fn a_scale_up_no_gpu_here_can_ever_hold_is_refused() {
    let pool = start(2, &[("g", whole_gpus(3, 2))]);
    let err = pool.scale("g", ScaleAction::Up(1)).await.expect_err("never fits");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("can never give that"), "{err}");
    assert_eq!(live(&pool, "g").await, 0);
    pool.shutdown().await;
}
