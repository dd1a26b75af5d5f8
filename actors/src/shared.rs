//! What every actor of one tree shares: task records, the event bus, worker ids and the
//! tree-wide worker slots (`max_workers`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::{PoolConfig, TypeConfig};
use crate::events::EventBus;
use crate::messages::WorkerId;
use crate::metrics::PoolMetrics;
use crate::policy::admission;
use crate::resources::ResourceSnapshot;
use crate::store::TaskStore;

/// Workers of a type that failed to start, in a row (see `policy::starts`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StartFailures {
    /// Failed starts in a row.
    pub failures: u32,
    /// Whether the type gave up: it takes no tasks until a worker starts.
    pub gave_up: bool,
    /// Why, with the last failure.
    pub reason: String,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: TaskStore,
    pub(crate) events: EventBus,
    pub(crate) metrics: PoolMetrics,
    pub(crate) max_workers: usize,
    pub(crate) max_dead_letters: usize,
    /// Whether the queues outlive this instance (Redis): then the pools run one attempt of
    /// each task they are handed and give the verdict back (`policy::retry`).
    pub(crate) durable: bool,
    slots: AtomicUsize,
    next_worker: AtomicU64,
    /// The latest resource sample.
    resources: RwLock<ResourceSnapshot>,
    /// Types that want a worker but found every slot taken.
    starved: Mutex<BTreeSet<Arc<str>>>,
    /// Types whose workers failed to start, in a row; written by each type's pool.
    start_failures: RwLock<BTreeMap<Arc<str>, StartFailures>>,
    /// Whether `start_failures` has an entry, read first so that submissions skip its lock.
    any_start_failures: AtomicBool,
}

impl Shared {
    pub(crate) fn new(cfg: &PoolConfig, metrics: PoolMetrics) -> Shared {
        Shared {
            store: TaskStore::new(Duration::from_millis(cfg.record_ttl_ms), local_records(cfg)),
            events: EventBus::new(),
            metrics,
            max_workers: cfg.max_workers,
            max_dead_letters: cfg.max_dead_letters,
            durable: cfg.redis.url.is_some(),
            slots: AtomicUsize::new(0),
            next_worker: AtomicU64::new(1),
            starved: Mutex::new(BTreeSet::new()),
            resources: RwLock::new(ResourceSnapshot::default()),
            start_failures: RwLock::new(BTreeMap::new()),
            any_start_failures: AtomicBool::new(false),
        }
    }

    pub(crate) fn resources(&self) -> ResourceSnapshot {
        self.resources.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn gpu_status(&self) -> crate::resources::GpuStatus {
        self.resources.read().unwrap_or_else(|e| e.into_inner()).gpu.clone()
    }

    pub(crate) fn set_resources(&self, snapshot: ResourceSnapshot) {
        *self.resources.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// Whether another worker of this type may start now, as the machine stands (see
    /// [`admission::machine`]).
    pub(crate) fn can_start(&self, cfg: &TypeConfig, live: usize) -> Result<(), String> {
        admission::machine(&self.resources.read().unwrap_or_else(|e| e.into_inner()), cfg, live)
    }

    /// Publishes a type's failed starts (`None` once a worker started).
    pub(crate) fn set_start_failures(&self, task_type: &Arc<str>, failures: Option<StartFailures>) {
        let mut map = self.start_failures.write().unwrap_or_else(|e| e.into_inner());
        match failures {
            Some(f) => map.insert(task_type.clone(), f),
            None => map.remove(task_type),
        };
        self.any_start_failures.store(!map.is_empty(), Ordering::Release);
    }

    /// A type's failed starts in a row, if any.
    pub(crate) fn start_failures(&self, task_type: &str) -> Option<StartFailures> {
        if !self.any_start_failures.load(Ordering::Acquire) {
            return None;
        }
        self.start_failures.read().unwrap_or_else(|e| e.into_inner()).get(task_type).cloned()
    }

    /// A fresh worker id, never handed out before in this tree.
    pub(crate) fn next_worker_id(&self, task_type: &str) -> WorkerId {
        let n = self.next_worker.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("{task_type}-{n}"))
    }

    /// Takes one of the `max_workers` slots, if one is free.
    pub(crate) fn try_take_slot(&self) -> bool {
        self.slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_workers).then_some(n + 1))
            .is_ok()
    }

    pub(crate) fn release_slot(&self) {
        let _ = self.slots.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub(crate) fn slots_used(&self) -> usize {
        self.slots.load(Ordering::Acquire)
    }

    /// Slots of `max_workers` not taken.
    pub(crate) fn free_slots(&self) -> usize {
        self.max_workers.saturating_sub(self.slots_used())
    }

    fn starved(&self) -> std::sync::MutexGuard<'_, BTreeSet<Arc<str>>> {
        self.starved.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_starved(&self, task_type: &Arc<str>, starved: bool) {
        if starved {
            self.starved().insert(task_type.clone());
        } else {
            self.starved().remove(task_type);
        }
    }

    pub(crate) fn any_starved(&self) -> bool {
        !self.starved().is_empty()
    }

    pub(crate) fn others_starved(&self, task_type: &str) -> bool {
        self.starved().iter().any(|t| &**t != task_type)
    }

    pub(crate) fn starved_types(&self) -> Vec<Arc<str>> {
        self.starved().iter().cloned().collect()
    }
}

/// Finished records kept in this process: `max_records`, or with shared queues (whose
/// records live in Redis) only the most recent few, for local diagnostics.
fn local_records(cfg: &PoolConfig) -> usize {
    if cfg.redis.url.is_some() { cfg.max_records.min(LOCAL_RECORDS_WITH_REDIS) } else { cfg.max_records }
}

/// See [`local_records`].
const LOCAL_RECORDS_WITH_REDIS: usize = 1_000;
