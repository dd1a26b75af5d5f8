//! The workers of a pool: their slots by id, each in one [`WorkerState`], and the stack of
//! idle ones.
//!
//! The idle stack hands out the most recently used worker first, so a light load keeps the
//! same few workers busy and leaves the others idle long enough to be scaled down; its bottom
//! holds the longest idle.
//!
//! **Architecture Invariant:** a worker leaves the table only when its exit is reported
//! ([`WorkerTable::remove`]), so [`WorkerTable::len`] counts real processes.

use std::collections::VecDeque;
use std::time::Duration;

use actix::{Addr, SpawnHandle};
use futures_util::future::AbortHandle;
use rustc_hash::FxHashMap;
use tokio::time::Instant;

use super::inproc::ProgressBuffer;
use super::stop::StopReason;
use super::timeouts::Deadline;
use crate::messages::WorkerId;
use crate::task::TaskId;
use crate::usage::UsageMeter;
use crate::worker::Worker;

/// Where a worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkerState {
    /// Spawned, not ready yet (no first pong).
    Starting,
    /// Ready and waiting for a task, on the idle stack.
    Idle,
    /// Running a task.
    Busy,
    /// Running a cancelled task it had been sent ahead (prefetch), which it runs anyway: its
    /// answer is dropped, and the deadline bounds how long it may take.
    Ghost(Deadline),
    /// Asked to stop; still counted until its exit is reported.
    Stopping,
}

impl WorkerState {
    /// Whether the worker runs a task (whose answer counts or not).
    #[inline]
    pub(crate) fn is_busy(self) -> bool {
        matches!(self, WorkerState::Busy | WorkerState::Ghost(_))
    }

    /// The state as `GET /api/workers/status` names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Idle => "idle",
            WorkerState::Busy | WorkerState::Ghost(_) => "busy",
            WorkerState::Stopping => "stopping",
        }
    }
}

/// What the table needs to know of a slot.
pub(crate) trait Seat {
    /// The worker's state.
    fn state(&self) -> WorkerState;
}

/// One worker of the pool.
pub(crate) struct Slot {
    pub(super) addr: Addr<Worker>,
    pub(super) state: WorkerState,
    pub(super) task: Option<TaskId>,
    pub(super) pid: Option<u32>,
    pub(super) tasks_done: u64,
    pub(super) born: Instant,
    pub(super) idle_since: Instant,
    pub(super) startup_timer: Option<SpawnHandle>,
    /// Retire this worker when its task is done (scaled down while busy).
    pub(super) retire: bool,
    /// Start a fresh worker when this one has exited (restart).
    pub(super) replace: bool,
    /// Why the pool stopped it.
    pub(super) stop_reason: Option<StopReason>,
    /// The health ping waiting for its pong, and when it was sent.
    pub(super) ping: Option<(u64, Instant)>,
    /// Aborts the in-process attempt running in this slot.
    pub(super) abort: Option<AbortHandle>,
    /// Progress of the in-process attempt running in this slot.
    pub(super) progress: ProgressBuffer,
    /// Tasks sent ahead (prefetch), in the order the worker will run them, with their
    /// timeouts. A task cancelled after it was sent stays here: the worker will still run it.
    pub(super) queued: VecDeque<(TaskId, Duration)>,
    /// What the running attempt used so far, from the resource monitor's samples (reset
    /// when an attempt starts; see `usage`).
    pub(super) usage: UsageMeter,
    /// The GPUs it was placed on (see [`Slot::gpus`]).
    gpus: Vec<String>,
}

impl Slot {
    /// A worker just started, at `now`.
    pub(super) fn starting(
        addr: Addr<Worker>,
        startup_timer: Option<SpawnHandle>,
        gpus: Vec<String>,
        now: Instant,
    ) -> Slot {
        Slot {
            addr,
            state: WorkerState::Starting,
            task: None,
            pid: None,
            tasks_done: 0,
            born: now,
            idle_since: now,
            startup_timer,
            retire: false,
            replace: false,
            stop_reason: None,
            ping: None,
            abort: None,
            progress: Default::default(),
            queued: VecDeque::new(),
            usage: UsageMeter::default(),
            gpus,
        }
    }

    /// The UUIDs of the GPUs this worker was placed on (none for a type without GPUs),
    /// which its attempts' records and `workerpool_task_gpu_seconds_total` count.
    pub(crate) fn gpus(&self) -> &[String] {
        &self.gpus
    }
}

impl Seat for Slot {
    #[inline]
    fn state(&self) -> WorkerState {
        self.state
    }
}

/// The slots of a pool's workers and its idle stack.
pub(crate) struct WorkerTable<S = Slot> {
    slots: FxHashMap<WorkerId, S>,
    /// Idle workers, the most recently used on top.
    idle: Vec<WorkerId>,
}

impl<S: Seat> WorkerTable<S> {
    pub(crate) fn new() -> WorkerTable<S> {
        WorkerTable { slots: FxHashMap::default(), idle: Vec::new() }
    }

    #[inline]
    pub(crate) fn get(&self, id: &WorkerId) -> Option<&S> {
        self.slots.get(id)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: &WorkerId) -> Option<&mut S> {
        self.slots.get_mut(id)
    }

    #[inline]
    pub(crate) fn contains(&self, id: &WorkerId) -> bool {
        self.slots.contains_key(id)
    }

    pub(crate) fn insert(&mut self, id: WorkerId, slot: S) {
        self.slots.insert(id, slot);
    }

    /// Takes a worker out, once its exit is reported; it leaves the idle stack too.
    pub(crate) fn remove(&mut self, id: &WorkerId) -> Option<S> {
        let slot = self.slots.remove(id)?;
        self.unidle(id);
        Some(slot)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&WorkerId, &S)> {
        self.slots.iter()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &S> {
        self.slots.values()
    }

    /// Every worker's id.
    pub(crate) fn ids(&self) -> Vec<WorkerId> {
        self.slots.keys().cloned().collect()
    }

    /// Workers holding a slot, stopping ones included: what `max_concurrent` counts.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Workers in `state`.
    pub(crate) fn count(&self, state: WorkerState) -> usize {
        self.slots.values().filter(|w| w.state() == state).count()
    }

    /// Workers running a task (see [`WorkerState::is_busy`]).
    pub(crate) fn busy(&self) -> usize {
        self.slots.values().filter(|w| w.state().is_busy()).count()
    }

    /// Workers alive and not on their way out (starting, idle or busy).
    pub(crate) fn live(&self) -> usize {
        self.slots.values().filter(|w| w.state() != WorkerState::Stopping).count()
    }

    // ===== the idle stack =====

    /// Puts a worker on top of the idle stack.
    #[inline]
    pub(crate) fn push_idle(&mut self, id: WorkerId) {
        self.idle.push(id);
    }

    /// Takes the most recently used idle worker.
    #[inline]
    pub(crate) fn pop_idle(&mut self) -> Option<WorkerId> {
        self.idle.pop()
    }

    /// Takes a worker off the idle stack, wherever it is.
    #[inline]
    pub(crate) fn unidle(&mut self, id: &WorkerId) {
        self.idle.retain(|w| w != id);
    }

    /// Idle workers, the longest idle first.
    #[inline]
    pub(crate) fn idle(&self) -> &[WorkerId] {
        &self.idle
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Seat, WorkerState, WorkerTable};
    use crate::messages::WorkerId;

    impl Seat for WorkerState {
        fn state(&self) -> WorkerState {
            *self
        }
    }

    fn id(s: &str) -> WorkerId {
        Arc::from(s)
    }

    fn table(states: &[(&str, WorkerState)]) -> WorkerTable<WorkerState> {
        let mut t = WorkerTable::new();
        for (name, state) in states {
            t.insert(id(name), *state);
        }
        t
    }

    #[test]
    fn counts_by_state() {
        use WorkerState::*;
        let t = table(&[("a", Starting), ("b", Idle), ("c", Busy), ("d", Busy), ("e", Stopping)]);
        assert_eq!(t.len(), 5);
        assert_eq!(t.live(), 4);
        assert_eq!((t.count(Starting), t.count(Idle), t.count(Busy), t.count(Stopping)), (1, 1, 2, 1));
        let names: Vec<&str> = [Starting, Idle, Busy, Stopping].iter().map(|s| s.name()).collect();
        assert_eq!(names, ["starting", "idle", "busy", "stopping"]);
    }

    #[test]
    fn idle_stack_hands_out_the_most_recently_used_first() {
        let mut t = table(&[("a", WorkerState::Idle), ("b", WorkerState::Idle), ("c", WorkerState::Idle)]);
        for name in ["a", "b", "c"] {
            t.push_idle(id(name));
        }
        assert_eq!(t.idle(), [id("a"), id("b"), id("c")]);
        assert_eq!(t.pop_idle(), Some(id("c")));
        t.push_idle(id("c"));
        t.unidle(&id("b"));
        assert_eq!(t.idle(), [id("a"), id("c")]);
        assert_eq!(t.pop_idle(), Some(id("c")));
        assert_eq!(t.pop_idle(), Some(id("a")));
        assert_eq!(t.pop_idle(), None);
    }

    #[test]
    fn a_removed_worker_leaves_the_idle_stack() {
        let mut t = table(&[("a", WorkerState::Idle), ("b", WorkerState::Idle)]);
        t.push_idle(id("a"));
        t.push_idle(id("b"));
        assert_eq!(t.remove(&id("a")), Some(WorkerState::Idle));
        assert_eq!(t.remove(&id("a")), None);
        assert!(!t.contains(&id("a")));
        assert_eq!(t.idle(), [id("b")]);
        assert_eq!(t.len(), 1);
    }
}
