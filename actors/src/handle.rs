//! The public entry point: [`PoolBuilder`] → [`PoolBuilder::start`] → [`PoolHandle`].
//!
//! **API Boundary:** callers see the builder, the handle and [`TaskHandle`]; no actor address
//! leaves this crate. The handle is cheap to clone and usable from any thread or runtime.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use crate::config::{ExecutorKind, PoolConfig, TypeConfig};
use crate::error::{Error, ErrorKind, SubmitError};
use crate::events::{EventKind, EventReceiver};
use crate::executor::{HandlerFn, HandlerFuture, TaskContext, TaskError, typed_handler};
use crate::messages::*;
use crate::metrics::PoolMetrics;
use crate::monitor::probe::{GpuSource, NvmlSource, ResourceProbe, SysinfoProbe};
use crate::monitor::resource::{GpuStatus, ResourceSnapshot};
use crate::pool::TypePool;
use crate::remote::{InstanceInfo, Remote};
use crate::shared::Shared;
use crate::shared::StartFailures;
use crate::supervisor::{Plugins, Pools, Supervisor};
use crate::task::{Progress, TaskId, TaskRecord, TaskRequest, TaskStatus};

/// Builds and starts a pool.
///
/// # Examples
/// ```
/// use workerpool_actors::{PoolBuilder, PoolConfig, TaskRequest};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = PoolConfig::default();
/// config.types.clear();
/// let pool = PoolBuilder::new(config)
///     .handler("double", |ctx| async move {
///         let n = ctx.data().as_i64().unwrap_or(0);
///         Ok(serde_json::json!(n * 2))
///     })
///     .start()?;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let record = rt.block_on(pool.execute(TaskRequest::new("double", 21.into())))?;
/// assert_eq!(record.result, Some(42.into()));
/// rt.block_on(pool.shutdown());
/// # Ok(())
/// # }
/// ```
pub struct PoolBuilder {
    config: PoolConfig,
    handlers: HashMap<String, HandlerFn>,
    registry: Option<prometheus::Registry>,
    probe: Option<Box<dyn ResourceProbe>>,
    gpu: Option<Box<dyn GpuSource>>,
}

impl PoolBuilder {
    /// A builder for `config`.
    pub fn new(config: PoolConfig) -> PoolBuilder {
        PoolBuilder { config, handlers: HashMap::new(), registry: None, probe: None, gpu: None }
    }

    /// Runs the tasks of `task_type` in-process with an async handler. A type not in the
    /// configuration is added with default settings.
    pub fn handler<F, Fut>(mut self, task_type: impl Into<String>, f: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + 'static,
    {
        let handler: HandlerFn = Arc::new(move |ctx| Box::pin(f(ctx)) as HandlerFuture);
        self.handlers.insert(task_type.into(), handler);
        self
    }

    /// Like [`PoolBuilder::handler`], with the input decoded into `I` and the output encoded
    /// from `O` by serde; an input of the wrong shape fails the task without a retry.
    pub fn typed_handler<I, O, F, Fut>(mut self, task_type: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(I, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + 'static,
    {
        self.handlers.insert(task_type.into(), typed_handler(f));
        self
    }

    /// Registers the pool's `workerpool_*` metrics on `registry` (default: a private one).
    pub fn registry(mut self, registry: prometheus::Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Reads CPU and memory through `probe` (default: [`SysinfoProbe`]).
    pub fn resource_probe(mut self, probe: impl ResourceProbe) -> Self {
        self.probe = Some(Box::new(probe));
        self
    }

    /// Reads GPUs through `source` (default: [`NvmlSource`]).
    pub fn gpu_source(mut self, source: impl GpuSource) -> Self {
        self.gpu = Some(Box::new(source));
        self
    }

    /// Validates the configuration and starts the actor tree: on the current actix system if
    /// there is one, otherwise on a thread of its own that ends with [`PoolHandle::shutdown`].
    pub fn start(self) -> Result<PoolHandle, Error> {
        let PoolBuilder { mut config, handlers, registry, probe, gpu } = self;
        for name in handlers.keys() {
            let t = config.types.entry(name.clone()).or_insert_with(|| TypeConfig::defaults_for(name));
            t.executor = ExecutorKind::InProcess;
            t.command = None;
        }
        config.validate()?;
        for (name, t) in &config.types {
            match t.executor {
                ExecutorKind::Process if t.command.is_none() => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("types.{name}.command: expected the worker command for the process executor"),
                    ));
                }
                ExecutorKind::InProcess if !handlers.contains_key(name) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("types.{name}.executor: in-process, but no handler is registered for {name}"),
                    ));
                }
                _ => {}
            }
        }
        let registry = registry.unwrap_or_default();
        let metrics = PoolMetrics::new(&registry)
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot register the metrics: {e}")))?;
        let shared = Arc::new(Shared::new(&config, metrics));
        let probe: Box<dyn ResourceProbe> = match probe {
            Some(p) => p,
            None => Box::new(SysinfoProbe::new().ok_or_else(|| {
                Error::new(ErrorKind::Internal, "cannot read system resources on this platform")
            })?),
        };
        let mut gpu: Box<dyn GpuSource> = gpu.unwrap_or_else(|| Box::new(NvmlSource::new()));
        // GPU availability must be known before the first task is admitted.
        let first = gpu.sample();
        shared.set_resources(ResourceSnapshot {
            gpu: GpuStatus { available: first.available, reason: first.reason },
            ..ResourceSnapshot::default()
        });
        let intakes: BTreeMap<String, Arc<Intake>> =
            config.types.keys().map(|name| (name.clone(), Arc::new(Intake::default()))).collect();
        let plugins = Plugins { handlers, probe, gpu, intakes: intakes.clone() };
        let (supervisor, pools, system, remote) = if actix_rt::System::try_current().is_some() {
            let remote = connect(&config)?;
            let (s, p) = Supervisor::start_tree(&config, plugins, shared.clone());
            (s, p, None, remote)
        } else {
            start_on_own_thread(&config, plugins, shared.clone())?
        };
        let closing = std::sync::atomic::AtomicBool::new(false);
        let handle = PoolHandle {
            inner: Arc::new(Inner {
                closing,
                supervisor,
                pools,
                intakes,
                shared,
                config,
                system: system.clone(),
                remote: remote.clone(),
            }),
        };
        if let Some(remote) = remote {
            let bridge = crate::remote::bridge::start;
            let pool = handle.clone();
            match &system {
                Some(system) => system.arbiter().spawn(async move { bridge(remote, pool) }),
                None => actix_rt::Arbiter::current().spawn(async move { bridge(remote, pool) }),
            };
        }
        Ok(handle)
    }
}

/// The shared queues, when a Redis URL is configured (inside the tree's runtime).
fn connect(config: &PoolConfig) -> Result<Option<Arc<Remote>>, Error> {
    if config.redis.url.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Remote::new(config)?)))
}

type Tree = (Addr<Supervisor>, Pools, Option<actix_rt::System>, Option<Arc<Remote>>);

fn start_on_own_thread(config: &PoolConfig, plugins: Plugins, shared: Arc<Shared>) -> Result<Tree, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = config.clone();
    std::thread::Builder::new()
        .name("workerpool-tree".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            let started = system.block_on(async move {
                let remote = connect(&config)?;
                let (s, p) = Supervisor::start_tree(&config, plugins, shared);
                Ok::<_, Error>((s, p, actix_rt::System::current(), remote))
            });
            let failed = started.is_err();
            let _ = tx.send(started);
            if failed {
                return;
            }
            if let Err(e) = system.run() {
                log::error!("the workerpool system ended with an error: {e}");
            }
        })
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start the pool thread: {e}")))?;
    let (s, p, sys, remote) = rx
        .recv()
        .map_err(|_| Error::new(ErrorKind::Internal, "the pool thread ended before it started"))??;
    Ok((s, p, Some(sys), remote))
}

struct Inner {
    /// Set when `shutdown` begins: from then on the handle refuses work itself, handing
    /// requests back, instead of sending them to pools that are stopping.
    closing: std::sync::atomic::AtomicBool,
    supervisor: Addr<Supervisor>,
    pools: Pools,
    intakes: BTreeMap<String, Arc<Intake>>,
    shared: Arc<Shared>,
    config: PoolConfig,
    /// The shared queues in Redis, when configured: then tasks are queued, looked up,
    /// cancelled and listed there, and the bridge feeds the local pools.
    remote: Option<Arc<Remote>>,
    /// The system this handle started (and stops at shutdown), if it started one.
    system: Option<actix_rt::System>,
}

/// Figures of the whole pool (the contract's `/stats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PoolStats {
    /// Live workers.
    pub total: usize,
    /// Idle workers.
    pub available: usize,
    /// Busy workers.
    pub busy: usize,
    /// Tasks finished with a result.
    pub tasks_completed: u64,
    /// Tasks that ended without one.
    pub tasks_failed: u64,
    /// Mean run time of completed tasks.
    pub avg_task_ms: f64,
    /// Per type.
    pub by_type: BTreeMap<String, TypeStats>,
}

/// Scale by hand: add or remove `count` workers of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleAction {
    /// Start more workers.
    Up(usize),
    /// Retire workers (idle ones first; busy ones after their task).
    Down(usize),
}

/// A handle on a running pool; clone it freely.
#[derive(Clone)]
pub struct PoolHandle {
    inner: Arc<Inner>,
}

impl PoolHandle {
    fn pool(&self, task_type: &str) -> Result<&Addr<TypePool>, Error> {
        self.inner
            .pools
            .get(task_type)
            .ok_or_else(|| Error::new(ErrorKind::UnknownType, format!("unknown task type {task_type:?}")))
    }

    /// The pool's metrics (and their registry, for exposition).
    pub fn metrics(&self) -> &PoolMetrics {
        &self.inner.shared.metrics
    }

    /// The latest resource figures (system, worker processes, GPUs).
    pub fn resources(&self) -> ResourceSnapshot {
        self.inner.shared.resources()
    }

    /// Whether a type takes tasks now: the pool is not shutting down, the type exists, and
    /// when it needs a GPU, one is usable. With shared queues, Redis must answer, and a type
    /// this instance cannot run now is accepted while another live instance runs it.
    pub fn availability(&self, task_type: &str) -> Result<(), Error> {
        if self.inner.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        let Some(remote) = &self.inner.remote else { return self.serves_now(task_type) };
        if let Some(why) = remote.down() {
            return Err(Error::new(ErrorKind::Unavailable, format!("Redis unavailable: {why}")));
        }
        match self.serves_now(task_type) {
            Err(e) if e.kind() == ErrorKind::Unavailable && remote.served_elsewhere(task_type) => Ok(()),
            other => other,
        }
    }

    /// Whether this instance can run tasks of a type now (it exists; its workers can start; a
    /// GPU when needed).
    pub(crate) fn serves_now(&self, task_type: &str) -> Result<(), Error> {
        let t =
            self.inner.config.types.get(task_type).ok_or_else(|| {
                Error::new(ErrorKind::UnknownType, format!("unknown task type {task_type:?}"))
            })?;
        if let Some(f) = self.inner.shared.start_failures(task_type).filter(|f| f.gave_up) {
            return Err(Error::new(ErrorKind::Unavailable, f.reason));
        }
        if t.gpu_required {
            let gpu = self.inner.shared.gpu_status();
            if !gpu.available {
                let why = gpu.reason.unwrap_or_else(|| "no usable GPU".to_string());
                return Err(Error::new(ErrorKind::Unavailable, format!("{task_type} needs a GPU: {why}")));
            }
        }
        Ok(())
    }

    /// Workers of a type that failed to start, in a row, while that lasts: how many, whether
    /// the type gave up (then it takes no tasks), and why.
    pub fn start_failures(&self, task_type: &str) -> Option<StartFailures> {
        self.inner.shared.start_failures(task_type)
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Queues a task and returns at once with its id.
    pub async fn enqueue(&self, request: TaskRequest) -> Result<TaskId, SubmitError> {
        if let Some(remote) = &self.inner.remote {
            let id = TaskId::new();
            let queued = match self.availability(&request.task_type) {
                Ok(()) => remote.enqueue(&id, &request, false).await,
                Err(e) => Err(e),
            };
            return queued.map(|()| id).map_err(|e| SubmitError::new(e, request));
        }
        self.enqueue_with(TaskId::new(), request, None).await
    }

    /// Queues a task in Redis and waits for whichever instance runs it to end it.
    async fn execute_shared(&self, remote: &Remote, request: TaskRequest) -> Result<TaskRecord, Error> {
        self.availability(&request.task_type)?;
        let id = TaskId::new();
        // Watch before queueing, so a quick end cannot be missed.
        let rx = remote.watch(&id);
        if let Err(e) = remote.enqueue(&id, &request, true).await {
            remote.unwatch(&id);
            return Err(e);
        }
        remote.wait(&id, Some(rx)).await
    }

    async fn enqueue_with(
        &self,
        id: TaskId,
        request: TaskRequest,
        waiter: Option<Waiter>,
    ) -> Result<TaskId, SubmitError> {
        let pool = match self.availability(&request.task_type).and_then(|()| self.pool(&request.task_type)) {
            Ok(pool) => pool,
            Err(e) => return Err(SubmitError::new(e, request)),
        };
        if !pool.connected() {
            return Err(SubmitError::new(Error::stopped(), request));
        }
        match pool.send(Enqueue { id, request, waiter, prior_attempts: 0 }).await {
            Ok(result) => result,
            // The pool stopped between the check and the send; the request went with it.
            Err(_) => Err(SubmitError::new(Error::stopped(), TaskRequest::new("", Value::Null))),
        }
    }

    /// Queues a task and waits for it to end; the record says how (`status`), with the
    /// result or the error.
    pub async fn execute(&self, request: TaskRequest) -> Result<TaskRecord, Error> {
        if let Some(remote) = &self.inner.remote {
            return self.execute_shared(remote, request).await;
        }
        self.availability(&request.task_type)?;
        self.run_attempt(TaskId::new(), request, 0).await
    }

    /// Runs a task on this instance's pool under `id`, its attempts numbered on from
    /// `prior_attempts`, and waits for its final record. The bridge runs each attempt of a
    /// task from Redis this way.
    pub(crate) async fn run_attempt(
        &self,
        id: TaskId,
        request: TaskRequest,
        prior_attempts: u32,
    ) -> Result<TaskRecord, Error> {
        let pool = self.pool(&request.task_type)?;
        let (reply, rx) = oneshot::channel();
        // One answer: the final record, or the refusal. The call goes through the pool's
        // intake; only the first of a burst wakes the pool.
        let call = Execute { id, request, reply, prior_attempts };
        match self.inner.intakes.get(&call.request.task_type) {
            Some(intake) => match intake.push(call) {
                Ok(true) => match pool.try_send(DrainIntake) {
                    Ok(()) => {}
                    // The mailbox bound applies to `try_send` only; the wake-up must go.
                    Err(actix::prelude::SendError::Full(msg)) => pool.do_send(msg),
                    // The pool has stopped: drop the calls, which answers them "stopped".
                    Err(actix::prelude::SendError::Closed(_)) => intake.close(),
                },
                Ok(false) => {}
                Err(PoolGone) => return Err(Error::stopped()),
            },
            None => pool.do_send(call),
        }
        match rx.await {
            // Copied here, on the caller's thread, if the pool still keeps it.
            Ok(Ok(record)) => Ok(Arc::unwrap_or_clone(record)),
            Ok(Err(refused)) => Err(refused.into()),
            Err(_) => Err(Error::stopped()),
        }
    }

    /// Runs a task with a typed input and output; a task that does not complete is an error
    /// of kind [`ErrorKind::TaskFailed`] that carries its status and error.
    pub async fn execute_typed<I: Serialize, O: DeserializeOwned>(
        &self,
        task_type: &str,
        input: &I,
    ) -> Result<O, Error> {
        let data = serde_json::to_value(input)
            .map_err(|e| Error::new(ErrorKind::InvalidRequest, format!("cannot encode the input: {e}")))?;
        let record = self.execute(TaskRequest::new(task_type, data)).await?;
        if record.status != TaskStatus::Completed {
            return Err(Error::new(
                ErrorKind::TaskFailed,
                format!("task {} {}: {}", record.id, record.status, record.error.unwrap_or_default()),
            ));
        }
        O::deserialize(record.result.unwrap_or(Value::Null))
            .map_err(|e| Error::new(ErrorKind::Decode, format!("unexpected result of {task_type}: {e}")))
    }

    /// Queues a task and returns a [`TaskHandle`] to await it, follow its progress or cancel it.
    pub async fn submit(&self, request: TaskRequest) -> Result<TaskHandle, SubmitError> {
        let events = self.inner.shared.events.subscribe();
        let (tx, rx) = oneshot::channel();
        let task_type = request.task_type.clone();
        let id = match &self.inner.remote {
            Some(remote) => {
                let id = self.enqueue(request).await?;
                let (remote, watched) = (remote.clone(), id.clone());
                tokio::spawn(async move {
                    if let Ok(record) = remote.wait(&watched, None).await {
                        let _ = tx.send(Arc::new(record));
                    }
                });
                id
            }
            None => self.enqueue_with(TaskId::new(), request, Some(Waiter::Record(tx))).await?,
        };
        Ok(TaskHandle {
            id,
            task_type,
            result: rx,
            done: None,
            events,
            pool: self.clone(),
            last: None,
            next_look: tokio::time::Instant::now() + SHARED_LOOK,
        })
    }

    /// The record of a task this instance ran or queued, while it is kept here. With shared
    /// queues, [`PoolHandle::lookup`] reads any instance's tasks.
    pub fn task(&self, id: &TaskId) -> Option<TaskRecord> {
        self.inner.shared.store.get(id)
    }

    /// The record of a task: from Redis with shared queues, from this instance otherwise.
    pub async fn lookup(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let found = match &self.inner.remote {
            Some(remote) => remote.record(id).await?,
            None => self.task(id),
        };
        found.ok_or_else(|| Error::new(ErrorKind::UnknownTask, format!("no task {id}")))
    }

    /// Waits for a task (submitted by anyone) to end.
    pub async fn wait(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        if let Some(remote) = &self.inner.remote {
            return remote.wait(id, None).await;
        }
        let record =
            self.task(id).ok_or_else(|| Error::new(ErrorKind::UnknownTask, format!("no task {id}")))?;
        if record.status.is_final() {
            return Ok(record);
        }
        let (tx, rx) = oneshot::channel();
        if !self.pool(&record.task_type)?.send(Watch(id.clone(), tx)).await? {
            // It ended between the look-up and the watch.
            return self.task(id).ok_or_else(|| Error::new(ErrorKind::UnknownTask, format!("no task {id}")));
        }
        rx.await.map(Arc::unwrap_or_clone).map_err(|_| Error::stopped())
    }

    /// Cancels a waiting or running task (a running one's worker is killed and replaced),
    /// on whichever instance runs it.
    pub async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        match &self.inner.remote {
            Some(remote) => remote.cancel(id).await,
            None => self.cancel_local(id).await,
        }
    }

    /// Cancels a task of this instance's pools.
    pub(crate) async fn cancel_local(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let record =
            self.task(id).ok_or_else(|| Error::new(ErrorKind::UnknownTask, format!("no task {id}")))?;
        self.pool(&record.task_type)?.send(CancelTask(id.clone())).await?
    }

    /// Figures of every type and their sums.
    pub async fn stats(&self) -> Result<PoolStats, Error> {
        let asks: Vec<_> = self.inner.pools.iter().map(|(n, p)| (n, p.send(GetTypeStats))).collect();
        let mut stats = PoolStats::default();
        let mut busy_ms = 0.0;
        for (name, ask) in asks {
            let t = ask.await?;
            stats.total += t.total;
            stats.available += t.available;
            stats.busy += t.busy;
            stats.tasks_completed += t.tasks_completed;
            stats.tasks_failed += t.tasks_failed;
            busy_ms += t.avg_task_ms * t.tasks_completed as f64;
            stats.by_type.insert(name.clone(), t);
        }
        if stats.tasks_completed > 0 {
            stats.avg_task_ms = busy_ms / stats.tasks_completed as f64;
        }
        Ok(stats)
    }

    /// Like [`PoolHandle::stats`], with the waiting tasks counted in Redis when the queues
    /// are shared (and reachable).
    pub async fn shared_stats(&self) -> Result<PoolStats, Error> {
        let mut stats = self.stats().await?;
        if let Some(remote) = &self.inner.remote
            && let Ok(counts) = remote.queued_counts().await
        {
            for (name, queued) in counts {
                if let Some(t) = stats.by_type.get_mut(&name) {
                    t.queued = queued;
                }
                self.metrics().queue_length.with_label_values(&[name.as_str()]).set(queued as i64);
            }
        }
        Ok(stats)
    }

    /// The waiting tasks of a type, in queue order (at most `limit` listed).
    pub async fn queue(&self, task_type: &str, limit: usize) -> Result<QueueInfo, Error> {
        let pool = self.pool(task_type)?;
        match &self.inner.remote {
            Some(remote) => remote.queue(task_type, limit).await,
            None => Ok(pool.send(GetQueue { limit }).await?),
        }
    }

    /// With shared queues: the live instances (`None` without Redis).
    pub fn instances(&self) -> Option<Vec<InstanceInfo>> {
        self.inner.remote.as_ref().map(|r| r.instances())
    }

    /// With shared queues: `Err` with the reason while Redis does not answer.
    pub fn redis_status(&self) -> Option<Result<(), String>> {
        self.inner.remote.as_ref().map(|r| r.down().map_or(Ok(()), Err))
    }

    /// With shared queues: how many results were dropped because their attempt had lost its
    /// lease, counted over every instance.
    pub async fn stale_results(&self) -> Result<u64, Error> {
        match &self.inner.remote {
            Some(remote) => remote.stale_results_total().await,
            None => Ok(0),
        }
    }

    /// Every worker of every type.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let asks: Vec<_> = self.inner.pools.values().map(|p| p.send(GetWorkers)).collect();
        let mut all = Vec::new();
        for ask in asks {
            all.extend(ask.await?);
        }
        Ok(all)
    }

    /// The dead-letter list of a type, oldest first.
    pub async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        let pool = self.pool(task_type)?;
        match &self.inner.remote {
            Some(remote) => remote.dead_letters(task_type).await,
            None => Ok(pool.send(GetDeadLetters).await?),
        }
    }

    /// Queues a dead-lettered task again, with fresh attempts and the same id.
    pub async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        if let Some(remote) = &self.inner.remote {
            return remote.requeue(id).await;
        }
        let record =
            self.task(id).ok_or_else(|| Error::new(ErrorKind::UnknownTask, format!("no task {id}")))?;
        self.pool(&record.task_type)?.send(Requeue(id.clone())).await?
    }

    /// Scales a type by hand, within `max_concurrent`, `max_workers` and `min_workers`;
    /// returns the number of workers it will have.
    pub async fn scale(&self, task_type: &str, action: ScaleAction) -> Result<usize, Error> {
        let msg = match action {
            ScaleAction::Up(count) => Scale { up: true, count },
            ScaleAction::Down(count) => Scale { up: false, count },
        };
        self.pool(task_type)?.send(msg).await?
    }

    /// Replaces one worker with a fresh one; its running task is queued again without
    /// spending an attempt.
    pub async fn restart_worker(&self, worker_id: &str) -> Result<(), Error> {
        let task_type = worker_id
            .rsplit_once('-')
            .map(|(t, _)| t)
            .ok_or_else(|| Error::new(ErrorKind::UnknownWorker, format!("no worker {worker_id:?}")))?;
        let pool = self
            .pool(task_type)
            .map_err(|_| Error::new(ErrorKind::UnknownWorker, format!("no worker {worker_id:?}")))?;
        pool.send(RestartWorker(worker_id.to_string())).await?
    }

    /// Tells every subscriber of this instance's events (the bridge's own events).
    pub(crate) fn emit(&self, kind: EventKind) {
        self.inner.shared.events.emit(|| kind);
    }

    /// A new subscription to every pool event from now on.
    pub fn subscribe(&self) -> EventReceiver {
        self.inner.shared.events.subscribe()
    }

    /// Graceful shutdown (contract §2): takes no more tasks, fails waiting ones with reason
    /// `shutdown`, lets running ones finish for up to `graceful_shutdown_timeout_ms`, then
    /// fails the rest with reason `shutdown`, and returns once every worker has exited.
    /// A pool that started its own thread stops it. Calling it again returns at once.
    ///
    /// With shared queues, no more tasks are taken from Redis, and what the drain would fail
    /// goes back to the head of its queue instead, without spending an attempt.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.inner.closing.store(true, std::sync::atomic::Ordering::Release);
        if let Some(remote) = &self.inner.remote {
            remote.stop_taking();
        }
        let report = self.inner.supervisor.send(Shutdown).await.unwrap_or_default();
        if let Some(remote) = &self.inner.remote {
            remote.release().await;
        }
        if let Some(system) = &self.inner.system {
            system.stop();
        }
        report
    }
}

/// A submitted task: await its record, follow its progress, or cancel it.
pub struct TaskHandle {
    id: TaskId,
    task_type: String,
    result: oneshot::Receiver<Arc<TaskRecord>>,
    done: Option<Arc<TaskRecord>>,
    events: EventReceiver,
    pool: PoolHandle,
    /// The progress last returned.
    last: Option<Progress>,
    /// With shared queues: when [`TaskHandle::progress`] next reads the task's record.
    next_look: tokio::time::Instant,
}

/// With shared queues, how often [`TaskHandle::progress`] reads the record of a task that
/// may run on another instance (whose events do not come here).
const SHARED_LOOK: Duration = Duration::from_secs(1);

impl TaskHandle {
    /// The task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The task's type.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }

    /// The next progress report of the task; `None` once it has ended. With shared queues,
    /// the progress of a task that runs on another instance is read from its record every
    /// second (reports in between are not seen).
    pub async fn progress(&mut self) -> Option<Progress> {
        let shared = self.pool.inner.remote.is_some();
        loop {
            if self.done.is_some() {
                return None;
            }
            tokio::select! {
                biased;
                event = self.events.recv() => match event {
                    Ok(e) if e.kind.task_id() == Some(self.id.as_str()) => {
                        if let EventKind::TaskProgress { progress, stage, .. } = e.kind {
                            return Some(self.report(Progress { progress, stage }));
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                record = &mut self.result => {
                    self.done = Some(record.ok()?);
                }
                _ = tokio::time::sleep_until(self.next_look), if shared => {
                    self.next_look = tokio::time::Instant::now() + SHARED_LOOK;
                    if let Ok(record) = self.pool.lookup(&self.id).await
                        && let Some(progress) = record.progress
                        && self.last.as_ref() != Some(&progress)
                    {
                        return Some(self.report(progress));
                    }
                }
            }
        }
    }

    /// Notes a progress report as the last one returned.
    fn report(&mut self, progress: Progress) -> Progress {
        self.last = Some(progress.clone());
        progress
    }

    /// Waits for the task to end.
    pub async fn wait(self) -> Result<TaskRecord, Error> {
        match self.done {
            Some(record) => Ok(Arc::unwrap_or_clone(record)),
            None => self.result.await.map(Arc::unwrap_or_clone).map_err(|_| Error::stopped()),
        }
    }

    /// Cancels the task.
    pub async fn cancel(&self) -> Result<TaskRecord, Error> {
        self.pool.cancel(&self.id).await
    }
}
