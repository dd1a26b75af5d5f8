//! The channel, library, process and Redis cases: each builds what it measures, runs it
//! through [`drive`] and tears it down. The HTTP cases live in `http/`, the monitor cases in
//! `monitors/`.
//!
//! Every client runs on a current-thread tokio runtime on the calling thread; what serves it
//! (the bare channel's server task, the pool's actors) runs on a thread of its own, so each
//! request crosses threads both ways, as it does for any user of the library.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::LocalSet;
use workerpool_actors::{
    ExecutorKind, PoolBuilder, PoolConfig, PoolHandle, TaskRecord, TaskRequest, TaskStatus, TypeConfig,
};

use super::args::BenchArgs;
use super::case::Case;
use super::driver::{client_runtime, current_exe, drive, warm_then_measure};
use super::report::{CaseResult, Unit};

/// The bounded channel's capacity in `channel-roundtrip` (as in the peers' tokio benchmark).
const CHANNEL_CAPACITY: usize = 1024;
/// Most tasks of the warm-up run of the windowed cases (like Piscina's 5,000).
const WARMUP_TASKS: u64 = 5_000;
/// Most tasks of the warm-up run of `spawn-per-task`.
const SPAWN_WARMUP_TASKS: u64 = 50;
/// Processes in flight in `spawn-per-task`: one per core of the 2-core machine.
const SPAWN_IN_FLIGHT: usize = 2;
/// Process workers in `process-noop`.
const PROCESS_WORKERS: usize = 2;
/// The one task line `spawn-per-task` hands each fresh process.
const SPAWN_TASK_LINE: &[u8] = b"{\"id\":\"t\",\"type\":\"noop\",\"data\":{\"op\":\"echo\"},\"attempt\":1}\n";
/// The type the pool cases register.
const NOOP: &str = "noop";

/// The task input of the windowed cases.
fn payload(i: u64) -> Value {
    json!({ "i": i })
}

// ===== channel-roundtrip =====

type Request = (Value, oneshot::Sender<Value>);

pub(super) fn channel_roundtrip(args: &BenchArgs) -> anyhow::Result<CaseResult> {
    let (tx, mut rx) = mpsc::channel::<Request>(CHANNEL_CAPACITY);
    let server_rt = client_runtime()?;
    let server = std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            server_rt.block_on(async move {
                while let Some((payload, reply)) = rx.recv().await {
                    let _ = reply.send(payload);
                }
            })
        })
        .context("cannot start the server thread")?;
    let rt = client_runtime()?;
    let warmup = args.tasks.min(WARMUP_TASKS);
    let client_tx = tx.clone();
    let runs = LocalSet::new().block_on(
        &rt,
        warm_then_measure(warmup, args.tasks, args.runs, move |n| {
            let tx = client_tx.clone();
            drive(n, args.window, move |i| {
                let tx = tx.clone();
                async move {
                    let (reply_tx, reply_rx) = oneshot::channel();
                    tx.send((payload(i), reply_tx)).await.map_err(|_| "the server has gone".to_string())?;
                    let echoed = reply_rx.await.map_err(|_| "the server dropped the request".to_string())?;
                    if echoed["i"] == i { Ok(()) } else { Err(format!("unexpected answer {echoed}")) }
                }
            })
        }),
    );
    // The last sender gone, the server's loop ends.
    drop(tx);
    if server.join().is_err() {
        bail!("the server thread panicked");
    }
    Ok(CaseResult {
        case: Case::ChannelRoundtrip.name(),
        unit: Unit::Tasks,
        runs: runs?,
        window: args.window,
        details: format!(
            "warmup={warmup} client=current-thread server=own-thread(current-thread) \
             mpsc-cap={CHANNEL_CAPACITY} payload=json"
        ),
    })
}

// ===== the pool cases =====

pub(super) fn inproc_noop(args: &BenchArgs) -> anyhow::Result<CaseResult> {
    let mut config = PoolConfig::default();
    config.types.clear();
    let mut t = TypeConfig::defaults_for(NOOP);
    t.executor = ExecutorKind::InProcess;
    t.max_concurrent = args.inproc_slots;
    t.queue_size = args.window;
    config.max_workers = args.inproc_slots;
    config.min_workers = args.inproc_slots;
    config.types.insert(NOOP.into(), t);
    let pool = PoolBuilder::new(config)
        .handler(NOOP, |ctx| async move { Ok(ctx.data().clone()) })
        .start()
        .context("cannot start the in-process pool")?;
    let details =
        format!("client=current-thread pool=own-thread slots={} handler=returns-input", args.inproc_slots);
    measure_pool(Case::InprocNoop, &[pool], args.tasks, args, payload, |result, i| result["i"] == i, details)
}

/// The prefetch window of `process-noop-prefetch`.
pub(super) const PREFETCH: usize = 8;

pub(super) fn process_noop(args: &BenchArgs, prefetch: usize) -> anyhow::Result<CaseResult> {
    let config = process_config(prefetch, args.window)?;
    let pool = PoolBuilder::new(config).start().context("cannot start the process pool")?;
    let details = format!(
        "client=current-thread pool=own-thread workers={PROCESS_WORKERS} prefetch={prefetch} worker=demo-worker op=echo"
    );
    let case = if prefetch == 0 { Case::ProcessNoop } else { Case::ProcessNoopPrefetch };
    measure_pool(
        case,
        &[pool],
        args.tasks,
        args,
        |i| json!({ "op": "echo", "i": i }),
        |result, i| result["echo"]["i"] == i,
        details,
    )
}

/// Two `demo-worker` processes serving type `noop`.
fn process_config(prefetch: usize, queue_size: usize) -> anyhow::Result<PoolConfig> {
    let exe = current_exe()?;
    let mut config = PoolConfig::default();
    config.types.clear();
    let mut t = TypeConfig::defaults_for(NOOP);
    t.executor = ExecutorKind::Process;
    t.command = Some(vec![exe.to_string_lossy().into_owned(), "demo-worker".into()]);
    t.max_concurrent = PROCESS_WORKERS;
    t.min_workers = PROCESS_WORKERS;
    t.queue_size = queue_size;
    t.prefetch = prefetch;
    config.max_workers = PROCESS_WORKERS;
    config.min_workers = PROCESS_WORKERS;
    config.types.insert(NOOP.into(), t);
    Ok(config)
}

// ===== redis-noop =====

/// The key prefix of the Redis cases: their keys are cleared before each run.
const REDIS_PREFIX: &str = "workerpool-bench";
/// Tasks each instance of the Redis cases takes beyond its two free workers.
const REDIS_TAKE_AHEAD: usize = 512;

pub(super) fn redis_noop(args: &BenchArgs, instances: usize) -> anyhow::Result<CaseResult> {
    let url = args.redis.clone().context("the redis-* cases need --redis URL")?;
    let mut pools = Vec::new();
    for n in 1..=instances {
        let mut config = process_config(PREFETCH, usize::try_from(args.redis_tasks).unwrap_or(usize::MAX))?;
        config.redis.url = Some(url.as_str().into());
        config.redis.prefix = REDIS_PREFIX.into();
        config.redis.instance_id = format!("bench-{n}");
        config.redis.take_ahead = REDIS_TAKE_AHEAD;
        pools.push(PoolBuilder::new(config).start().context("cannot start the pool")?);
    }
    let details = format!(
        "client=current-thread instances={instances} workers-per-instance={PROCESS_WORKERS} prefetch={PREFETCH} take_ahead={REDIS_TAKE_AHEAD} worker=demo-worker op=echo prefix={{{REDIS_PREFIX}}}"
    );
    let case = if instances == 1 { Case::RedisNoop } else { Case::RedisNoop2i };
    measure_pool(
        case,
        &pools,
        args.redis_tasks,
        args,
        |i| json!({ "op": "echo", "i": i }),
        |result, i| result["echo"]["i"] == i,
        details,
    )
}

/// Removes every key under the bench prefix, so each run starts from an empty Redis.
async fn clear_bench_keys(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url).context("--redis")?;
    let mut conn = client.get_multiplexed_async_connection().await.context("cannot connect to Redis")?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{REDIS_PREFIX}}}:*"))
        .query_async(&mut conn)
        .await
        .context("KEYS")?;
    for chunk in keys.chunks(1000) {
        redis::cmd("UNLINK").arg(chunk).query_async::<()>(&mut conn).await.context("UNLINK")?;
    }
    Ok(())
}

/// Drives the first pool's type `noop` with `data(i)` as the input of task `i` (`tasks` per
/// measured run), checks each result with `expect`, then shuts every pool down, whatever the
/// runs did. With `--redis`, the bench keys are cleared before each run.
fn measure_pool(
    case: Case,
    pools: &[PoolHandle],
    tasks: u64,
    args: &BenchArgs,
    data: fn(u64) -> Value,
    expect: fn(&Value, u64) -> bool,
    details: String,
) -> anyhow::Result<CaseResult> {
    let rt = client_runtime()?;
    let warmup = tasks.min(WARMUP_TASKS);
    let pool = pools.first().context("no pool to measure")?.clone();
    let redis = args.redis.clone().filter(|_| matches!(case, Case::RedisNoop | Case::RedisNoop2i));
    let (runs, stats) = LocalSet::new().block_on(&rt, async {
        let client = pool.clone();
        let runs = warm_then_measure(warmup, tasks, args.runs, move |n| {
            let pool = client.clone();
            let redis = redis.clone();
            async move {
                if let Some(url) = &redis {
                    clear_bench_keys(url).await?;
                }
                drive(n, args.window, move |i| {
                    let pool = pool.clone();
                    async move {
                        let record =
                            pool.execute(TaskRequest::new(NOOP, data(i))).await.map_err(|e| e.to_string())?;
                        check(record, |result| expect(result, i))
                    }
                })
                .await
            }
        })
        .await;
        let stats = pool.stats().await;
        for pool in pools {
            pool.shutdown().await;
        }
        (runs, stats)
    });
    let runs = runs?;
    let stats = stats.context("cannot read the pool's figures")?;
    if stats.tasks_failed > 0 {
        bail!("the pool counted {} failed tasks", stats.tasks_failed);
    }
    let workers = stats.by_type.get(NOOP).map_or(0, |t| t.total);
    Ok(CaseResult {
        case: case.name(),
        unit: Unit::Tasks,
        runs,
        window: args.window,
        details: format!("warmup={warmup} {details} live-workers={workers}"),
    })
}

/// A task that completed with a result `expect` accepts is fine; anything else is its failure.
fn check(record: TaskRecord, expect: impl FnOnce(&Value) -> bool) -> Result<(), String> {
    if record.status != TaskStatus::Completed {
        return Err(format!("{}: {}", record.status, record.error.unwrap_or_default()));
    }
    match &record.result {
        Some(result) if expect(result) => Ok(()),
        other => Err(format!("unexpected result {other:?}")),
    }
}

// ===== spawn-per-task =====

pub(super) fn spawn_per_task(args: &BenchArgs) -> anyhow::Result<CaseResult> {
    let exe = current_exe()?;
    let rt = client_runtime()?;
    let tasks = args.spawn_tasks;
    let warmup = tasks.min(SPAWN_WARMUP_TASKS);
    let runs = LocalSet::new().block_on(
        &rt,
        warm_then_measure(warmup, tasks, args.runs, |n| {
            let exe = exe.clone();
            drive(n, SPAWN_IN_FLIGHT, move |_| {
                let exe = exe.clone();
                async move { spawn_one(&exe).await }
            })
        }),
    )?;
    Ok(CaseResult {
        case: Case::SpawnPerTask.name(),
        unit: Unit::Tasks,
        runs,
        window: SPAWN_IN_FLIGHT,
        details: format!("warmup={warmup} client=current-thread worker=demo-worker latency=spawn-to-exit"),
    })
}

/// One task in a fresh demo worker: spawn, write the task line, read the answer, close its
/// input and wait for it to exit.
async fn spawn_one(exe: &Path) -> Result<(), String> {
    let mut child = tokio::process::Command::new(exe)
        .arg("demo-worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the worker's pipes were not opened".into());
    };
    stdin.write_all(SPAWN_TASK_LINE).await.map_err(|e| format!("cannot write the task: {e}"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.map_err(|e| format!("cannot read the answer: {e}"))?;
    drop(stdin);
    let status = child.wait().await.map_err(|e| format!("cannot wait for the worker: {e}"))?;
    let answer: Value =
        serde_json::from_str(&line).map_err(|e| format!("unexpected answer {:?}: {e}", line.trim_end()))?;
    if answer["id"] != "t" || answer.get("result").is_none() {
        return Err(format!("unexpected answer {answer}"));
    }
    if !status.success() {
        return Err(format!("the worker ended with {status}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: TaskStatus, result: Option<Value>, error: Option<&str>) -> TaskRecord {
        let mut r: TaskRecord = serde_json::from_value(json!({
            "id": "t", "type": NOOP, "status": "queued", "priority": 0, "attempts": 1,
            "max_retries": 0, "created_at": 0, "started_at": null, "finished_at": null,
            "progress": null, "result": null, "error": null, "worker_id": null, "worker_pid": null
        }))
        .unwrap();
        r.status = status;
        r.result = result;
        r.error = error.map(String::from);
        r
    }

    #[test]
    fn check_accepts_only_completed_tasks_with_the_expected_result() {
        assert!(check(record(TaskStatus::Completed, Some(payload(3)), None), |r| r["i"] == 3).is_ok());
        let wrong = check(record(TaskStatus::Completed, Some(payload(4)), None), |r| r["i"] == 3);
        assert!(wrong.unwrap_err().starts_with("unexpected result"));
        let failed = check(record(TaskStatus::Dead, None, Some("boom")), |_| true);
        assert_eq!(failed.unwrap_err(), "dead: boom");
    }
}
