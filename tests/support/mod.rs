//! Shared helpers of the integration tests: pools of real demo-worker processes, bounded waits.
#![allow(dead_code)]

pub mod bounded;
pub mod cli;
pub mod demo_worker;
pub mod misbehaving;
pub mod openapi;
pub mod prometheus;
pub mod redis_server;
pub mod server;
pub mod shared_queue;
pub mod sse;
pub mod tls;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workerpool_actors::{
    PoolBuilder, PoolConfig, PoolHandle, TaskId, TaskRecord, TaskRequest, TaskStatus, TaskUpdate, TypeConfig,
};

/// The project's root (where the suites in other languages run).
pub fn repo() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled demo worker of the binary under test.
pub fn demo_command() -> Vec<String> {
    vec![env!("CARGO_BIN_EXE_workerpool").to_string(), "demo-worker".to_string()]
}

/// A process type running the demo worker, with `max_concurrent` workers and quick retries.
/// The CPU threshold is off: the tests count on their workers starting on a busy machine.
pub fn demo_type(max_concurrent: usize) -> TypeConfig {
    let mut t = TypeConfig::defaults_for("test");
    t.max_concurrent = max_concurrent;
    t.cpu_threshold = 100.0;
    t.command = Some(demo_command());
    t.retry_delay_ms = 20;
    t.timeout_ms = 20_000;
    t
}

/// A configuration with the given types only and a short graceful shutdown.
pub fn config(types: Vec<(&str, TypeConfig)>) -> PoolConfig {
    PoolConfig {
        max_workers: 16,
        min_workers: 0,
        graceful_shutdown_timeout_ms: 3_000,
        types: types.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
        ..PoolConfig::default()
    }
}

/// A started pool with one demo type `work`.
pub fn demo_pool(max_concurrent: usize, tweak: impl FnOnce(&mut TypeConfig)) -> PoolHandle {
    let mut t = demo_type(max_concurrent);
    tweak(&mut t);
    PoolBuilder::new(config(vec![("work", t)])).start().expect("pool starts")
}

/// A request for one of the demo worker's control ops.
pub fn op(op: &str, params: Value) -> TaskRequest {
    let mut data = json!({ "op": op });
    if let (Some(d), Value::Object(p)) = (data.as_object_mut(), params) {
        d.extend(p);
    }
    TaskRequest::new("work", data)
}

/// The pid the demo worker put in its result.
pub fn result_pid(record: &TaskRecord) -> u64 {
    record.result.as_ref().and_then(|r| r["pid"].as_u64()).expect("a pid in the result")
}

/// Whether a process is alive (a zombie counts as gone).
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; says which.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Polls `cond`, an async read (of the pool), every 10 ms until it holds or `limit` passes;
/// says which.
pub async fn wait_until_async<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond().await
}

/// Most updates a test follows on one task's watch.
const UPDATES: usize = 1_000;

/// Follows a task until it is reported running (its watch delivers each status change), and
/// returns its record then; fails the test if it ends first or `limit` passes.
pub async fn until_running(pool: &PoolHandle, id: &TaskId, limit: Duration) -> TaskRecord {
    let mut watch = pool.watch(id).await.expect("the task is known");
    let reported = async {
        for _ in 0..UPDATES {
            match watch.next().await {
                Some(TaskUpdate::Status(r)) if r.status == TaskStatus::Running => return Some(r),
                Some(TaskUpdate::Status(_) | TaskUpdate::Progress { .. }) => {}
                Some(TaskUpdate::Ended(_)) | None => return None,
            }
        }
        None
    };
    match tokio::time::timeout(limit, reported).await {
        Ok(Some(record)) => record,
        _ => panic!("task {id} was never reported running: {:?}", pool.lookup(id).await),
    }
}

/// Bounds a future in time, failing the test if it takes longer.
pub async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut).await.expect("finished in time")
}

/// Runs `f` (a read of the pool) to completion on a thread of its own, so that a synchronous
/// polling closure (`wait_until`) can use the async API.
pub fn on_thread<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(f())
    })
    .join()
    .expect("the reading thread")
}
