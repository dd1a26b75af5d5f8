//! The backend contract (`actors/src/backend/mod.rs`), one suite run against both backends:
//! every check below runs once on the in-process backend and once on Redis (a real
//! `redis-server` per test), with the same in-process handler.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::redis_server::RedisServer;
use support::within;
use tokio::sync::Semaphore;
use workerpool_actors::{
    ErrorKind, PoolBuilder, PoolConfig, PoolHandle, TaskError, TaskId, TaskRecord, TaskRequest, TaskStatus,
    TaskUpdate, TaskWatch, TypeConfig,
};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Redis,
}

/// What the handler saw: each attempt's task name, attempt number and start.
type Log = Arc<Mutex<Vec<(String, u32, Instant)>>>;

/// A pool of one in-process type `job` (one slot), its Redis server when it has one, and
/// what the handler saw.
struct Fixture {
    pool: PoolHandle,
    redis: Option<RedisServer>,
    log: Log,
    /// While set, `fail_while_set` tasks fail (retryably).
    failing: Arc<AtomicBool>,
    /// `gate` tasks wait for a permit of this.
    gate: Arc<Semaphore>,
}

fn config(kind: Kind, redis: Option<&RedisServer>, consume: bool) -> PoolConfig {
    let mut t = TypeConfig::defaults_for("job");
    t.max_concurrent = 1;
    t.retry_delay_ms = 100;
    t.max_retries = 2;
    t.timeout_ms = 30_000;
    let mut config = PoolConfig {
        max_workers: 4,
        min_workers: 0,
        graceful_shutdown_timeout_ms: 200,
        types: [("job".to_string(), t)].into_iter().collect(),
        ..PoolConfig::default()
    };
    if let (Kind::Redis, Some(redis)) = (kind, redis) {
        config.redis.url = Some(redis.url().into());
        config.redis.take_ahead = 0;
        config.redis.consume = consume;
        config.redis.lease_ms = 2_000;
        config.redis.heartbeat_ms = 200;
        config.redis.instance_id = format!("contract-{}", TaskId::new());
    }
    config
}

/// A pool on `redis` (or in memory) whose `job` handler follows the task's `op`.
fn pool_with(
    kind: Kind,
    redis: Option<&RedisServer>,
    consume: bool,
    log: &Log,
    failing: &Arc<AtomicBool>,
) -> PoolHandle {
    pool_gated(kind, redis, consume, log, failing, &Arc::new(Semaphore::new(0)))
}

/// As [`pool_with`], with `gate` tasks waiting for permits of `gate`.
fn pool_gated(
    kind: Kind,
    redis: Option<&RedisServer>,
    consume: bool,
    log: &Log,
    failing: &Arc<AtomicBool>,
    gate: &Arc<Semaphore>,
) -> PoolHandle {
    let (log, failing, gate) = (log.clone(), failing.clone(), gate.clone());
    PoolBuilder::new(config(kind, redis, consume))
        .handler("job", move |ctx| {
            let (log, failing, gate) = (log.clone(), failing.clone(), gate.clone());
            async move {
                let data = ctx.data().clone();
                let name = data["name"].as_str().unwrap_or_default().to_string();
                log.lock().unwrap().push((name.clone(), ctx.attempt(), Instant::now()));
                match data["op"].as_str().unwrap_or_default() {
                    "fail" => Err(TaskError::retryable("asked to fail")),
                    "fatal" => Err(TaskError::fatal("asked to fail for good")),
                    "fail_while_set" if failing.load(Ordering::Acquire) => {
                        Err(TaskError::retryable("not yet"))
                    }
                    "crash_first" if ctx.attempt() == 1 => panic!("the worker is lost"),
                    "sleep" => {
                        tokio::time::sleep(Duration::from_millis(data["ms"].as_u64().unwrap_or(0))).await;
                        Ok(json!(name))
                    }
                    "gate" => {
                        gate.acquire().await.expect("the gate is open").forget();
                        Ok(json!(name))
                    }
                    "progress" => {
                        // Apart by more than a second where asked, so a watch that reads the
                        // record every second sees each; the last one right before the end.
                        let apart = Duration::from_millis(data["apart_ms"].as_u64().unwrap_or(0));
                        ctx.progress(30, Some("first"));
                        tokio::time::sleep(apart).await;
                        ctx.progress(60, Some("second"));
                        Ok(json!("done"))
                    }
                    _ => Ok(json!(name)),
                }
            }
        })
        .start()
        .expect("the pool starts")
}

/// A fixture of `kind`, or `None` (the test returns) where Redis is missing outside CI.
fn fixture(kind: Kind) -> Option<Fixture> {
    let redis = match kind {
        Kind::Memory => None,
        Kind::Redis => Some(RedisServer::start(&[])?),
    };
    let log = Log::default();
    let failing = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Semaphore::new(0));
    let pool = pool_gated(kind, redis.as_ref(), true, &log, &failing, &gate);
    Some(Fixture { pool, redis, log, failing, gate })
}

fn job(name: &str, op: &str) -> TaskRequest {
    TaskRequest::new("job", json!({ "name": name, "op": op }))
}

fn sleeping(name: &str, ms: u64) -> TaskRequest {
    TaskRequest::new("job", json!({ "name": name, "op": "sleep", "ms": ms }))
}

impl Fixture {
    async fn ended(&self, id: &TaskId) -> TaskRecord {
        within(LIMIT, self.pool.wait(id)).await.expect("the task ends")
    }

    /// Waits until the task runs.
    async fn running(&self, id: &TaskId) {
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            if self.pool.lookup(id).await.is_ok_and(|r| r.status == TaskStatus::Running) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("task {id} never ran");
    }

    fn started(&self, name: &str) -> Vec<(u32, Instant)> {
        self.log.lock().unwrap().iter().filter(|(n, ..)| n == name).map(|(_, a, at)| (*a, *at)).collect()
    }
}

/// Ready tasks run by priority (higher first), then first come, first served.
async fn priority_then_fifo(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    let blocker = f.pool.enqueue(job("blocker", "gate")).await.unwrap();
    f.running(&blocker).await;
    let mut ids = Vec::new();
    for (name, priority) in [("a", 0), ("b", 0), ("urgent", 5), ("c", 0), ("later", -1)] {
        ids.push(f.pool.enqueue(job(name, "echo").priority(priority)).await.unwrap());
    }
    f.gate.add_permits(1);
    for id in &ids {
        assert_eq!(f.ended(id).await.status, TaskStatus::Completed);
    }
    let order: Vec<String> = f.log.lock().unwrap().iter().map(|(n, ..)| n.clone()).collect();
    assert_eq!(order, ["blocker", "urgent", "a", "b", "c", "later"]);
}

/// A delayed task does not start before its delay has passed.
async fn delay(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    let queued = Instant::now();
    let id = f.pool.enqueue(job("delayed", "echo").delay_ms(400)).await.unwrap();
    assert_eq!(f.ended(&id).await.status, TaskStatus::Completed);
    let started = f.started("delayed");
    assert_eq!(started.len(), 1);
    assert!(started[0].1 - queued >= Duration::from_millis(400), "started after {:?}", started[0].1 - queued);
}

/// A retryable failure is retried after `retry_delay_ms · 2^(n-1)`; after the last attempt
/// the task is dead, in the dead-letter list, and `requeue` runs it again with fresh attempts.
async fn retry_backoff_dead_letter_and_requeue(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    f.failing.store(true, Ordering::Release);
    let id = f.pool.enqueue(job("flaky", "fail_while_set")).await.unwrap();
    let dead = f.ended(&id).await;
    assert_eq!((dead.status, dead.attempts), (TaskStatus::Dead, 3));
    let starts = f.started("flaky");
    assert_eq!(starts.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(starts[1].1 - starts[0].1 >= Duration::from_millis(100));
    assert!(starts[2].1 - starts[1].1 >= Duration::from_millis(200));
    let letters = f.pool.dead_letters("job").await.unwrap();
    assert_eq!(letters.iter().map(|r| &r.id).collect::<Vec<_>>(), [&id]);

    f.failing.store(false, Ordering::Release);
    assert_eq!(f.pool.requeue(&id).await.unwrap(), id);
    let again = f.ended(&id).await;
    assert_eq!((again.status, again.attempts), (TaskStatus::Completed, 1));
    assert!(f.pool.dead_letters("job").await.unwrap().is_empty());
    // A task that is not dead-lettered is a conflict, completed or live.
    assert_eq!(f.pool.requeue(&id).await.unwrap_err().kind(), ErrorKind::Finished);
    let live = f.pool.enqueue(sleeping("live", 300)).await.unwrap();
    assert_eq!(f.pool.requeue(&live).await.unwrap_err().kind(), ErrorKind::Finished);
    assert_eq!(f.pool.requeue(&TaskId::new()).await.unwrap_err().kind(), ErrorKind::UnknownTask);
}

/// A non-retryable error ends the task at once, `failed`, and not in the dead letters.
async fn a_fatal_error_fails_at_once(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    let id = f.pool.enqueue(job("fatal", "fatal")).await.unwrap();
    let record = f.ended(&id).await;
    assert_eq!((record.status, record.attempts), (TaskStatus::Failed, 1));
    assert_eq!(record.error.as_deref(), Some("asked to fail for good"));
    assert!(f.pool.dead_letters("job").await.unwrap().is_empty());
}

/// A lost worker's task (its worker crashed under it) runs again as a new attempt.
async fn a_lost_workers_task_is_retried(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    let id = f.pool.enqueue(job("crashy", "crash_first")).await.unwrap();
    let record = f.ended(&id).await;
    assert_eq!((record.status, record.attempts), (TaskStatus::Completed, 2));
    assert_eq!(f.started("crashy").iter().map(|(a, _)| *a).collect::<Vec<_>>(), [1, 2]);
}

/// A queued task and a running one can both be cancelled; neither runs (on) afterwards.
async fn cancel_queued_and_running(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    let running = f.pool.enqueue(sleeping("long", 60_000)).await.unwrap();
    f.running(&running).await;
    let queued = f.pool.enqueue(job("never", "echo")).await.unwrap();
    let cancelled = f.pool.cancel(&queued).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let cancelled = f.pool.cancel(&running).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(f.ended(&running).await.status, TaskStatus::Cancelled);
    // The slot is free again: a new task runs, and the cancelled one never did.
    let after = f.pool.enqueue(job("after", "echo")).await.unwrap();
    assert_eq!(f.ended(&after).await.status, TaskStatus::Completed);
    assert!(f.started("never").is_empty());
    assert_eq!(f.pool.cancel(&after).await.unwrap_err().kind(), ErrorKind::Finished);
}

/// `watch` delivers the record, each progress report once, and the final record once, the
/// last report (sent right before the end) included.
async fn watch_delivers_progress_and_the_end_once(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    // Watched while it waits behind another task, so that every report comes after.
    let blocker = f.pool.enqueue(job("blocker", "gate")).await.unwrap();
    f.running(&blocker).await;
    let id = f.pool.enqueue(job("reporter", "progress")).await.unwrap();
    let watch = f.pool.watch(&id).await.unwrap();
    f.gate.add_permits(1);
    check_updates(watch).await;
}

/// Follows a watch to its end and checks what it delivered.
async fn check_updates(mut watch: TaskWatch) {
    let mut updates = Vec::new();
    while let Some(update) = within(LIMIT, watch.next()).await {
        updates.push(update);
    }
    assert!(
        matches!(updates.first(), Some(TaskUpdate::Status(r)) if r.status == TaskStatus::Queued),
        "{updates:?}"
    );
    let progress: Vec<(u8, Option<String>)> = updates
        .iter()
        .filter_map(|u| match u {
            TaskUpdate::Progress { progress, .. } => Some((progress.progress, progress.stage.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [(30, Some("first".to_string())), (60, Some("second".to_string()))]);
    let ends = updates.iter().filter(|u| matches!(u, TaskUpdate::Ended(_))).count();
    assert_eq!(ends, 1, "{updates:?}");
    match updates.last() {
        Some(TaskUpdate::Ended(record)) => assert_eq!(record.result, Some(Value::from("done"))),
        other => panic!("the last update is not the end: {other:?}"),
    }
    assert!(within(LIMIT, watch.next()).await.is_none(), "nothing after the end");
}

/// With Redis, a watch on an instance that does not run the task hears of it through the
/// shared record: each report (a second and a half apart), then the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_another_instance_reads_the_shared_record() {
    let Some(f) = fixture(Kind::Redis) else { return };
    let redis = f.redis.as_ref().expect("a Redis server");
    let front = pool_with(Kind::Redis, Some(redis), false, &Log::default(), &f.failing);
    let blocker = f.pool.enqueue(job("blocker", "gate")).await.unwrap();
    f.running(&blocker).await;
    let data = json!({ "name": "reporter", "op": "progress", "apart_ms": 1500 });
    let id = front.enqueue(TaskRequest::new("job", data)).await.unwrap();
    let watch = front.watch(&id).await.unwrap();
    f.gate.add_permits(1);
    check_updates(watch).await;
    front.shutdown().await;
}

/// At shutdown, a running task past the grace period: with Redis it goes back to its queue
/// without spending the attempt, and another instance runs it as attempt 1; in memory, where
/// the queue ends with the process, it fails with reason `shutdown`.
async fn shutdown_requeues_without_spending_an_attempt(kind: Kind) {
    let Some(f) = fixture(kind) else { return };
    let id = f.pool.enqueue(sleeping("interrupted", 60_000)).await.unwrap();
    f.running(&id).await;
    within(LIMIT, f.pool.shutdown()).await;
    match kind {
        Kind::Memory => {
            let record = f.pool.lookup(&id).await.unwrap();
            assert_eq!((record.status, record.error.as_deref()), (TaskStatus::Failed, Some("shutdown")));
        }
        Kind::Redis => {
            let redis = f.redis.as_ref().expect("a Redis server");
            let front = pool_with(kind, Some(redis), false, &f.log, &f.failing);
            let record = front.lookup(&id).await.unwrap();
            assert_eq!((record.status, record.attempts), (TaskStatus::Queued, 0));
            front.shutdown().await;
            // Another instance takes it, as its first attempt.
            let log = Log::default();
            let next = pool_with(kind, Some(redis), true, &log, &f.failing);
            within(LIMIT, async {
                while log.lock().unwrap().is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            assert_eq!(log.lock().unwrap()[0].1, 1, "the re-queued task ran as attempt 1");
            next.cancel(&id).await.unwrap();
            next.shutdown().await;
        }
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::Memory).await
            })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::Redis).await
            })*
        }
    };
}

both!(
    priority_then_fifo,
    delay,
    retry_backoff_dead_letter_and_requeue,
    a_fatal_error_fails_at_once,
    a_lost_workers_task_is_retried,
    cancel_queued_and_running,
    watch_delivers_progress_and_the_end_once,
    shutdown_requeues_without_spending_an_attempt,
);
