//! The life of a task in an in-process pool, on a paused clock: retries and their backoff,
//! errors that are not retried, attempt timeouts, delays, queue order, cancels and a full
//! queue. The workers around the tasks are in `lifecycle_workers.rs`.
//!
//! Each test scripts a `ScriptedExecutor` and asserts when things happen on the tokio clock,
//! to the millisecond; none sleeps in real time.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::time::Instant;
use workerpool_actors::testing::{Attempt, PausedSystem, ScriptedExecutor, script_input};
use workerpool_actors::{ErrorKind, EventKind, TaskRequest, TaskStatus};

const fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ===== retries =====

#[actix_rt::test(system = "PausedSystem")]
async fn retries_back_off_doubling_then_the_task_is_dead_lettered() {
    let exec = ScriptedExecutor::new([Attempt::after(millis(10)).fail("flaky")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let task = pool.submit(TaskRequest::new("job", json!({}))).await.unwrap();
    // Between the first attempt (10 ms) and its retry (100 ms later) the task waits, queued.
    at(t0, 50).await;
    let between = pool.lookup(task.id()).await.unwrap();
    assert_eq!(ms(t0, Instant::now()), 50, "the look-up let the clock move");
    assert_eq!((between.status, between.attempts), (TaskStatus::Queued, 1));
    assert_eq!(between.error.as_deref(), Some("flaky"));

    let record = task.wait().await.unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::Dead, 4), "{record:?}");
    assert_eq!(record.error.as_deref(), Some("flaky"));
    let calls = exec.calls();
    assert_eq!(calls.iter().map(|c| c.attempt).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // The retry of attempt n starts retry_delay_ms · 2^(n-1) after attempt n ended.
    assert_eq!(starts(t0, &calls), [0, 110, 320, 730]);
    assert!(calls.iter().all(|c| c.id == record.id && c.finished == Some(c.started + millis(10))));
    assert_eq!(ms(t0, Instant::now()), 740);

    let dead = pool.dead_letters("job").await.unwrap();
    assert_eq!(dead.iter().map(|r| (&r.id, r.status)).collect::<Vec<_>>(), [(&record.id, TaskStatus::Dead)]);
    assert_eq!(pool.stats().await.unwrap().tasks_failed, 1);
    // No attempt follows the last one.
    at(t0, 60_000).await;
    assert_eq!(exec.calls().len(), 4);
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_task_option_overrides_the_types_retries() {
    let exec = ScriptedExecutor::new([Attempt::fail("flaky")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let record = pool.execute(TaskRequest::new("job", json!({})).max_retries(1)).await.unwrap();
    assert_eq!((record.status, record.attempts, record.max_retries), (TaskStatus::Dead, 2, 1));
    assert_eq!(starts(t0, &exec.calls()), [0, 100]);
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn an_error_that_is_not_retryable_fails_at_once() {
    let exec = ScriptedExecutor::new([Attempt::after(millis(10)).fatal("bad input")]);
    exec.script("fatal-on-retry", [Attempt::fail("flaky"), Attempt::fatal("bad input")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let record = pool.execute(TaskRequest::new("job", json!({}))).await.unwrap();
    assert_eq!(ms(t0, Instant::now()), 10);
    assert_eq!((record.status, record.attempts), (TaskStatus::Failed, 1));
    assert_eq!(record.error.as_deref(), Some("bad input"));
    // A retryable error first, then one that is not: the second attempt is the last.
    let t1 = Instant::now();
    let second = pool.execute(TaskRequest::new("job", script_input("fatal-on-retry"))).await.unwrap();
    assert_eq!((second.status, second.attempts), (TaskStatus::Failed, 2));
    assert_eq!(ms(t1, Instant::now()), 100);

    at(t0, 60_000).await;
    assert_eq!(exec.calls().len(), 3, "{:?}", exec.calls());
    // Failed tasks are not dead letters: only dead and timed-out ones are.
    assert!(pool.dead_letters("job").await.unwrap().is_empty());
    assert_eq!(pool.stats().await.unwrap().tasks_failed, 2);
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_panicking_handler_is_a_crash_its_slot_replaced_and_the_task_retried() {
    let exec = ScriptedExecutor::new([Attempt::after(millis(5)).crash("boom"), Attempt::answer("ok")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let mut rx = pool.subscribe();
    let t0 = Instant::now();
    let record = pool.execute(TaskRequest::new("job", json!({}))).await.unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::Completed, 2));
    assert_eq!(record.result, Some(json!("ok")));
    assert_eq!(starts(t0, &exec.calls()), [0, 105]);
    at(t0, 200).await;
    let events = events(&mut rx);
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::TaskFailed { error, status, .. } => Some((error.as_str(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [("the handler panicked: boom", TaskStatus::Queued)]);
    let exits: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::WorkerExited { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(exits, ["crashed"]);
    let workers: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::TaskAssigned { worker_id, .. } => Some(worker_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(workers.len(), 2);
    assert_ne!(workers[0], workers[1], "the crashed slot ran the retry");
    pool.shutdown().await;
}

// ===== timeouts =====

#[actix_rt::test(system = "PausedSystem")]
async fn an_attempt_past_its_timeout_is_dropped_retried_then_dead_lettered() {
    let exec = ScriptedExecutor::new([Attempt::hang()]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let mut rx = pool.subscribe();
    let record =
        pool.execute(TaskRequest::new("job", json!({})).timeout_ms(20).max_retries(1)).await.unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::TimedOut, 2), "{record:?}");
    assert_eq!(record.error.as_deref(), Some("timed out after 20 ms"));
    let dead = pool.dead_letters("job").await.unwrap();
    assert_eq!(
        dead.iter().map(|r| (&r.id, r.status)).collect::<Vec<_>>(),
        [(&record.id, TaskStatus::TimedOut)]
    );
    tokio::time::sleep(millis(1)).await;
    let calls = exec.calls();
    assert_eq!(calls.len(), 2);
    // Each attempt was dropped (aborted), not left running, and the retry waited its backoff.
    assert!(calls.iter().all(|c| c.finished.is_none() && c.dropped.is_some()), "{calls:?}");
    assert_eq!(calls[1].started - calls[0].dropped.unwrap(), millis(100));
    assert_eq!(exec.running(), 0);
    let timeouts = events(&mut rx)
        .into_iter()
        .filter(|e| matches!(e, EventKind::WorkerExited { reason, .. } if reason == "timeout"))
        .count();
    assert_eq!(timeouts, 2, "each timed-out slot is replaced");
    pool.shutdown().await;
}

/// BUG: attempt deadlines are kept on `std::time::Instant` (`pool/mod.rs`, `pool/timeouts.rs`),
/// while the alarm that checks them is a tokio timer (`run_later`). On a paused clock the alarm
/// fires at once, finds the deadline not yet passed on the real clock and re-arms for the rest,
/// again and again: the tokio clock races ahead while the real one crawls to the deadline. So a
/// handler that sleeps (on tokio time) ten times its timeout completes, and whatever else is
/// timed meanwhile (backoff, the handler's own sleeps, the monitors) runs far ahead.
#[actix_rt::test(system = "PausedSystem")]
async fn an_attempt_timeout_follows_the_tokio_clock() {
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_secs(10)).answer("late")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let record =
        pool.execute(TaskRequest::new("job", json!({})).timeout_ms(1000).max_retries(0)).await.unwrap();
    let took = ms(t0, Instant::now());
    assert_eq!(
        (record.status, took),
        (TaskStatus::TimedOut, 1000),
        "a 1000 ms timeout on the paused clock let a 10 s attempt run: {record:?}"
    );
    pool.shutdown().await;
}

// ===== waiting =====

#[actix_rt::test(system = "PausedSystem")]
async fn a_delayed_task_waits_its_delay_before_it_runs() {
    let exec = ScriptedExecutor::new([Attempt::echo()]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let task = pool.submit(TaskRequest::new("job", json!(7)).delay_ms(500)).await.unwrap();
    at(t0, 499).await;
    assert_eq!(pool.lookup(task.id()).await.unwrap().status, TaskStatus::Queued);
    assert_eq!(ms(t0, Instant::now()), 499, "the look-up let the clock move");
    let queue = pool.queue("job", 0..10).await.unwrap();
    assert_eq!((queue.length, queue.ready, queue.tasks[0].state), (1, 0, "waiting"));
    assert!(exec.calls().is_empty());
    let record = task.wait().await.unwrap();
    assert_eq!((record.status, record.result), (TaskStatus::Completed, Some(json!(7))));
    assert_eq!(starts(t0, &exec.calls()), [500]);
    assert_eq!(ms(t0, Instant::now()), 500);
    pool.shutdown().await;
}

#[actix_rt::test(system = "PausedSystem")]
async fn one_worker_takes_tasks_by_priority_then_first_come() {
    let exec = ScriptedExecutor::new([Attempt::after(millis(10)).echo()]);
    exec.script("block", [Attempt::after(millis(100)).answer("blocker")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let blocker = pool.submit(TaskRequest::new("job", script_input("block"))).await.unwrap();
    let mut labels = HashMap::new();
    let mut handles = Vec::new();
    for (label, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1), ("f", 5)] {
        let h =
            pool.submit(TaskRequest::new("job", json!({ "label": label })).priority(priority)).await.unwrap();
        labels.insert(h.id().clone(), label);
        handles.push(h);
    }
    // While the blocker runs, the queue lists them in the order they will run.
    at(t0, 50).await;
    let queue = pool.queue("job", 0..10).await.unwrap();
    let listed: Vec<_> = queue.tasks.iter().map(|t| (labels[&t.id.as_str().into()], t.priority)).collect();
    assert_eq!(listed, [("b", 5), ("d", 5), ("f", 5), ("a", 0), ("c", 0), ("e", -1)]);
    // Pages of it: the same order from an offset, with the counts of the whole queue.
    let page = pool.queue("job", 2..5).await.unwrap();
    let paged: Vec<_> = page.tasks.iter().map(|t| labels[&t.id.as_str().into()]).collect();
    assert_eq!((paged, page.offset, page.length), (vec!["f", "a", "c"], 2, 6));
    let past = pool.queue("job", 6..50).await.unwrap();
    assert_eq!((past.tasks.len(), past.offset, past.length), (0, 6, 6));
    assert_eq!(blocker.wait().await.unwrap().result, Some(json!("blocker")));
    for h in handles {
        assert_eq!(h.wait().await.unwrap().status, TaskStatus::Completed);
    }
    let calls = exec.calls();
    let order: Vec<_> = calls[1..].iter().map(|c| labels[&c.id]).collect();
    assert_eq!(order, ["b", "d", "f", "a", "c", "e"]);
    assert_eq!(starts(t0, &calls), [0, 100, 110, 120, 130, 140, 150]);
    assert_eq!(exec.peak(), 1);
    pool.shutdown().await;
}

// ===== cancel =====

#[actix_rt::test(system = "PausedSystem")]
async fn cancelling_a_queued_task_and_a_running_one() {
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_secs(1)).answer("done")]);
    let (pool, _) = start(config(4), vec![("job", in_process(1), &exec)]);
    let t0 = Instant::now();
    let running = pool.submit(TaskRequest::new("job", json!(1))).await.unwrap();
    let queued = pool.submit(TaskRequest::new("job", json!(2))).await.unwrap();
    at(t0, 100).await;
    assert_eq!(pool.cancel(queued.id()).await.unwrap().status, TaskStatus::Cancelled);
    let first_worker = pool.lookup(running.id()).await.unwrap().worker_id.unwrap();
    assert_eq!(pool.cancel(running.id()).await.unwrap().status, TaskStatus::Cancelled);
    let (running_id, queued_id) = (running.id().clone(), queued.id().clone());
    assert_eq!(running.wait().await.unwrap().status, TaskStatus::Cancelled);
    assert_eq!(queued.wait().await.unwrap().status, TaskStatus::Cancelled);

    // The running attempt was dropped at the cancel; the queued task never ran.
    at(t0, 2000).await;
    let calls = exec.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (&calls[0].id, calls[0].finished, calls[0].dropped),
        (&running_id, None, Some(t0 + millis(100)))
    );
    assert!(exec.calls_of(&queued_id).is_empty());
    // A cancelled task is not a failure, and cancelling it again is refused.
    assert_eq!(pool.stats().await.unwrap().tasks_failed, 0);
    assert_eq!(pool.cancel(&running_id).await.unwrap_err().kind(), ErrorKind::Finished);
    // The cancelled slot was replaced: the next task runs on a fresh one.
    let next = pool.execute(TaskRequest::new("job", json!(3))).await.unwrap();
    assert_eq!(next.status, TaskStatus::Completed);
    assert_ne!(next.worker_id.unwrap(), first_worker);
    pool.shutdown().await;
}

// ===== back-pressure =====

#[actix_rt::test(system = "PausedSystem")]
async fn a_full_queue_refuses_and_hands_the_request_back() {
    let exec = ScriptedExecutor::new([Attempt::after(millis(100)).echo()]);
    let mut t = in_process(1);
    t.queue_size = 2;
    let (pool, _) = start(config(4), vec![("job", t, &exec)]);
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for n in 1..=3 {
        handles.push(pool.submit(TaskRequest::new("job", json!({ "n": n }))).await.unwrap());
    }
    // One running and two waiting: the queue is full.
    let Err(refused) = pool.submit(TaskRequest::new("job", json!({ "n": 4 })).priority(7)).await else {
        panic!("a fourth task was taken past queue_size 2");
    };
    assert_eq!(refused.kind(), ErrorKind::QueueFull);
    assert!(refused.to_string().contains("the queue of job is full (2 tasks)"), "{refused}");
    let request = refused.into_inner();
    assert_eq!((request.task_type.as_str(), &request.data), ("job", &json!({ "n": 4 })));
    assert_eq!(request.options.priority, Some(7));
    let err = pool.execute(TaskRequest::new("job", json!({ "n": 5 }))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueueFull);

    // Once the first task is done and the second runs, there is room for the request again.
    at(t0, 150).await;
    let last = pool.submit(request).await.unwrap();
    for h in handles {
        assert_eq!(h.wait().await.unwrap().status, TaskStatus::Completed);
    }
    assert_eq!(last.wait().await.unwrap().result, Some(json!({ "n": 4 })));
    assert_eq!(starts(t0, &exec.calls()), [0, 100, 200, 300]);
    pool.shutdown().await;
}
