//! The actor tree with real demo-worker processes: reuse, limits, order, failures, shutdown,
//! kept records. Tasks sent ahead are in `pool_prefetch.rs`.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use support::*;
use workerpool_actors::{ErrorKind, EventKind, PoolBuilder, ScaleAction, TaskStatus};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn tasks_reuse_at_most_max_concurrent_processes() {
    let pool = demo_pool(3, |_| {});
    let mut handles = Vec::new();
    for i in 0..30 {
        handles.push(pool.submit(op("echo", json!({ "i": i }))).await.expect("queued"));
    }
    let mut pids = HashSet::new();
    for (i, h) in handles.into_iter().enumerate() {
        let r = within(LIMIT, h.wait()).await.expect("record");
        assert_eq!(r.status, TaskStatus::Completed);
        assert_eq!(r.result.as_ref().unwrap()["echo"]["i"], i);
        assert_eq!(r.worker_pid, Some(result_pid(&r) as u32));
        pids.insert(result_pid(&r));
    }
    assert!(!pids.is_empty() && pids.len() <= 3, "{} distinct pids", pids.len());
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.tasks_completed, 30);
    assert!(stats.total <= 3);
    pool.shutdown().await;
}

#[tokio::test]
async fn peak_parallelism_equals_max_concurrent() {
    let pool = demo_pool(3, |_| {});
    let mut handles = Vec::new();
    for _ in 0..9 {
        handles.push(pool.submit(op("sleep", json!({ "ms": 300 }))).await.unwrap());
    }
    let mut spans = Vec::new();
    for h in handles {
        let r = within(LIMIT, h.wait()).await.unwrap();
        assert_eq!(r.status, TaskStatus::Completed);
        spans.push((r.started_at.unwrap(), r.finished_at.unwrap()));
    }
    // The most attempts running at any one start instant.
    let peak = spans.iter().map(|&(s, _)| spans.iter().filter(|&&(s2, f2)| s2 <= s && s < f2).count()).max();
    assert_eq!(peak, Some(3));
    pool.shutdown().await;
}

#[tokio::test]
async fn higher_priority_runs_first_fifo_within_one() {
    let pool = demo_pool(1, |_| {});
    let mut events = pool.subscribe();
    let blocker = pool.submit(op("sleep", json!({ "ms": 400 }))).await.unwrap();
    until_running(&pool, blocker.id(), LIMIT).await;
    let mut ids = Vec::new();
    for (n, priority) in [0, 5, 1, 5, 10].into_iter().enumerate() {
        let id = pool.enqueue(op("echo", json!({ "n": n })).priority(priority)).await.unwrap();
        ids.push(id);
    }
    for id in &ids {
        within(LIMIT, pool.wait(id)).await.unwrap();
    }
    let mut order = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let EventKind::TaskAssigned { task_id, .. } = e.kind
            && let Some(n) = ids.iter().position(|id| id.as_str() == task_id)
        {
            order.push(n);
        }
    }
    assert_eq!(order, vec![4, 1, 3, 2, 0]);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_refuses_and_hands_the_task_back() {
    let pool = demo_pool(1, |t| t.queue_size = 2);
    let running = pool.enqueue(op("sleep", json!({ "ms": 500 }))).await.unwrap();
    until_running(&pool, &running, LIMIT).await;
    pool.enqueue(op("echo", json!({}))).await.unwrap();
    pool.enqueue(op("echo", json!({}))).await.unwrap();
    let refused = pool.enqueue(op("echo", json!({ "keep": "me" }))).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::QueueFull);
    assert!(refused.to_string().contains("full"), "{refused}");
    let back = refused.into_inner();
    assert_eq!(back.data["keep"], "me");
    assert_eq!(pool.stats().await.unwrap().by_type["work"].queued, 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_task_kills_its_worker_and_retries() {
    let pool = demo_pool(1, |t| t.max_retries = 1);
    let record =
        within(LIMIT, pool.execute(op("sleep", json!({ "ms": 20_000 })).timeout_ms(300))).await.unwrap();
    assert_eq!(record.status, TaskStatus::TimedOut);
    assert_eq!(record.attempts, 2);
    assert!(record.error.as_deref().unwrap().contains("timed out"));
    let pid = u64::from(record.worker_pid.unwrap());
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)).await, "pid {pid} still alive");
    // The pool goes on with a fresh worker.
    let next = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    assert_eq!(next.status, TaskStatus::Completed);
    assert_ne!(result_pid(&next), pid);
    let dead = pool.dead_letters("work").await.unwrap();
    assert_eq!(dead.len(), 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_crashed_worker_is_replaced_and_the_task_retried() {
    let pool = demo_pool(1, |t| t.max_retries = 2);
    let record = within(LIMIT, pool.execute(op("crash", json!({ "until_attempt": 1 })))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed, "{record:?}");
    assert_eq!(record.attempts, 2);
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.tasks_completed, 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn crashes_out_of_attempts_go_dead_and_can_be_requeued() {
    let pool = demo_pool(1, |t| t.max_retries = 1);
    let mut events = pool.subscribe();
    let record = within(LIMIT, pool.execute(op("crash", json!({})))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Dead);
    assert_eq!(record.attempts, 2);
    assert!(record.error.as_deref().unwrap().contains("exited with code 3"), "{:?}", record.error);
    let dead = pool.dead_letters("work").await.unwrap();
    assert_eq!(dead.iter().map(|r| &r.id).collect::<Vec<_>>(), vec![&record.id]);
    // Two crashes, two replacements: three different worker ids were created.
    let mut created = HashSet::new();
    while let Ok(e) = events.try_recv() {
        if let EventKind::WorkerCreated { worker_id, .. } = e.kind {
            created.insert(worker_id);
        }
    }
    assert_eq!(created.len(), 2);
    let id = pool.requeue(&record.id).await.unwrap();
    assert_eq!(id, record.id);
    let again = within(LIMIT, pool.wait(&id)).await.unwrap();
    assert_eq!((again.status, again.attempts), (TaskStatus::Dead, 2));
    assert_eq!(pool.requeue(&"nope".into()).await.unwrap_err().kind(), ErrorKind::UnknownTask);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_non_retryable_error_fails_once() {
    let pool = demo_pool(1, |t| t.max_retries = 3);
    let record =
        within(LIMIT, pool.execute(op("fail", json!({ "retryable": false, "message": "bad input" }))))
            .await
            .unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::Failed, 1));
    assert_eq!(record.error.as_deref(), Some("bad input"));
    assert!(pool.dead_letters("work").await.unwrap().is_empty());
    let retried = within(LIMIT, pool.execute(op("fail", json!({ "retryable": true })))).await.unwrap();
    assert_eq!((retried.status, retried.attempts), (TaskStatus::Dead, 4));
    pool.shutdown().await;
}

#[tokio::test]
async fn cancel_a_queued_and_a_running_task() {
    let pool = demo_pool(1, |_| {});
    let running = pool.submit(op("sleep", json!({ "ms": 20_000 }))).await.unwrap();
    let queued = pool.submit(op("echo", json!({}))).await.unwrap();
    let pid = u64::from(until_running(&pool, running.id(), LIMIT).await.worker_pid.unwrap());

    let cancelled = queued.cancel().await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(cancelled.attempts, 0);
    let cancelled = running.cancel().await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(within(LIMIT, running.wait()).await.unwrap().status, TaskStatus::Cancelled);
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)).await, "pid {pid} still alive");
    assert_eq!(pool.cancel(queued.id()).await.unwrap_err().kind(), ErrorKind::Finished);

    let next = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    assert_ne!(result_pid(&next), pid);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_delayed_task_starts_after_its_delay() {
    let pool = demo_pool(1, |_| {});
    let record = within(LIMIT, pool.execute(op("echo", json!({})).delay_ms(400))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    let waited = record.started_at.unwrap() - record.created_at;
    assert!(waited >= 400, "started after {waited} ms");
    pool.shutdown().await;
}

#[tokio::test]
async fn workers_are_recycled_after_max_tasks() {
    let pool = demo_pool(1, |t| t.max_tasks_per_worker = Some(2));
    let mut pids = Vec::new();
    for _ in 0..6 {
        let r = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
        pids.push(result_pid(&r));
    }
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[2], pids[3]);
    assert_ne!(pids[1], pids[2]);
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 3);
    pool.shutdown().await;
}

#[tokio::test]
async fn progress_is_streamed_to_the_task_handle() {
    let pool = demo_pool(1, |_| {});
    let mut handle = pool.submit(op("progress", json!({ "steps": 4, "step_ms": 20 }))).await.unwrap();
    let mut seen = Vec::new();
    while let Some(p) = within(LIMIT, handle.progress()).await {
        seen.push(p.progress);
    }
    assert_eq!(seen, vec![25, 50, 75, 100]);
    let record = handle.wait().await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    assert_eq!(record.progress.unwrap().progress, 100);
    pool.shutdown().await;
}

#[tokio::test]
async fn max_workers_is_shared_and_no_type_starves() {
    let mut cfg = config(vec![("a", demo_type(2)), ("b", demo_type(2))]);
    cfg.max_workers = 2;
    let pool = PoolBuilder::new(cfg).start().unwrap();
    let mut handles = Vec::new();
    for i in 0..8 {
        let t = if i % 2 == 0 { "a" } else { "b" };
        let req = workerpool_actors::TaskRequest::new(t, json!({ "op": "sleep", "ms": 50 }));
        handles.push(pool.submit(req).await.unwrap());
    }
    let mut peak = 0;
    for h in handles {
        let fut = h.wait();
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => { assert_eq!(r.unwrap().status, TaskStatus::Completed); break; }
                _ = tokio::time::sleep(Duration::from_millis(5)) => {
                    peak = peak.max(pool.stats().await.unwrap().total);
                }
            }
        }
    }
    assert!(peak <= 2, "peak of {peak} live workers");
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.by_type["a"].tasks_completed, 4);
    assert_eq!(stats.by_type["b"].tasks_completed, 4);
    pool.shutdown().await;
}

#[tokio::test]
async fn manual_scale_and_restart() {
    let pool = demo_pool(2, |_| {});
    assert_eq!(pool.scale("work", ScaleAction::Up(2)).await.unwrap().workers, 2);
    assert!(wait_until(LIMIT, || count_workers(&pool, "idle") == 2).await);
    let err = pool.scale("work", ScaleAction::Up(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert!(err.to_string().contains("max_concurrent is 2"), "{err}");
    let workers = pool.workers().await.unwrap();
    let victim = workers[0].clone();
    pool.restart_worker(&victim.id).await.unwrap();
    assert!(wait_until(LIMIT, || !alive(u64::from(victim.pid.unwrap()))).await);
    // The restarted worker is replaced by a fresh one.
    assert!(wait_until(LIMIT, || count_workers(&pool, "idle") == 2).await);
    let ids: HashSet<String> = pool.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert!(!ids.contains(&victim.id) && ids.len() == 2, "{ids:?}");
    assert_eq!(pool.restart_worker("work-999").await.unwrap_err().kind(), ErrorKind::UnknownWorker);
    assert_eq!(pool.scale("work", ScaleAction::Down(2)).await.unwrap().workers, 0);
    assert!(wait_until(LIMIT, || count_workers(&pool, "any") == 0).await);
    assert_eq!(pool.scale("nope", ScaleAction::Up(1)).await.unwrap_err().kind(), ErrorKind::UnknownType);
    pool.shutdown().await;
}

/// Workers in `state` ("any": every one not stopping), read on a thread of its own so the
/// polling closure stays synchronous.
fn count_workers(pool: &workerpool_actors::PoolHandle, state: &'static str) -> usize {
    let pool = pool.clone();
    on_thread(move || async move {
        let workers = pool.workers().await.unwrap();
        workers.iter().filter(|w| w.state != "stopping" && (state == "any" || w.state == state)).count()
    })
}

#[tokio::test]
async fn shutdown_lets_running_tasks_finish_and_fails_waiting_ones() {
    let pool = demo_pool(1, |_| {});
    let running = pool.submit(op("sleep", json!({ "ms": 300 }))).await.unwrap();
    let waiting = pool.submit(op("echo", json!({}))).await.unwrap();
    let pid = u64::from(until_running(&pool, running.id(), LIMIT).await.worker_pid.unwrap());
    let report = within(LIMIT, pool.shutdown()).await;
    assert_eq!((report.finished_in_grace, report.failed_waiting, report.failed_running), (1, 1, 0));
    assert_eq!(running.wait().await.unwrap().status, TaskStatus::Completed);
    let w = waiting.wait().await.unwrap();
    assert_eq!((w.status, w.error.as_deref()), (TaskStatus::Failed, Some("shutdown")));
    assert!(!alive(pid), "worker {pid} outlived the shutdown");
    let refused = pool.enqueue(op("echo", json!({}))).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ShuttingDown);
    // Nothing is lost: the refused request comes back.
    assert_eq!(refused.into_inner().data["op"], "echo");
}

#[tokio::test]
async fn shutdown_fails_tasks_still_running_after_the_grace_period() {
    let mut t = demo_type(1);
    t.max_retries = 0;
    let mut cfg = config(vec![("work", t)]);
    cfg.graceful_shutdown_timeout_ms = 200;
    let pool = PoolBuilder::new(cfg).start().unwrap();
    let running = pool.submit(op("sleep", json!({ "ms": 20_000 }))).await.unwrap();
    let pid = u64::from(until_running(&pool, running.id(), LIMIT).await.worker_pid.unwrap());
    let report = within(Duration::from_secs(10), pool.shutdown()).await;
    assert_eq!(report.failed_running, 1);
    let r = running.wait().await.unwrap();
    assert_eq!((r.status, r.error.as_deref()), (TaskStatus::Failed, Some("shutdown")));
    assert!(!alive(pid));
}

#[tokio::test]
async fn a_bad_command_refuses_tasks_with_a_clear_error() {
    // Found when the pool starts: the type is unavailable, and no worker is spawned for it.
    let pool = demo_pool(1, |t| t.command = Some(vec!["/nonexistent/worker".into()]));
    let err = within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("cannot run \"/nonexistent/worker\""), "{err}");
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.by_type["work"].total, 0, "no worker was started");
    pool.shutdown().await;
}

#[tokio::test]
async fn unknown_type_is_refused() {
    let pool = demo_pool(1, |_| {});
    let err = pool.enqueue(workerpool_actors::TaskRequest::new("nope", json!({}))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownType);
    assert_eq!(err.into_inner().task_type, "nope");
    pool.shutdown().await;
}

/// A tree with one in-process type `fast` whose handler returns its input.
fn inproc_pool(record_ttl_ms: u64, max_records: usize) -> workerpool_actors::PoolHandle {
    let mut t = workerpool_actors::TypeConfig::defaults_for("fast");
    t.executor = workerpool_actors::ExecutorKind::InProcess;
    t.max_concurrent = 2;
    let mut cfg = config(vec![("fast", t)]);
    cfg.record_ttl_ms = record_ttl_ms;
    cfg.max_records = max_records;
    PoolBuilder::new(cfg)
        .handler("fast", |ctx| async move { Ok(ctx.data().clone()) })
        .start()
        .expect("pool starts")
}

#[tokio::test]
async fn finished_records_go_after_record_ttl_ms() {
    let pool = inproc_pool(300, 1_000);
    let record = pool.execute(workerpool_actors::TaskRequest::new("fast", json!({ "n": 1 }))).await.unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    let kept = pool.lookup(&record.id).await.expect("the record is kept at first");
    assert_eq!(kept.result, Some(json!({ "n": 1 })));
    // Expiry runs every 100 ms: the record goes between 300 ms and about half a second.
    let gone = || async { pool.lookup(&record.id).await.is_err_and(|e| e.kind() == ErrorKind::UnknownTask) };
    assert!(wait_until_async(Duration::from_secs(5), gone).await, "the record stayed");
    let err = pool.lookup(&record.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    pool.shutdown().await;
}

#[tokio::test]
async fn at_most_max_records_finished_records_are_kept_newest_first() {
    let pool = inproc_pool(3_600_000, 64);
    let mut ids = Vec::new();
    for n in 0..1_000 {
        let request = workerpool_actors::TaskRequest::new("fast", json!({ "n": n }));
        ids.push(pool.execute(request).await.unwrap().id);
    }
    let mut kept = Vec::with_capacity(ids.len());
    for id in &ids {
        kept.push(match pool.lookup(id).await {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::UnknownTask => false,
            Err(e) => panic!("looking up {id}: {e}"),
        });
    }
    let count = kept.iter().filter(|k| **k).count();
    // A generation (a thirty-second of the room, here 2 records) goes at a time.
    assert!((60..=64).contains(&count), "{count} records kept");
    assert!(kept[kept.len() - count..].iter().all(|k| *k), "the newest are kept");
    assert!(!kept[0], "the oldest went");
    pool.shutdown().await;
}
