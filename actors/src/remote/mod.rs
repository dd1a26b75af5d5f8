//! Queues shared through Redis (contract §2): with a Redis URL configured, the queues, task
//! records, retries and dead letters of every type live in Redis, and each instance's
//! [`bridge`] takes tasks from there into its own pools when they have room.
//!
//! [`Remote`] is what a `PoolHandle` calls instead of its local pools: enqueue, wait, look
//! up, cancel, requeue, list. Every change to the shared state is one Lua script
//! ([`scripts`]), so no task is taken twice or dropped between two commands.

mod batch;
pub(crate) mod bridge;
mod link;
mod outcome;
mod publisher;
mod scripts;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use crate::config::{PoolConfig, RedisConfig};
use crate::error::{Error, ErrorKind};
use crate::messages::{QueueInfo, QueuedTask};
use crate::task::{Progress, TaskId, TaskRecord, TaskRequest, TaskStatus, now_ms};
use batch::Batcher;
use link::Link;

/// The names of every key and channel, all under one `{prefix}` hash tag.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys { base: format!("{{{prefix}}}") }
    }
    fn task(&self, id: &str) -> String {
        format!("{}:t:{id}", self.base)
    }
    /// Set when a queueing whose reply was lost is settled as not done: a late write of the
    /// task finds it and queues nothing.
    fn fenced(&self, id: &str) -> String {
        format!("{}:fenced:{id}", self.base)
    }
    fn task_prefix(&self) -> String {
        format!("{}:t:", self.base)
    }
    fn queue(&self, task_type: &str) -> String {
        format!("{}:q:{task_type}", self.base)
    }
    fn delayed(&self, task_type: &str) -> String {
        format!("{}:delayed:{task_type}", self.base)
    }
    fn dead(&self, task_type: &str) -> String {
        format!("{}:dead:{task_type}", self.base)
    }
    fn leases(&self) -> String {
        format!("{}:leases", self.base)
    }
    fn stats(&self) -> String {
        format!("{}:stats", self.base)
    }
    fn instances(&self) -> String {
        format!("{}:instances", self.base)
    }
    fn instance(&self, id: &str) -> String {
        format!("{}:instance:{id}", self.base)
    }
    /// Told the type of a task that became ready, so idle instances take it at once.
    pub(crate) fn wake_channel(&self) -> String {
        format!("{}:wake", self.base)
    }
    /// Told the id of each task that ended, so its waiters on any instance read it.
    pub(crate) fn done_channel(&self) -> String {
        format!("{}:done", self.base)
    }
    /// Told the id of a running task that was cancelled, so its instance stops it.
    pub(crate) fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.base)
    }
}

/// The longest that health and stats wait for Redis to count the queues.
const QUICK_READ: Duration = Duration::from_millis(150);

/// The contract's channel of pool events.
pub(crate) const EVENTS_CHANNEL: &str = "worker_pool_events";
/// The contract's channel of task progress.
pub(crate) const PROGRESS_CHANNEL: &str = "task_progress";

/// One live instance, as it last described itself.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct InstanceInfo {
    /// Its `INSTANCE_ID`.
    pub instance_id: String,
    /// Its last heartbeat (Unix milliseconds).
    pub heartbeat_at: u64,
    /// When it started.
    pub started_at: u64,
    /// The types it takes tasks of now.
    pub types: Vec<String>,
    /// Its live workers.
    pub workers: usize,
    /// Its workers running a task.
    pub busy: usize,
    /// Tasks it holds now.
    pub running: usize,
}

/// The connection to the shared queues, and what this instance knows of them.
pub(crate) struct Remote {
    pub(crate) keys: Keys,
    pub(crate) cfg: RedisConfig,
    client: redis::Client,
    conn: ConnectionManager,
    /// Per type: its queue limit, default retries and timeout.
    limits: BTreeMap<String, (usize, u32, u64)>,
    /// Callers waiting for tasks to end: `Some(record)` when this instance ended it itself,
    /// `None` when they must read it.
    waiters: Mutex<FxHashMap<TaskId, Vec<oneshot::Sender<Option<TaskRecord>>>>>,
    /// Whether Redis answers: the one state that health, admission and the loops read.
    pub(crate) link: Link,
    /// The waiting tasks per type at the last count, for when Redis cannot count them now.
    counted: Mutex<BTreeMap<String, usize>>,
    /// Per type: rung when a task of the type may be ready.
    pub(crate) wakes: BTreeMap<String, Notify>,
    /// Live instances at the last heartbeat.
    instances: Mutex<Vec<InstanceInfo>>,
    /// Tasks this instance holds: id → attempt.
    pub(crate) held: Mutex<FxHashMap<TaskId, u32>>,
    /// Set at shutdown: no more tasks are taken.
    pub(crate) stopping: AtomicBool,
    /// TAKE calls on their way (their tasks are not in `held` yet).
    pub(crate) taking: std::sync::atomic::AtomicUsize,
    /// Held shared by TAKE calls until their tasks are in `held`, and alone by a reconcile.
    pub(crate) take_gate: tokio::sync::RwLock<()>,
    /// Orders the queue members this instance makes within one millisecond.
    member_counter: AtomicU64,
    /// Whether anyone listens on the events / progress channels (read at each heartbeat):
    /// events nobody would receive are not serialised and sent.
    pub(crate) events_wanted: AtomicBool,
    pub(crate) progress_wanted: AtomicBool,
    pub(crate) started_at: u64,
    record_ttl_ms: u64,
    /// `finish` calls waiting for the next batch.
    finishing: Batcher<10>,
    /// `enqueue` calls waiting for the next batch.
    enqueuing: Batcher<10>,
    scripts: Scripts,
}

struct Scripts {
    enqueue: redis::Script,
    take: redis::Script,
    finish: redis::Script,
    renew: redis::Script,
    reap: redis::Script,
    cancel: redis::Script,
    requeue: redis::Script,
    announce: redis::Script,
    reconcile: redis::Script,
    progress: redis::Script,
    resolve: redis::Script,
}

/// A task taken from the shared queue, with its lease.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) id: TaskId,
    pub(crate) data: Value,
    pub(crate) priority: i32,
    pub(crate) max_retries: u32,
    pub(crate) timeout: u64,
    pub(crate) attempt: u32,
    pub(crate) created_at: u64,
}

/// How an attempt ends, as written to Redis.
#[derive(Debug)]
pub(crate) enum Finish {
    /// A final status, with the record to answer local waiters.
    Final(TaskRecord),
    /// Queued again after its backoff (timed by the Redis server's clock), keeping its
    /// attempt count.
    Retry { record: TaskRecord, backoff_ms: u64 },
    /// Back at the head of its queue without spending the attempt (shutdown).
    Requeue,
}

/// What [`Remote::finish`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    Recorded,
    Cancelled,
    Stale,
    Gone,
}

fn unavailable(e: &redis::RedisError) -> Error {
    Error::new(ErrorKind::Unavailable, format!("Redis unavailable: {e}"))
}

impl Remote {
    /// A client for `cfg.url`; nothing is connected until the first command. Must run
    /// inside a tokio runtime (the connection's driver is spawned there).
    pub(crate) fn new(config: &PoolConfig) -> Result<Remote, Error> {
        let cfg = config.redis.clone();
        let client = client_for(&cfg)?;
        let command_timeout = Duration::from_millis(cfg.command_timeout_ms);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(command_timeout))
            .set_response_timeout(Some(command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| Error::new(ErrorKind::Config, format!("redis.url: {e}")))?;
        let limits = config
            .types
            .iter()
            .map(|(name, t)| (name.clone(), (t.queue_size, t.max_retries, t.timeout_ms)))
            .collect();
        let wakes = config.types.keys().map(|name| (name.clone(), Notify::new())).collect();
        Ok(Remote {
            keys: Keys::new(&cfg.prefix),
            cfg,
            client,
            conn,
            limits,
            waiters: Mutex::default(),
            link: Link::new(),
            counted: Mutex::default(),
            wakes,
            instances: Mutex::default(),
            held: Mutex::default(),
            stopping: AtomicBool::new(false),
            taking: std::sync::atomic::AtomicUsize::new(0),
            take_gate: tokio::sync::RwLock::new(()),
            member_counter: AtomicU64::new(0),
            events_wanted: AtomicBool::new(true),
            progress_wanted: AtomicBool::new(true),
            started_at: now_ms(),
            record_ttl_ms: config.record_ttl_ms,
            finishing: Batcher::default(),
            enqueuing: Batcher::default(),
            scripts: Scripts {
                enqueue: redis::Script::new(scripts::ENQUEUE),
                take: redis::Script::new(scripts::TAKE),
                finish: redis::Script::new(scripts::FINISH),
                renew: redis::Script::new(scripts::RENEW),
                reap: redis::Script::new(scripts::REAP),
                cancel: redis::Script::new(scripts::CANCEL),
                requeue: redis::Script::new(scripts::REQUEUE),
                announce: redis::Script::new(scripts::ANNOUNCE),
                reconcile: redis::Script::new(scripts::RECONCILE),
                progress: redis::Script::new(scripts::PROGRESS),
                resolve: redis::Script::new(scripts::RESOLVE),
            },
        })
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The connection, unless Redis is known to be down: then the command is refused at once
    /// and nothing is sent. The heartbeat's probe alone goes through ([`Remote::conn`]).
    fn gated(&self) -> Result<ConnectionManager, Error> {
        self.link.check()?;
        Ok(self.conn())
    }

    /// Notes how a command went in the link's state: Redis answered, or is down.
    pub(crate) fn observe<T>(&self, result: redis::RedisResult<T>) -> Result<T, Error> {
        match result {
            Ok(v) => {
                self.link.answered();
                Ok(v)
            }
            // Unreachable, or refusing this client (a wrong password): Redis is down for us.
            Err(e)
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error() =>
            {
                self.link.failed(e.to_string());
                Err(unavailable(&e))
            }
            // One command refused (still loading, out of memory, a script error on odd data):
            // not the caller's fault, and not a sign that Redis is gone.
            Err(e) => {
                log::warn!("Redis refused a command: {e}");
                Err(Error::new(ErrorKind::Unavailable, format!("Redis refused the command: {e}")))
            }
        }
    }

    /// As [`Remote::observe`], for a write: a failure after which the write may have been
    /// done is [`ErrorKind::OutcomeUnknown`] (see [`outcome`]).
    fn observe_write<T>(&self, result: redis::RedisResult<T>) -> Result<T, Error> {
        let fate = result.as_ref().err().map(outcome::fate_of);
        self.observe(result).map_err(|e| match fate {
            Some(outcome::Fate::Unknown) => Error::new(ErrorKind::OutcomeUnknown, e.message()),
            _ => e,
        })
    }

    /// `None` while Redis answers (or before it was first asked); why not otherwise.
    pub(crate) fn down(&self) -> Option<String> {
        self.link.down()
    }

    /// Live instances at the last heartbeat.
    pub(crate) fn instances(&self) -> Vec<InstanceInfo> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether some live instance other than this one takes tasks of `task_type`.
    pub(crate) fn served_elsewhere(&self, task_type: &str) -> bool {
        self.instances()
            .iter()
            .any(|i| i.instance_id != self.cfg.instance_id && i.types.iter().any(|t| t == task_type))
    }

    // ===== producers =====

    /// Queues a task in Redis under `id`; `watched` when this instance waits for its end.
    /// Calls made while a batch is on its way to Redis go together in the next one.
    pub(crate) async fn enqueue(
        &self,
        id: &TaskId,
        request: &TaskRequest,
        watched: bool,
    ) -> Result<(), Error> {
        let task_type = &request.task_type;
        let &(limit, max_retries, timeout) = self
            .limits
            .get(task_type)
            .ok_or_else(|| Error::new(ErrorKind::UnknownType, format!("unknown task type {task_type:?}")))?;
        let o = &request.options;
        let delay = o.delay.unwrap_or(0);
        let data = serde_json::to_string(&request.data)
            .map_err(|e| Error::new(ErrorKind::InvalidRequest, format!("data: {e}")))?;
        let args = [
            id.as_str().to_string(),
            task_type.clone(),
            data,
            o.priority.unwrap_or(0).to_string(),
            o.max_retries.unwrap_or(max_retries).to_string(),
            o.timeout.unwrap_or(timeout).to_string(),
            delay.to_string(),
            limit.to_string(),
            if watched { self.cfg.instance_id.clone() } else { String::new() },
            self.member(id),
        ];
        // Before anything was heard from Redis (just started), ask it first: a server that
        // cannot be reached or refuses this client is then refused before anything is sent.
        if !self.link.known() {
            self.ping().await?;
        }
        match self.enqueuing.call(args).await {
            Ok(1) => Ok(()),
            Ok(-1) => Err(Error::new(
                ErrorKind::QueueFull,
                format!("the queue of {task_type} is full ({limit} tasks)"),
            )),
            Ok(_) => {
                Err(Error::new(ErrorKind::Unavailable, format!("task {id} was not queued")).with_task(id))
            }
            Err(e) if e.kind() == ErrorKind::OutcomeUnknown => self.settle(id, &e).await,
            Err(e) => Err(e),
        }
    }

    /// Sends the waiting `enqueue` calls in batches, one script call each; runs until the
    /// instance stops.
    pub(crate) async fn enqueue_batches(&self) {
        self.enqueuing
            .run(|batch| async move {
                let mut call = self.scripts.enqueue.key(self.keys.stats());
                call.arg(&self.keys.base).arg(now_ms()).arg(self.keys.wake_channel());
                for args in &batch {
                    call.arg(&args[..]);
                }
                self.observe_write(call.invoke_async(&mut self.gated()?).await)
            })
            .await;
    }

    /// A task's member in its queue, less the millisecond the script puts in front (by the
    /// Redis server's clock): a counter of this instance and the id, so equal priorities run
    /// in submission order (across instances, to the millisecond).
    fn member(&self, id: &TaskId) -> String {
        let n = self.member_counter.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        format!("{n:06}:{id}")
    }

    /// Registers a waiter for `id` (before it is queued, so its end cannot be missed).
    pub(crate) fn watch(&self, id: &TaskId) -> oneshot::Receiver<Option<TaskRecord>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).entry(id.clone()).or_default().push(tx);
        rx
    }

    /// Forgets the waiters of `id` (its queueing failed, or its end was read).
    pub(crate) fn unwatch(&self, id: &TaskId) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Tells the waiters of `id` that it ended (with its record when known here).
    pub(crate) fn wake_waiters(&self, id: &TaskId, record: Option<&TaskRecord>) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        for tx in waiters.into_iter().flatten() {
            let _ = tx.send(record.cloned());
        }
    }

    /// Wakes every waiter to read its task again (after a gap in the notifications).
    fn recheck_waiters(&self) {
        let all = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for tx in all.into_values().flatten() {
            let _ = tx.send(None);
        }
    }

    /// Asks to be told on the done channel when `id` ends (a task queued by someone else).
    async fn announce(&self, id: &TaskId) -> Result<(), Error> {
        self.observe(
            self.scripts
                .announce
                .key(self.keys.task(id.as_str()))
                .invoke_async::<()>(&mut self.gated()?)
                .await,
        )
    }

    /// Waits for `id` to end, reading its record when told it ended (or every second, in
    /// case a notification was lost). `watching` is the waiter registered before the task was
    /// queued by this instance; without one (a task queued by anyone), the task is marked as
    /// watched by everyone and read once before waiting.
    pub(crate) async fn wait(
        &self,
        id: &TaskId,
        watching: Option<oneshot::Receiver<Option<TaskRecord>>>,
    ) -> Result<TaskRecord, Error> {
        let mut check_now = watching.is_none();
        let mut rx = match watching {
            Some(rx) => rx,
            None => {
                let rx = self.watch(id);
                let _ = self.announce(id).await;
                rx
            }
        };
        loop {
            let told = if check_now {
                check_now = false;
                Err(())
            } else {
                tokio::time::timeout(Duration::from_secs(1), &mut rx).await.map_err(drop)
            };
            if let Ok(Ok(Some(record))) = told {
                return Ok(record);
            }
            match self.record(id).await {
                Ok(Some(record)) if record.status.is_final() => {
                    self.unwatch(id);
                    return Ok(record);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.unwatch(id);
                    return Err(Error::new(ErrorKind::UnknownTask, format!("no task {id}")));
                }
                // Redis is away: keep waiting for it, like the task itself does.
                Err(e) if e.kind() == ErrorKind::Unavailable => {}
                Err(e) => return Err(e),
            }
            if told.is_ok() {
                // The channel was answered or dropped: watch again.
                rx = self.watch(id);
            }
        }
    }

    /// Stops taking tasks (shutdown) and wakes the feeders so they see it.
    pub(crate) fn stop_taking(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake_feeders();
    }

    /// Wakes every type's feeder to look at its queue now.
    fn wake_feeders(&self) {
        for wake in self.wakes.values() {
            wake.notify_one();
        }
    }

    /// After a gap in the notifications (Redis or the subscription was away): every waiter
    /// reads its task again and every feeder looks at its queue.
    pub(crate) fn resync(&self) {
        self.recheck_waiters();
        self.wake_feeders();
    }

    /// After the drain: waits (a bounded time) until every held task's end or re-queue is
    /// written, then leaves the live list.
    pub(crate) async fn release(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.cfg.lease_ms.min(10_000));
        while self.taking.load(Ordering::Acquire) > 0
            || !self.held.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
        {
            if tokio::time::Instant::now() >= deadline {
                log::warn!("leaving with tasks whose end is not written; their leases will re-queue them");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = self.deregister().await {
            log::warn!("cannot leave the live instance list: {e}");
        }
    }

    /// The record of a task, if Redis still has it.
    pub(crate) async fn record(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        let fields: HashMap<String, String> =
            self.observe(self.gated()?.hgetall(self.keys.task(id.as_str())).await)?;
        Ok(record_from_hash(id, &fields))
    }

    /// Cancels a queued or running task, wherever it runs.
    pub(crate) async fn cancel(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let outcome: Option<String> = self.observe(
            self.scripts
                .cancel
                .key(self.keys.task(id.as_str()))
                .key(self.keys.leases())
                .arg(id.as_str())
                .arg(now_ms())
                .arg(&self.keys.base)
                .arg(self.keys.done_channel())
                .arg(self.keys.cancel_channel())
                .arg(self.record_ttl())
                .invoke_async(&mut self.gated()?)
                .await,
        )?;
        match outcome {
            None => Err(Error::new(ErrorKind::UnknownTask, format!("no task {id}"))),
            Some(s) if s.starts_with("cancelled:") => self
                .record(id)
                .await?
                .ok_or_else(|| Error::new(ErrorKind::UnknownTask, format!("no task {id}"))),
            Some(status) => {
                Err(Error::new(ErrorKind::Finished, format!("task {id} already ended ({status})")))
            }
        }
    }

    /// Queues a dead-lettered task again with fresh attempts.
    pub(crate) async fn requeue(&self, id: &TaskId) -> Result<TaskId, Error> {
        let outcome: Option<String> = self.observe(
            self.scripts
                .requeue
                .key(self.keys.task(id.as_str()))
                .arg(id.as_str())
                .arg(&self.keys.base)
                .arg(self.keys.wake_channel())
                .arg(self.member(id))
                .invoke_async(&mut self.gated()?)
                .await,
        )?;
        match outcome.as_deref() {
            None => Err(Error::new(ErrorKind::UnknownTask, format!("no task {id}"))),
            Some("queued") => Ok(id.clone()),
            Some(status) => Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("task {id} is not in a dead-letter list (it is {status})"),
            )),
        }
    }

    /// The waiting tasks of a type in queue order (at most `limit`), then the delayed ones.
    pub(crate) async fn queue(&self, task_type: &str, limit: usize) -> Result<QueueInfo, Error> {
        let stop = limit.saturating_sub(1) as isize;
        let (ready, delayed, head, later): (usize, usize, Vec<String>, Vec<String>) = self.observe(
            redis::pipe()
                .zcard(self.keys.queue(task_type))
                .zcard(self.keys.delayed(task_type))
                .zrange(self.keys.queue(task_type), 0, stop)
                .zrange(self.keys.delayed(task_type), 0, stop)
                .query_async(&mut self.gated()?)
                .await,
        )?;
        let listed: Vec<(String, &'static str)> = head
            .iter()
            .map(|m| (m.rsplit(':').next().unwrap_or_default().to_string(), "ready"))
            .chain(later.into_iter().map(|id| (id, "waiting")))
            .take(limit)
            .collect();
        let mut pipe = redis::pipe();
        for (id, _) in &listed {
            pipe.cmd("HMGET").arg(self.keys.task(id)).arg("priority").arg("attempts").arg("created_at");
        }
        let fields: Vec<(Option<i32>, Option<u32>, Option<u64>)> = if listed.is_empty() {
            Vec::new()
        } else {
            self.observe(pipe.query_async(&mut self.gated()?).await)?
        };
        let now = now_ms();
        let tasks: Vec<QueuedTask> = listed
            .into_iter()
            .zip(fields)
            .map(|((id, state), (priority, attempts, created))| QueuedTask {
                id,
                priority: priority.unwrap_or(0),
                state,
                attempts: attempts.unwrap_or(0),
                waited_ms: created.map_or(0, |c| now.saturating_sub(c)),
            })
            .collect();
        let oldest_wait_ms =
            tasks.iter().filter(|t| t.state == "ready").map(|t| t.waited_ms).max().unwrap_or(0);
        Ok(QueueInfo { length: ready + delayed, ready, oldest_wait_ms, tasks })
    }

    /// Waiting tasks per type (ready plus delayed).
    /// Health and stats read them, and never wait for Redis: what Redis does not count within
    /// [`QUICK_READ`] (or at all, while it is down) is the last count.
    pub(crate) async fn queued_counts(&self) -> Result<BTreeMap<String, usize>, Error> {
        let mut pipe = redis::pipe();
        for name in self.limits.keys() {
            pipe.zcard(self.keys.queue(name)).zcard(self.keys.delayed(name));
        }
        let read = async { self.observe::<Vec<usize>>(pipe.query_async(&mut self.gated()?).await) };
        let last = || self.counted.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let counts = match tokio::time::timeout(QUICK_READ, read).await {
            Ok(Ok(counts)) => counts,
            Ok(Err(e)) if last().is_empty() => return Err(e),
            _ => return Ok(last()),
        };
        let counts: BTreeMap<String, usize> =
            self.limits.keys().cloned().zip(counts.chunks(2).map(|c| c.iter().sum())).collect();
        counts.clone_into(&mut self.counted.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(counts)
    }

    /// The dead-letter list of a type, oldest first.
    pub(crate) async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        let ids: Vec<String> = self.observe(self.gated()?.lrange(self.keys.dead(task_type), 0, 999).await)?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.task(id));
        }
        let hashes: Vec<HashMap<String, String>> = if ids.is_empty() {
            Vec::new()
        } else {
            self.observe(pipe.query_async(&mut self.gated()?).await)?
        };
        Ok(ids
            .into_iter()
            .zip(hashes)
            .filter_map(|(id, h)| record_from_hash(&TaskId::from(id), &h))
            .collect())
    }

    /// Result records dropped because their attempt had lost its lease, over all instances.
    pub(crate) async fn stale_results_total(&self) -> Result<u64, Error> {
        let n: Option<u64> = self.observe(self.gated()?.hget(self.keys.stats(), "stale_results").await)?;
        Ok(n.unwrap_or(0))
    }

    fn record_ttl(&self) -> u64 {
        // Redis wants a positive expiry.
        self.record_ttl_ms.max(1)
    }

    // ===== the bridge's side =====

    /// Takes up to `n` ready tasks of a type, each with a lease. With none ready, answers
    /// in how many ms the next delayed one is due.
    pub(crate) async fn take(&self, task_type: &str, n: usize) -> Result<(Vec<Taken>, Option<u64>), Error> {
        let now = now_ms();
        let reply: Vec<String> = self.observe(
            self.scripts
                .take
                .key(self.keys.queue(task_type))
                .key(self.keys.delayed(task_type))
                .key(self.keys.leases())
                .arg(n)
                .arg(now)
                .arg(self.cfg.lease_ms)
                .arg(&self.cfg.instance_id)
                .arg(self.keys.task_prefix())
                .invoke_async(&mut self.gated()?)
                .await,
        )?;
        let &(_, max_retries, timeout) = self.limits.get(task_type).unwrap_or(&(0, 3, 60_000));
        let mut reply = reply.into_iter();
        let next = reply.next().unwrap_or_default();
        let mut taken = Vec::with_capacity(reply.len() / 7);
        while let (
            Some(id),
            Some(data),
            Some(priority),
            Some(retries),
            Some(task_timeout),
            Some(attempt),
            Some(created_at),
        ) =
            (reply.next(), reply.next(), reply.next(), reply.next(), reply.next(), reply.next(), reply.next())
        {
            taken.push(Taken {
                data: serde_json::from_str(&data).unwrap_or_else(|e| {
                    log::warn!("task {id}: its data is not JSON ({e}); the worker gets it as a string");
                    Value::String(data)
                }),
                id: TaskId::from(id),
                priority: priority.parse().unwrap_or(0),
                max_retries: retries.parse().unwrap_or(max_retries),
                timeout: task_timeout.parse().ok().filter(|t| *t > 0).unwrap_or(timeout),
                attempt: attempt.parse().unwrap_or(1),
                created_at: created_at.parse().unwrap_or(now),
            });
        }
        Ok((taken, next.parse::<f64>().ok().map(|t| t as u64)))
    }

    /// Ends (or re-queues) the attempt `attempt` of a task this instance holds. Calls made
    /// while a batch is on its way to Redis go together in the next one.
    pub(crate) async fn finish(
        &self,
        task_type: &str,
        id: &TaskId,
        attempt: u32,
        how: &Finish,
    ) -> Result<Finished, Error> {
        let (kind, record, when) = match how {
            Finish::Final(r) => ("final", Some(r), r.finished_at.unwrap_or_else(now_ms)),
            Finish::Retry { record, backoff_ms } => ("retry", Some(record), *backoff_ms),
            Finish::Requeue => ("requeue", None, 0),
        };
        let progress = record
            .and_then(|r| r.progress.as_ref())
            .and_then(|p| serde_json::to_string(p).ok())
            .unwrap_or_default();
        let args = [
            id.as_str().to_string(),
            task_type.to_string(),
            attempt.to_string(),
            kind.to_string(),
            record.map_or("queued", |r| r.status.as_str()).to_string(),
            record.and_then(|r| r.result.as_ref()).map(|v| v.to_string()).unwrap_or_default(),
            record.and_then(|r| r.error.clone()).unwrap_or_default(),
            record.and_then(|r| r.worker_id.clone()).unwrap_or_default(),
            when.to_string(),
            progress,
        ];
        Ok(match self.finishing.call(args).await? {
            1 => Finished::Recorded,
            2 => Finished::Cancelled,
            -1 => Finished::Stale,
            _ => Finished::Gone,
        })
    }

    /// Sends the waiting `finish` calls in batches, one script call each; runs until the
    /// instance stops.
    pub(crate) async fn finish_batches(&self) {
        self.finishing
            .run(|batch| async move {
                let mut call = self.scripts.finish.key(self.keys.leases());
                call.key(self.keys.stats())
                    .arg(&self.keys.base)
                    .arg(&self.cfg.instance_id)
                    .arg(now_ms())
                    .arg(self.record_ttl())
                    .arg(self.keys.done_channel())
                    .arg(self.keys.wake_channel());
                for args in &batch {
                    call.arg(&args[..]);
                }
                self.observe_write(call.invoke_async(&mut self.gated()?).await)
            })
            .await;
    }

    /// Extends the leases of the tasks this instance holds; returns those it lost.
    pub(crate) async fn renew(&self) -> Result<Vec<(TaskId, u32, String)>, Error> {
        let held: Vec<(TaskId, u32)> = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, a)| (id.clone(), *a))
            .collect();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut lost = Vec::new();
        for chunk in held.chunks(500) {
            let mut call = self.scripts.renew.key(self.keys.leases());
            call.arg(self.cfg.lease_ms).arg(&self.keys.base).arg(&self.cfg.instance_id);
            for (id, attempt) in chunk {
                call.arg(id.as_str()).arg(*attempt);
            }
            let gone: Vec<(String, String)> = self.observe(call.invoke_async(&mut self.gated()?).await)?;
            let attempts: FxHashMap<&str, u32> = chunk.iter().map(|(id, a)| (id.as_str(), *a)).collect();
            for (id, status) in gone {
                let attempt = attempts.get(id.as_str()).copied().unwrap_or(0);
                let id = TaskId::from(id);
                // Taken again here at a newer attempt: the run going on carries it.
                if let Some(newer) = status.strip_prefix("attempt:").and_then(|n| n.parse::<u32>().ok()) {
                    let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(a) = held.get_mut(&id).filter(|a| **a == attempt) {
                        *a = newer;
                    }
                    continue;
                }
                lost.push((id, attempt, status));
            }
        }
        Ok(lost)
    }

    /// Sends tasks leased to this instance that it does not hold (a lost reply, a restart
    /// under the same name) back to their queue without spending an attempt.
    pub(crate) async fn reconcile(&self) -> Result<u64, Error> {
        let _gate = self.take_gate.write().await;
        let held: Vec<TaskId> = self.held.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        let mut call = self.scripts.reconcile.key(self.keys.leases());
        call.arg(&self.keys.base).arg(&self.cfg.instance_id);
        for id in &held {
            call.arg(id.as_str());
        }
        self.observe(call.invoke_async(&mut self.gated()?).await)
    }

    /// The attempt of `id` this instance holds, if it holds it.
    pub(crate) fn held_attempt(&self, id: &TaskId) -> Option<u32> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied()
    }

    /// Stops holding `id`, if it still holds that attempt.
    pub(crate) fn release_held(&self, id: &TaskId, attempt: u32) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(id) == Some(&attempt) {
            held.remove(id);
        }
    }

    /// Sends tasks whose lease ran out (their instance died or was cut off) back to their
    /// queues; returns how many.
    pub(crate) async fn reap(&self) -> Result<u64, Error> {
        self.observe(
            self.scripts
                .reap
                .key(self.keys.leases())
                .key(self.keys.stats())
                .arg(now_ms())
                .arg(&self.keys.base)
                .arg(self.keys.done_channel())
                .arg(self.keys.wake_channel())
                .arg(self.cfg.lease_ms)
                .invoke_async(&mut self.gated()?)
                .await,
        )
    }

    /// Says this instance is alive (with what it serves), and reads who else is.
    pub(crate) async fn heartbeat(&self, me: &InstanceInfo) -> Result<(), Error> {
        let now = me.heartbeat_at;
        let ttl = 3 * self.cfg.heartbeat_ms;
        let info = serde_json::to_string(me).unwrap_or_default();
        let (_, _, _, ids, listeners): ((), (), (), Vec<String>, Vec<(String, u64)>) = self.observe(
            redis::pipe()
                .zadd(self.keys.instances(), &me.instance_id, now)
                .pset_ex(self.keys.instance(&me.instance_id), info, ttl)
                .zrembyscore(self.keys.instances(), "-inf", now.saturating_sub(60_000))
                .zrangebyscore(self.keys.instances(), now.saturating_sub(ttl), "+inf")
                .cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(EVENTS_CHANNEL)
                .arg(PROGRESS_CHANNEL)
                .query_async(&mut self.conn())
                .await,
        )?;
        let listening = |channel: &str| listeners.iter().any(|(c, n)| c == channel && *n > 0);
        self.events_wanted.store(listening(EVENTS_CHANNEL), Ordering::Relaxed);
        self.progress_wanted.store(listening(PROGRESS_CHANNEL), Ordering::Relaxed);
        let mut live = Vec::new();
        if !ids.is_empty() {
            let keys: Vec<String> = ids.iter().map(|id| self.keys.instance(id)).collect();
            let infos: Vec<Option<String>> = self.observe(self.conn().mget(keys).await)?;
            live.extend(infos.into_iter().flatten().filter_map(|text| serde_json::from_str(&text).ok()));
        }
        *self.instances.lock().unwrap_or_else(|e| e.into_inner()) = live;
        Ok(())
    }

    /// Whether Redis answers.
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        self.observe(redis::cmd("PING").query_async::<()>(&mut self.conn()).await)
    }

    /// Removes this instance from the live list (at shutdown).
    pub(crate) async fn deregister(&self) -> Result<(), Error> {
        let _: ((), ()) = self.observe(
            redis::pipe()
                .zrem(self.keys.instances(), &self.cfg.instance_id)
                .del(self.keys.instance(&self.cfg.instance_id))
                .query_async(&mut self.gated()?)
                .await,
        )?;
        Ok(())
    }

    /// Publishes pool events and progress (pipelined, one round trip for the batch).
    pub(crate) async fn publish(
        &self,
        messages: Vec<(&'static str, String)>,
        progress: Vec<(TaskId, String, String)>,
    ) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        for (channel, text) in &messages {
            pipe.publish(*channel, text).ignore();
        }
        if !messages.is_empty() {
            self.observe(pipe.query_async::<()>(&mut self.gated()?).await)?;
        }
        for (id, text, worker) in &progress {
            let mut call = self.scripts.progress.key(self.keys.task(id.as_str()));
            call.arg(text).arg(worker);
            self.observe(call.invoke_async::<()>(&mut self.gated()?).await)?;
        }
        Ok(())
    }
}

/// A client for the configured URL, with the configured certificates for `rediss://`.
fn client_for(cfg: &RedisConfig) -> Result<redis::Client, Error> {
    let url = cfg.url.clone().unwrap_or_default();
    let bad_url = |e: redis::RedisError| Error::new(ErrorKind::Config, format!("redis.url: {e}"));
    if cfg.tls_ca_file.is_none() && cfg.tls_cert_file.is_none() {
        return redis::Client::open(url.as_str()).map_err(bad_url);
    }
    if !url.starts_with("rediss://") {
        return Err(Error::new(ErrorKind::Config, "redis.tls_ca_file: TLS files need a rediss:// URL"));
    }
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Error::new(ErrorKind::Config, format!("redis.{key}: cannot read {}: {e}", path.display()))
        })
    };
    let root_cert = cfg.tls_ca_file.as_deref().map(|p| read("tls_ca_file", p)).transpose()?;
    let client_tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("tls_cert_file", cert)?,
            client_key: read("tls_key_file", key)?,
        }),
        _ => None,
    };
    redis::Client::build_with_tls(url.as_str(), redis::TlsCertificates { client_tls, root_cert })
        .map_err(bad_url)
}

/// A task record from its hash; `None` for a missing (or unreadable) task.
fn record_from_hash(id: &TaskId, h: &HashMap<String, String>) -> Option<TaskRecord> {
    let status = match h.get("status")?.as_str() {
        "queued" => TaskStatus::Queued,
        "running" => TaskStatus::Running,
        "completed" => TaskStatus::Completed,
        "failed" => TaskStatus::Failed,
        "timed_out" => TaskStatus::TimedOut,
        "cancelled" => TaskStatus::Cancelled,
        "dead" => TaskStatus::Dead,
        _ => return None,
    };
    let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok());
    let json = |k: &str| h.get(k).and_then(|v| serde_json::from_str::<Value>(v).ok());
    Some(TaskRecord {
        id: id.clone(),
        task_type: h.get("type").cloned().unwrap_or_default(),
        status,
        priority: h.get("priority").and_then(|v| v.parse().ok()).unwrap_or(0),
        attempts: num("attempts").unwrap_or(0) as u32,
        max_retries: num("max_retries").unwrap_or(0) as u32,
        created_at: num("created_at").unwrap_or(0),
        started_at: num("started_at"),
        finished_at: num("finished_at"),
        progress: h.get("progress").and_then(|v| serde_json::from_str::<Progress>(v).ok()),
        result: if status == TaskStatus::Completed { json("result") } else { None },
        error: h.get("error").filter(|e| !e.is_empty()).cloned(),
        worker_id: h.get("worker_id").filter(|w| !w.is_empty()).cloned(),
        worker_pid: None,
        instance_id: h.get("instance").filter(|i| !i.is_empty()).cloned(),
    })
}
