//! Edge cases of the TypePool state machine, each once a bug: prefetched tasks cancelled or
//! orphaned around a drain, a restart during a drain, `execute` racing a shutdown, and a
//! handler that panics before returning its future. Process workers are small `python3 -c`
//! scripts speaking the JSON-lines protocol of the contract (§4).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use workerpool_actors::testing::{Attempt, FakeGpu, FakeProbe, PausedSystem, ScriptedExecutor};
use workerpool_actors::{
    ExecutorKind, PoolBuilder, PoolConfig, PoolHandle, TaskId, TaskRequest, TaskStatus, TaskUpdate,
    TypeConfig,
};

const LIMIT: Duration = Duration::from_secs(20);
/// Most updates a test follows on one task's watch.
const UPDATES: usize = 1_000;

async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut).await.expect("finished in time")
}

/// A sequential worker: answers pings; a task sleeps `data.sleep` ms and returns `data.tag`.
const PY_WORKER: &str = r#"
import sys, json, time
for line in sys.stdin:
    m = json.loads(line)
    if "ping" in m:
        print(json.dumps({"pong": m["ping"]}), flush=True)
        continue
    d = m.get("data") or {}
    time.sleep(d.get("sleep", 0) / 1000.0)
    print(json.dumps({"id": m["id"], "result": d.get("tag")}), flush=True)
"#;

fn py_type(prefetch: usize) -> TypeConfig {
    let mut t = TypeConfig::defaults_for("py");
    t.executor = ExecutorKind::Process;
    t.command = Some(vec!["python3".into(), "-u".into(), "-c".into(), PY_WORKER.into()]);
    t.max_concurrent = 1;
    t.prefetch = prefetch;
    t.max_retries = 0;
    t.retry_delay_ms = 10;
    t.timeout_ms = 10_000;
    t
}

fn config(graceful_ms: u64) -> PoolConfig {
    PoolConfig {
        types: Default::default(),
        max_workers: 4,
        min_workers: 0,
        graceful_shutdown_timeout_ms: graceful_ms,
        ..PoolConfig::default()
    }
}

/// Follows a task until it is reported running (its watch delivers each status change).
async fn until_running(pool: &PoolHandle, id: &TaskId) {
    let mut watch = pool.watch(id).await.unwrap();
    let running = async {
        for _ in 0..UPDATES {
            match watch.next().await {
                Some(TaskUpdate::Status(r)) if r.status == TaskStatus::Running => return true,
                Some(TaskUpdate::Status(_) | TaskUpdate::Progress { .. }) => {}
                Some(TaskUpdate::Ended(_)) | None => return false,
            }
        }
        false
    };
    let reached = tokio::time::timeout(LIMIT, running).await.unwrap_or(false);
    assert!(reached, "task {id} was never reported running: {:?}", pool.lookup(id).await);
}

async fn until_sent(pool: &PoolHandle, task_type: &str, id: &TaskId) {
    let start = Instant::now();
    loop {
        let q = pool.queue(task_type, 0..100).await.unwrap();
        if q.tasks.iter().any(|t| t.id == id.as_str() && t.state == "sent") {
            return;
        }
        assert!(start.elapsed() < LIMIT, "task {id} was never sent ahead: {q:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// BUG: cancelling a prefetched (sent) task leaves its line in the worker's pipe, but the
/// pool forgets it: when the running task ends, the pool starts the clock of the next task
/// (or calls the worker idle) while the worker is in fact still running the cancelled one.
/// The next task's timeout then counts the cancelled task's run time and it times out.
#[tokio::test]
async fn cancelling_a_sent_task_does_not_eat_the_next_tasks_timeout() {
    let mut cfg = config(1000);
    cfg.types.insert("py".into(), py_type(2));
    let pool = PoolBuilder::new(cfg).start().unwrap();
    let t1 = pool.submit(TaskRequest::new("py", json!({"sleep": 500, "tag": 1}))).await.unwrap();
    until_running(&pool, t1.id()).await;
    let t2 = pool.submit(TaskRequest::new("py", json!({"sleep": 2000, "tag": 2}))).await.unwrap();
    until_sent(&pool, "py", t2.id()).await;
    let cancelled = within(t2.cancel()).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    // A quick task with a timeout twice its queue wait behind t1: it must complete.
    let t3 =
        pool.submit(TaskRequest::new("py", json!({"sleep": 0, "tag": 3})).timeout_ms(1200)).await.unwrap();
    let r1 = within(t1.wait()).await.unwrap();
    assert_eq!(r1.status, TaskStatus::Completed);
    let r3 = within(t3.wait()).await.unwrap();
    assert_eq!(
        r3.status,
        TaskStatus::Completed,
        "t3 took the blame for the cancelled task still running in the worker: {r3:?}"
    );
    within(pool.shutdown()).await;
}

/// BUG: during a drain, a worker that dies (here: its running task times out and it is
/// killed) puts its prefetched tasks back in the ready queue (`requeue_sent`), where no worker
/// will ever take them: the drain answers as soon as the last worker has exited, with those
/// tasks still live. Their waiters are never answered with a record (the library's thread
/// stops and drops them: "stopped"), and their records stay `queued` forever.
#[tokio::test]
async fn a_sent_task_requeued_during_a_drain_is_failed_with_shutdown() {
    let mut cfg = config(5000);
    cfg.types.insert("py".into(), py_type(1));
    let pool = PoolBuilder::new(cfg).start().unwrap();
    let t1 = pool.submit(TaskRequest::new("py", json!({"sleep": 5000})).timeout_ms(600)).await.unwrap();
    until_running(&pool, t1.id()).await;
    let t2 = pool.submit(TaskRequest::new("py", json!({"sleep": 0, "tag": 2}))).await.unwrap();
    until_sent(&pool, "py", t2.id()).await;
    let t2_id = t2.id().clone();
    let report = within(pool.shutdown()).await;
    let r1 = within(t1.wait()).await.unwrap();
    assert_eq!(r1.status, TaskStatus::TimedOut);
    let r2 = within(t2.wait()).await;
    assert!(
        matches!(&r2, Ok(r) if r.status == TaskStatus::Failed && r.error.as_deref() == Some("shutdown")),
        "the sent task was not failed with `shutdown`: {r2:?}; record {:?}; report {report:?}",
        pool.lookup(&t2_id).await
    );
}

/// BUG: `RestartWorker` is not refused during a drain: the busy worker's task goes back to
/// the ready queue, no worker will take it, and the drain answers once the worker has exited,
/// leaving the task live and its waiter unanswered.
#[actix_rt::test(system = "PausedSystem")]
async fn restarting_a_worker_during_a_drain_does_not_lose_its_task() {
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_millis(2000)).answer(json!("done"))]);
    let mut cfg = config(5000);
    let mut t = TypeConfig::defaults_for("slow");
    t.executor = ExecutorKind::InProcess;
    t.max_concurrent = 1;
    cfg.types.insert("slow".into(), t);
    let pool = PoolBuilder::new(cfg)
        .handler("slow", exec.handler())
        .resource_probe(FakeProbe::new())
        .gpu_source(FakeGpu::unavailable())
        .start()
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let t1 = pool.submit(TaskRequest::new("slow", json!({}))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pool.lookup(t1.id()).await.unwrap().status, TaskStatus::Running);
    let worker = pool.workers().await.unwrap()[0].id.clone();
    let p = pool.clone();
    let shutdown = actix_rt::spawn(async move { p.shutdown().await });
    // On the paused clock this sleep returns only once the drain has begun.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let refused = pool.restart_worker(&worker).await.unwrap_err();
    assert_eq!(refused.kind(), workerpool_actors::ErrorKind::ShuttingDown);
    // The running task finishes within the grace period, on its own worker.
    let r1 = t1.wait().await.unwrap();
    assert_eq!(
        (r1.status, r1.result, r1.worker_id),
        (TaskStatus::Completed, Some(json!("done")), Some(worker))
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(2000));
    let report = shutdown.await.unwrap();
    assert_eq!((report.finished_in_grace, report.failed_running, report.failed_waiting), (1, 0, 0));
    assert_eq!(exec.calls().len(), 1);
}

/// BUG: a handler whose closure panics before it returns its future (a synchronous panic,
/// e.g. an `unwrap` on the input outside the `async` block) is not caught: `run_inproc`
/// calls `handler(task)` outside `catch_unwind`, the panic unwinds through the pool actor,
/// and the pool of that type is gone for good ("stopped") instead of a crash being retried.
#[tokio::test]
async fn a_handler_that_panics_before_returning_its_future_is_a_crash() {
    let mut cfg = config(1000);
    let mut t = TypeConfig::defaults_for("sync");
    t.executor = ExecutorKind::InProcess;
    t.retry_delay_ms = 10;
    t.max_retries = 1;
    cfg.types.insert("sync".into(), t);
    let pool = PoolBuilder::new(cfg)
        .handler("sync", |ctx| {
            if ctx.attempt() == 1 {
                panic!("synchronous panic");
            }
            async move { Ok(json!("second attempt")) }
        })
        .start()
        .unwrap();
    let record = within(pool.execute(TaskRequest::new("sync", json!({})))).await;
    assert!(
        matches!(&record, Ok(r) if r.status == TaskStatus::Completed),
        "a synchronous panic took the pool down: {record:?}"
    );
    within(pool.shutdown()).await;
}

/// BUG (race): `PoolHandle::execute` pushes into the pool's `Intake` and only the first push
/// after a drain sends `DrainIntake`. If the pool stops (the library's system is stopped at
/// shutdown) while that wake-up is still in its mailbox, the `scheduled` flag stays set and
/// the calls stay in the intake, which the handle keeps alive: those calls, and every later
/// `execute` of that type, wait forever instead of answering "stopped".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_never_hangs_around_a_shutdown() {
    let (mut hung, mut late_hung) = (0, 0);
    for _round in 0..10 {
        let mut cfg = config(100);
        let mut t = TypeConfig::defaults_for("x");
        t.executor = ExecutorKind::InProcess;
        t.max_concurrent = 2;
        t.queue_size = 10_000;
        cfg.types.insert("x".into(), t);
        let pool = PoolBuilder::new(cfg).handler("x", |_ctx| async move { Ok(json!(1)) }).start().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stuck = Arc::new(AtomicUsize::new(0));
        let mut hammers = Vec::new();
        for _ in 0..16 {
            let (pool, stop, stuck) = (pool.clone(), stop.clone(), stuck.clone());
            hammers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let call = pool.execute(TaskRequest::new("x", json!({})));
                    match tokio::time::timeout(Duration::from_secs(3), call).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => tokio::task::yield_now().await,
                        Err(_) => {
                            stuck.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        within(pool.shutdown()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        for h in hammers {
            within(h).await.unwrap();
        }
        // Long after the pool has stopped, a call must answer at once.
        let late =
            tokio::time::timeout(Duration::from_secs(3), pool.execute(TaskRequest::new("x", json!({}))))
                .await;
        if stuck.load(Ordering::Relaxed) > 0 {
            hung += 1;
        }
        if late.is_err() {
            late_hung += 1;
        }
    }
    assert_eq!(
        (hung, late_hung),
        (0, 0),
        "of 10 rounds: calls around the shutdown hung in {hung}, a call made after it in {late_hung}"
    );
}
