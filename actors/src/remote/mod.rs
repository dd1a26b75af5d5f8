//! Queues shared through Redis (contract §2): with a Redis URL configured, the queues, task
//! records, retries and dead letters of every type live in Redis, and each instance's
//! [`bridge`] takes tasks from there into its own pools when they have room.
//!
//! [`Remote`] is what a `PoolHandle` calls instead of its local pools: enqueue, wait, look
//! up, cancel, requeue, list. Every change to the shared state is one Lua script
//! ([`scripts`]), so no task is taken twice or dropped between two commands.
//!
//! Each script is called from one file, which builds its arguments and reads its reply into
//! a type of its own, so that no reply code or string is read anywhere else:
//! - the handle's side: [`enqueue`] (`ENQUEUE`, batched), [`tasks`] (`CANCEL`, `REQUEUE`,
//!   look-ups), [`queues`] (queues, counts, dead letters), [`waiters`] (`ANNOUNCE`, waiting
//!   for an end) and [`outcome`] (`RESOLVE`: settling a queueing whose reply was lost);
//! - the executor's side: [`leases`] (`TAKE`, `RENEW`, `RECONCILE`, the held attempts),
//!   [`reap`] (`REAP`: adopting the leases that ran out anywhere, then the retry rule's
//!   verdict on each lost attempt, written by `FINISH`), [`finish`] (`FINISH`, batched),
//!   [`instances`] (heartbeat, live list) and [`publisher`] (events out, `PROGRESS`);
//! - underneath: [`keys`] (every key name), [`records`] (a task's hash), [`connection`]
//!   (the client and each command's way through the [`link`]) and [`batch`].

mod batch;
pub(crate) mod bridge;
mod connection;
mod enqueue;
mod finish;
mod instances;
mod keys;
mod leases;
mod link;
mod outcome;
mod publisher;
mod queues;
mod reap;
mod records;
mod scripts;
#[cfg(test)]
mod scripts_tests;
mod tasks;
mod waiters;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rustc_hash::FxHashMap;
use tokio::sync::{Notify, RwLock, oneshot};

use crate::config::{PoolConfig, RedisConfig, TypeConfig};
use crate::error::{Error, ErrorKind};
use crate::policy::retry::RetryPolicy;
use crate::task::{TaskId, TaskRecord, now_ms};
use batch::Batcher;
use enqueue::EnqueueCall;
use finish::FinishCall;
pub(crate) use finish::{Finish, Finished, Writer};
pub use instances::InstanceInfo;
use keys::Keys;
pub(crate) use leases::Taken;
use link::Link;
pub(crate) use reap::Reaped;

/// What the tasks of a type get when they do not say, and its retry rule.
#[derive(Clone, Copy, Debug)]
struct TypeLimits {
    queue_size: usize,
    max_retries: u32,
    timeout_ms: u64,
    /// For the lost attempts this instance reaps.
    retry: RetryPolicy,
}

impl TypeLimits {
    fn of(t: &TypeConfig) -> TypeLimits {
        TypeLimits {
            queue_size: t.queue_size,
            max_retries: t.max_retries,
            timeout_ms: t.timeout_ms,
            retry: RetryPolicy::for_type(t, true),
        }
    }
}

/// The connection to the shared queues, and what this instance knows of them.
pub(crate) struct Remote {
    keys: Keys,
    cfg: RedisConfig,
    client: redis::Client,
    conn: ConnectionManager,
    /// Per type this instance runs: what its tasks get when they do not say.
    limits: BTreeMap<String, TypeLimits>,
    /// Callers waiting for tasks to end: `Some(record)` when this instance ended it itself,
    /// `None` when they must read it.
    waiters: Mutex<FxHashMap<TaskId, Vec<oneshot::Sender<Option<TaskRecord>>>>>,
    /// Whether Redis answers: the one state that health, admission and the loops read.
    link: Link,
    /// The waiting tasks per type at the last count, for when Redis cannot count them now.
    counted: Mutex<BTreeMap<String, usize>>,
    /// Per type: rung when a task of the type may be ready.
    wakes: BTreeMap<String, Notify>,
    /// Live instances at the last heartbeat.
    instances: Mutex<Vec<InstanceInfo>>,
    /// Tasks this instance holds: id → attempt.
    held: Mutex<FxHashMap<TaskId, u32>>,
    /// Set at shutdown: no more tasks are taken.
    stopping: AtomicBool,
    /// TAKE calls on their way (their tasks are not in `held` yet).
    taking: AtomicUsize,
    /// Held shared by TAKE calls until their tasks are in `held`, and alone by a reconcile.
    take_gate: RwLock<()>,
    /// Orders the queue members this instance makes within one millisecond.
    member_counter: AtomicU64,
    /// Whether anyone listens on the events / progress channels (read at each heartbeat):
    /// events nobody would receive are not serialised and sent.
    events_wanted: AtomicBool,
    progress_wanted: AtomicBool,
    started_at: u64,
    record_ttl_ms: u64,
    /// `finish` calls waiting for the next batch.
    finishing: Batcher<FinishCall>,
    /// `enqueue` calls waiting for the next batch.
    enqueuing: Batcher<EnqueueCall>,
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

impl Remote {
    /// A client for `cfg.url`; nothing is connected until the first command. Must run
    /// inside a tokio runtime (the connection's driver is spawned there).
    pub(crate) fn new(config: &PoolConfig) -> Result<Remote, Error> {
        let cfg = config.redis.clone();
        let client = connection::client_for(&cfg)?;
        let command_timeout = Duration::from_millis(cfg.command_timeout_ms);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(command_timeout))
            .set_response_timeout(Some(command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config).map_err(|e| {
            Error::new(ErrorKind::Config, format!("redis.url: {}", connection::describe(&cfg, &e)))
        })?;
        let limits = config.types.iter().map(|(name, t)| (name.clone(), TypeLimits::of(t))).collect();
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
            taking: AtomicUsize::new(0),
            take_gate: RwLock::new(()),
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

    /// The `[redis]` settings this instance runs with.
    pub(crate) fn config(&self) -> &RedisConfig {
        &self.cfg
    }

    /// The names of the shared keys and channels.
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// When this instance started (Unix ms).
    pub(crate) fn started_at(&self) -> u64 {
        self.started_at
    }

    /// A type's limits; a type this instance does not run has the defaults of its name.
    fn limits_of(&self, task_type: &str) -> TypeLimits {
        self.limits
            .get(task_type)
            .copied()
            .unwrap_or_else(|| TypeLimits::of(&TypeConfig::defaults_for(task_type)))
    }

    /// Whether anyone listened on `worker_pool_events` at the last heartbeat.
    pub(crate) fn events_wanted(&self) -> bool {
        self.events_wanted.load(Ordering::Relaxed)
    }

    /// Whether anyone listened on `task_progress` at the last heartbeat.
    pub(crate) fn progress_wanted(&self) -> bool {
        self.progress_wanted.load(Ordering::Relaxed)
    }

    // ===== taking, waking and stopping =====

    /// Whether the instance stops: no more tasks are taken.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops taking tasks (shutdown) and wakes the feeders so they see it.
    pub(crate) fn stop_taking(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake_feeders();
    }

    /// What a type's feeder waits on between looks at its queue; `None` for an unknown type.
    pub(crate) fn wake_for(&self, task_type: &str) -> Option<&Notify> {
        self.wakes.get(task_type)
    }

    /// Wakes the feeder of `task_type` (a task of it became ready); unknown types are ignored.
    pub(crate) fn wake(&self, task_type: &str) {
        if let Some(wake) = self.wakes.get(task_type) {
            wake.notify_one();
        }
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
}
