//! The workers around the tasks of an in-process pool, on a paused clock: recycling, scaling
//! by hand, slots lent between types, the graceful shutdown, and progress reports.
//!
//! Each test scripts a `ScriptedExecutor` and asserts when things happen on the tokio clock,
//! to the millisecond; none sleeps in real time.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::time::Instant;
use workerpool_actors::testing::{Attempt, PausedSystem, ScriptedExecutor, script_input};
use workerpool_actors::{ErrorKind, EventKind, ScaleAction, TaskRequest, TaskStatus};

const fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ===== workers =====

#[actix_rt::test(system = "PausedSystem")]
async fn a_slot_is_recycled_after_max_tasks_per_worker() {
    let exec = ScriptedExecutor::new([Attempt::echo()]);
    let mut t = in_process(1);
    t.max_tasks_per_worker = Some(2);
    let (pool, _) = start(config(4), vec![("job", t, &exec)]);
    let mut rx = pool.subscribe();
    let mut workers = Vec::new();
    for n in 0..5 {
        let record = pool.execute(TaskRequest::new("job", json!(n))).await.unwrap();
        assert_eq!(record.status, TaskStatus::Completed);
        workers.push(record.worker_id.unwrap());
    }
    assert_eq!(workers[0], workers[1]);
    assert_eq!(workers[2], workers[3]);
    assert!(workers[1] != workers[2] && workers[3] != workers[4], "{workers:?}");
    tokio::time::sleep(millis(1)).await;
    let recycled: Vec<_> = events(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::WorkerExited { worker_id, reason, .. } if reason == "recycled" => Some(worker_id),
            _ => None,
        })
        .collect();
    assert_eq!(recycled, [workers[0].clone(), workers[2].clone()]);
    // The fifth task's slot has one task left before it goes.
    assert_eq!(pool.stats().await.unwrap().by_type["job"].total, 1);
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn scaling_by_hand_stays_within_the_limits() {
    let exec = ScriptedExecutor::new([Attempt::echo()]);
    let mut a = in_process(3);
    a.min_workers = 1;
    let mut b = in_process(2);
    b.min_workers = 1;
    let (pool, _) = start(config(3), vec![("a", a, &exec), ("b", b, &exec)]);
    let totals = |s: workerpool_actors::PoolStats| (s.by_type["a"].total, s.by_type["b"].total);
    let t0 = Instant::now();
    at(t0, 1).await;
    assert_eq!(totals(pool.stats().await.unwrap()), (1, 1));

    let err = pool.scale("a", ScaleAction::Up(3)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert!(err.to_string().contains("max_concurrent is 3 and 1 are alive"), "{err}");
    let err = pool.scale("a", ScaleAction::Up(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert!(err.to_string().contains("max_workers is 3 and 1 slots are free"), "{err}");
    assert_eq!(pool.scale("a", ScaleAction::Up(1)).await.unwrap().workers, 2);
    assert_eq!(pool.scale("b", ScaleAction::Up(1)).await.unwrap_err().kind(), ErrorKind::Limit);
    at(t0, 2).await;
    assert_eq!(totals(pool.stats().await.unwrap()), (2, 1));

    let err = pool.scale("a", ScaleAction::Down(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert!(err.to_string().contains("2 are alive and min_workers is 1"), "{err}");
    assert_eq!(pool.scale("a", ScaleAction::Down(1)).await.unwrap().workers, 1);
    at(t0, 3).await;
    // The slot given back is free for another type.
    assert_eq!(pool.scale("b", ScaleAction::Up(1)).await.unwrap().workers, 2);
    at(t0, 4).await;
    assert_eq!(totals(pool.stats().await.unwrap()), (1, 2));
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn the_only_slot_is_lent_to_the_type_that_waits_for_it() {
    let exec_a = ScriptedExecutor::new([Attempt::after(millis(100)).answer("a")]);
    let exec_b = ScriptedExecutor::new([Attempt::after(millis(100)).answer("b")]);
    let (pool, _) = start(config(1), vec![("a", in_process(1), &exec_a), ("b", in_process(1), &exec_b)]);
    let mut rx = pool.subscribe();
    let t0 = Instant::now();
    let a1 = pool.submit(TaskRequest::new("a", json!({}))).await.unwrap();
    let b1 = pool.submit(TaskRequest::new("b", json!({}))).await.unwrap();
    at(t0, 50).await;
    let s = pool.stats().await.unwrap();
    assert_eq!((s.by_type["a"].total, s.by_type["a"].busy), (1, 1));
    assert_eq!((s.by_type["b"].total, s.by_type["b"].queued), (0, 1));
    // When a's task ends, a gives its slot to b at once.
    assert_eq!(a1.wait().await.unwrap().status, TaskStatus::Completed);
    assert_eq!(b1.wait().await.unwrap().status, TaskStatus::Completed);
    assert_eq!(starts(t0, &exec_b.calls()), [100]);
    // b's idle slot goes back to a as soon as a has work again.
    at(t0, 300).await;
    let a2 = pool.execute(TaskRequest::new("a", json!({}))).await.unwrap();
    assert_eq!(a2.status, TaskStatus::Completed);
    assert_eq!(starts(t0, &exec_a.calls()), [0, 300]);
    let yielded: Vec<_> = events(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::WorkerExited { task_type, reason, .. } if reason == "yielded" => Some(task_type),
            _ => None,
        })
        .collect();
    assert_eq!(yielded, ["a", "b"]);
    pool.shutdown().await;
}

// ===== shutdown =====

#[actix_rt::test(system = "PausedSystem")]
async fn a_shutdown_fails_waiting_tasks_and_gives_running_ones_the_grace_period() {
    let exec = ScriptedExecutor::new([Attempt::echo()]);
    exec.script("short", [Attempt::after(millis(500)).answer("short")]);
    exec.script("long", [Attempt::after(Duration::from_secs(5)).answer("long")]);
    let mut cfg = config(4);
    cfg.graceful_shutdown_timeout_ms = 1000;
    let (pool, _) = start(cfg, vec![("job", in_process(2), &exec)]);
    let t0 = Instant::now();
    let short = pool.submit(TaskRequest::new("job", script_input("short"))).await.unwrap();
    let long = pool.submit(TaskRequest::new("job", script_input("long"))).await.unwrap();
    let waiting = [
        pool.submit(TaskRequest::new("job", json!(1))).await.unwrap(),
        pool.submit(TaskRequest::new("job", json!(2))).await.unwrap(),
    ];
    at(t0, 100).await;
    let p = pool.clone();
    let stopping = actix_rt::spawn(async move { p.shutdown().await });
    for w in waiting {
        let r = w.wait().await.unwrap();
        assert_eq!((r.status, r.error.as_deref()), (TaskStatus::Failed, Some("shutdown")));
    }
    assert_eq!(ms(t0, Instant::now()), 100);
    let Err(late) = pool.submit(TaskRequest::new("job", json!(3))).await else {
        panic!("a task was taken during the drain");
    };
    assert_eq!(late.kind(), ErrorKind::ShuttingDown);

    let r = short.wait().await.unwrap();
    assert_eq!((r.status, r.result), (TaskStatus::Completed, Some(json!("short"))));
    assert_eq!(ms(t0, Instant::now()), 500);
    let r = long.wait().await.unwrap();
    assert_eq!((r.status, r.error.as_deref()), (TaskStatus::Failed, Some("shutdown")));
    assert_eq!(ms(t0, Instant::now()), 1100);

    let report = stopping.await.unwrap();
    assert_eq!((report.failed_waiting, report.finished_in_grace, report.failed_running), (2, 1, 1));
    assert_eq!(ms(t0, Instant::now()), 1100);
    let calls = exec.calls();
    assert_eq!(calls.len(), 2, "waiting tasks never ran: {calls:?}");
    assert_eq!(calls[0].finished, Some(t0 + millis(500)));
    assert_eq!((calls[1].finished, calls[1].dropped), (None, Some(t0 + millis(1100))));
}

// ===== progress =====

#[actix_rt::test(system = "PausedSystem")]
async fn progress_reports_reach_the_task_handle_in_order() {
    let exec = ScriptedExecutor::new([Attempt::progress(25, Some("start"))
        .after(millis(10))
        .progress(75, Some("late"))
        .after(millis(10))
        .answer("done")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let mut task = pool.submit(TaskRequest::new("job", json!({}))).await.unwrap();
    let mut seen = Vec::new();
    while let Some(p) = task.progress().await {
        seen.push((p.progress, p.stage));
        assert!(seen.len() <= 2, "more reports than the script made: {seen:?}");
    }
    assert_eq!(seen, [(25, Some("start".into())), (75, Some("late".into()))]);
    let record = task.wait().await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    let last = record.progress.unwrap();
    assert_eq!((last.progress, last.stage.as_deref()), (75, Some("late")));
    pool.shutdown().await;
}
