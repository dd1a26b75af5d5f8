//! What every actor of one tree shares: task records, the event bus, worker ids, the
//! tree-wide worker slots (`max_workers`), lent between types by the [`SlotLender`], and the
//! GPU ledger (`crate::gpus`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::{PoolConfig, TypeConfig};
use crate::events::EventBus;
use crate::gpus::GpuLedger;
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
    /// The `max_workers` slots and the types starved for one.
    pub(crate) lender: SlotLender,
    /// The GPUs and the reservations of the workers placed on them.
    pub(crate) gpus: GpuLedger,
    pub(crate) max_dead_letters: usize,
    /// Whether the queues outlive this instance (Redis): then the pools run one attempt of
    /// each task they are handed and give the verdict back (`policy::retry`).
    pub(crate) durable: bool,
    next_worker: AtomicU64,
    /// The latest resource sample.
    resources: RwLock<ResourceSnapshot>,
    /// Types whose workers failed to start, in a row; written by each type's pool.
    start_failures: RwLock<BTreeMap<Arc<str>, StartFailures>>,
    /// Whether `start_failures` has an entry, read first so that submissions skip its lock.
    any_start_failures: AtomicBool,
}

impl Shared {
    pub(crate) fn new(cfg: &PoolConfig, metrics: PoolMetrics, gpus: GpuLedger) -> Shared {
        Shared {
            store: TaskStore::new(Duration::from_millis(cfg.record_ttl_ms), local_records(cfg)),
            events: EventBus::new(),
            metrics,
            lender: SlotLender::new(cfg.max_workers),
            gpus,
            max_dead_letters: cfg.max_dead_letters,
            durable: cfg.redis.url.is_some(),
            next_worker: AtomicU64::new(1),
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
}

// ===== impl SlotLender =====

/// The tree-wide worker slots (`max_workers`) and the types starved for one.
///
/// A pool takes a slot before it starts a worker and gives it back when the worker's exit is
/// reported. A type that has real work but finds every slot taken marks itself starved and
/// tells the supervisor (`SlotWanted`), which asks every pool to give back an idle worker
/// (`ReleaseIdle`); a slot given back while some type is starved is announced (`SlotFreed`),
/// and the supervisor pokes the starved types (`Poke`). Meanwhile the other types keep only
/// their own `min_workers` warm and yield workers that finish a task (`policy::admission`).
#[derive(Debug)]
pub(crate) struct SlotLender {
    max_workers: usize,
    taken: AtomicUsize,
    /// Types that want a worker but found every slot taken.
    starved: Mutex<BTreeSet<Arc<str>>>,
    /// How many there are, read without the lock.
    starved_count: AtomicUsize,
}

impl SlotLender {
    pub(crate) fn new(max_workers: usize) -> SlotLender {
        SlotLender {
            max_workers,
            taken: AtomicUsize::new(0),
            starved: Mutex::new(BTreeSet::new()),
            starved_count: AtomicUsize::new(0),
        }
    }

    /// The tree's `max_workers`.
    pub(crate) fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Takes one of the slots, if one is free.
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_workers).then_some(n + 1))
            .is_ok()
    }

    /// Gives a slot back.
    pub(crate) fn release(&self) {
        let _ = self.taken.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Slots taken.
    pub(crate) fn used(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }

    /// Slots not taken.
    pub(crate) fn free(&self) -> usize {
        self.max_workers.saturating_sub(self.used())
    }

    fn starved(&self) -> std::sync::MutexGuard<'_, BTreeSet<Arc<str>>> {
        self.starved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a type starved for a slot, or no longer; answers whether that changed.
    pub(crate) fn set_starved(&self, task_type: &Arc<str>, starved: bool) -> bool {
        let mut set = self.starved();
        let changed = if starved { set.insert(task_type.clone()) } else { set.remove(task_type) };
        self.starved_count.store(set.len(), Ordering::Release);
        changed
    }

    /// Whether any type is starved (without taking the lock).
    #[inline]
    pub(crate) fn any_starved(&self) -> bool {
        self.starved_count.load(Ordering::Acquire) > 0
    }

    /// Whether a type other than `task_type` is starved.
    pub(crate) fn others_starved(&self, task_type: &str) -> bool {
        self.starved().iter().any(|t| &**t != task_type)
    }

    /// The starved types, in name order.
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::SlotLender;

    #[test]
    fn slots_are_taken_up_to_the_bound_and_given_back() {
        let lender = SlotLender::new(2);
        assert!(lender.try_take());
        assert!(lender.try_take());
        assert!(!lender.try_take());
        assert_eq!((lender.used(), lender.free(), lender.max_workers()), (2, 0, 2));
        lender.release();
        assert_eq!(lender.free(), 1);
        assert!(lender.try_take());
        // Giving back more than was taken never wraps.
        for _ in 0..3 {
            lender.release();
        }
        assert_eq!((lender.used(), lender.free()), (0, 2));
    }

    #[test]
    fn starved_types_are_seen_by_the_others() {
        let lender = SlotLender::new(1);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert!(!lender.any_starved());
        assert!(lender.set_starved(&b, true));
        assert!(lender.set_starved(&a, true));
        // Asking again changes nothing: the pool asks the supervisor for a slot once.
        assert!(!lender.set_starved(&a, true));
        assert!(lender.any_starved());
        assert_eq!(lender.starved_types(), [a.clone(), b.clone()]);
        assert!(lender.set_starved(&b, false));
        // A type's own hunger does not make it give way.
        assert!(!lender.others_starved("a"));
        assert!(lender.others_starved("b"));
        assert!(lender.set_starved(&a, false));
        assert!(!lender.set_starved(&a, false));
        assert!(!lender.any_starved());
    }
}
