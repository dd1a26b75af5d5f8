//! The library with in-process handlers only: no child processes, no web stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use workerpool_actors::testing::{Attempt, FakeGpu, FakeProbe, PausedSystem, ScriptedExecutor};
use workerpool_actors::{
    ErrorKind, EventKind, PoolBuilder, PoolConfig, TaskError, TaskRequest, TaskStatus, TypeConfig,
};

const LIMIT: Duration = Duration::from_secs(20);

fn config() -> PoolConfig {
    PoolConfig { types: Default::default(), max_workers: 8, min_workers: 0, ..PoolConfig::default() }
}

fn quick(max_concurrent: usize) -> TypeConfig {
    let mut t = TypeConfig::defaults_for("inproc");
    t.max_concurrent = max_concurrent;
    t.retry_delay_ms = 10;
    t
}

async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut).await.expect("finished in time")
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Sum {
    a: i64,
    b: i64,
}

#[tokio::test]
async fn typed_handlers_round_trip_through_serde() {
    let pool = PoolBuilder::new(config())
        .typed_handler("add", |s: Sum, _ctx| async move { Ok::<_, TaskError>(s.a + s.b) })
        .start()
        .unwrap();
    let total: i64 = within(pool.execute_typed("add", &Sum { a: 2, b: 40 })).await.unwrap();
    assert_eq!(total, 42);
    // The wrong input shape fails the task at once, naming the type.
    let err = within(pool.execute_typed::<_, i64>("add", &json!({"a": "x"}))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TaskFailed);
    assert!(err.to_string().contains("invalid input for add"), "{err}");
    // The right input and the wrong output type is a decode error.
    let err = within(pool.execute_typed::<_, String>("add", &Sum { a: 1, b: 1 })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn in_process_parallelism_is_bounded_by_max_concurrent() {
    // On the paused clock the 20 tasks of 30 ms run in five waves of exactly four.
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_millis(30)).answer(json!(null))]);
    let mut cfg = config();
    cfg.types.insert("slow".into(), quick(4));
    let pool = PoolBuilder::new(cfg)
        .handler("slow", exec.handler())
        .resource_probe(FakeProbe::new())
        .gpu_source(FakeGpu::unavailable())
        .start()
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for _ in 0..20 {
        handles.push(pool.submit(TaskRequest::new("slow", json!({}))).await.unwrap());
    }
    for h in handles {
        assert_eq!(h.wait().await.unwrap().status, TaskStatus::Completed);
    }
    assert_eq!(exec.peak(), 4);
    let starts: Vec<u128> = exec.calls().iter().map(|c| (c.started - t0).as_millis()).collect();
    let waves: Vec<u128> = [0, 30, 60, 90, 120].iter().flat_map(|&t| [t; 4]).collect();
    assert_eq!(starts, waves);
    assert_eq!(t0.elapsed(), Duration::from_millis(150));
    pool.shutdown().await;
}

#[tokio::test]
async fn a_panicking_handler_is_a_crash_that_is_retried() {
    let mut cfg = config();
    cfg.types.insert("flaky".into(), quick(1));
    let pool = PoolBuilder::new(cfg)
        .handler("flaky", |ctx| async move {
            if ctx.attempt() == 1 {
                panic!("first attempt blows up");
            }
            Ok(json!({"attempt": ctx.attempt()}))
        })
        .start()
        .unwrap();
    let mut events = pool.subscribe();
    let record = within(pool.execute(TaskRequest::new("flaky", json!({})))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    assert_eq!(record.result, Some(json!({"attempt": 2})));
    let mut failed = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let EventKind::TaskFailed { error, status, .. } = e.kind {
            failed.push((error, status));
        }
    }
    assert_eq!(failed.len(), 1);
    assert!(failed[0].0.contains("first attempt blows up"), "{failed:?}");
    assert_eq!(failed[0].1, TaskStatus::Queued);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_dead_task_requeued_after_the_fault_is_fixed_completes() {
    let fixed = Arc::new(AtomicBool::new(false));
    let f = fixed.clone();
    let mut cfg = config();
    let mut t = quick(1);
    t.max_retries = 2;
    cfg.types.insert("db".into(), t);
    let pool = PoolBuilder::new(cfg)
        .handler("db", move |_ctx| {
            let ok = f.load(Ordering::SeqCst);
            async move { if ok { Ok(json!("stored")) } else { Err(TaskError::retryable("database down")) } }
        })
        .start()
        .unwrap();
    let record = within(pool.execute(TaskRequest::new("db", json!({})))).await.unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::Dead, 3));
    assert_eq!(record.error.as_deref(), Some("database down"));
    assert_eq!(pool.dead_letters("db").await.unwrap().len(), 1);
    fixed.store(true, Ordering::SeqCst);
    let id = pool.requeue(&record.id).await.unwrap();
    let again = within(pool.wait(&id)).await.unwrap();
    assert_eq!((again.status, again.attempts), (TaskStatus::Completed, 1));
    assert_eq!(again.result, Some(json!("stored")));
    assert!(pool.dead_letters("db").await.unwrap().is_empty());
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_timed_out_handler_is_aborted() {
    // The attempt never answers: only its drop at the timeout ends it.
    let exec = ScriptedExecutor::new([Attempt::hang()]);
    let mut cfg = config();
    let mut t = quick(1);
    t.max_retries = 0;
    cfg.types.insert("hang".into(), t);
    let pool = PoolBuilder::new(cfg)
        .handler("hang", exec.handler())
        .resource_probe(FakeProbe::new())
        .gpu_source(FakeGpu::unavailable())
        .start()
        .unwrap();
    // No `within`: the attempt's deadline is kept on the real clock, and while the real 50 ms
    // pass the paused clock races ahead, past any bound set on it.
    let record = pool.execute(TaskRequest::new("hang", json!({})).timeout_ms(50)).await.unwrap();
    assert_eq!(record.status, TaskStatus::TimedOut);
    // A sleep on the paused clock returns once the pool has done all it could.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let calls = exec.calls();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].dropped.is_some() && calls[0].finished.is_none(),
        "the timed-out handler kept running: {calls:?}"
    );
    assert_eq!(exec.running(), 0);
    pool.shutdown().await;
}

#[tokio::test]
async fn events_reach_every_subscriber_with_contract_names() {
    let mut cfg = config();
    cfg.types.insert("echo".into(), quick(1));
    let pool = PoolBuilder::new(cfg)
        .handler("echo", |ctx| async move {
            ctx.progress(50, Some("half"));
            Ok(ctx.data().clone())
        })
        .start()
        .unwrap();
    let mut a = pool.subscribe();
    let mut b = pool.subscribe();
    let record = within(pool.execute(TaskRequest::new("echo", json!(1)))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    for rx in [&mut a, &mut b] {
        let mut names = Vec::new();
        // The waiter hears of the end first; the event follows at once.
        while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            let done = e.kind.name() == "task_completed";
            names.push(e.kind.name());
            let json = serde_json::to_value(&e).unwrap();
            assert_eq!(json["event"], e.kind.name());
            assert!(json["timestamp"].as_u64().unwrap() > 0);
            if done {
                break;
            }
        }
        for expected in ["worker_created", "worker_ready", "task_assigned", "task_progress", "task_completed"]
        {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn configuration_errors_name_the_type() {
    let mut cfg = config();
    cfg.types.insert("orphan".into(), TypeConfig::defaults_for("orphan"));
    let err = PoolBuilder::new(cfg.clone()).start().err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("types.orphan.command"), "{err}");
    cfg.types.get_mut("orphan").unwrap().executor = workerpool_actors::ExecutorKind::InProcess;
    let err = PoolBuilder::new(cfg).start().err().unwrap();
    assert!(err.to_string().contains("no handler is registered for orphan"), "{err}");
}

#[tokio::test]
async fn the_tree_runs_inside_an_existing_actix_system() {
    // Under an actix System the tree starts on the caller's arbiter instead of its own thread.
    let result = tokio::task::spawn_blocking(|| {
        actix_rt::System::new().block_on(async {
            let pool = PoolBuilder::new(config())
                .handler("x", |ctx| async move { Ok(json!(ctx.data().as_i64().unwrap_or(0) + 1)) })
                .start()
                .unwrap();
            let r = pool.execute(TaskRequest::new("x", json!(1))).await.unwrap();
            pool.shutdown().await;
            r.result
        })
    })
    .await
    .unwrap();
    assert_eq!(result, Some(json!(2)));
}
