//! `TypePool`: the executor of one task type's attempts, with its workers.
//!
//! The pool takes the highest-priority ready task from the type's queue (the memory
//! backend's `TaskQueue`, which it owns: no lock or message on the hot path) whenever a
//! worker is idle, runs one attempt on that worker, and carries out what the retry rule
//! decides of its outcome. It starts workers on demand up to `max_concurrent` (and the
//! tree-wide `max_workers`), times attempts out, and writes every change to the shared task
//! records. With Redis the same queue holds only the attempts this instance took.
//!
//! The state is held by owned types, each in its own file with its tests: the queue and the
//! dead letters (`backend/memory/`), the worker table with the idle stack (`workers`), the
//! health window (`window`), the deadlines and alarms (`timeouts`) and the stop reasons
//! (`stop`). The actor's behaviour is split by concern: `dispatch` (intake, taking from the
//! queue, handing tasks to workers), `lifecycle` (starting and stopping workers), `scale`
//! (manual and automatic scaling), `outcome` (results, failures, retries, the end of a
//! task), `starts` (failed starts), `timeouts`, `inproc` (in-process handlers), `monitoring`
//! (pings and stuck tasks), `accounting` (what attempts used), `enforce` (memory limits and
//! drained GPUs, as the resource monitor reports them) and `handlers` (the message table). Whether a worker may start is
//! decided by `policy::admission`, how a failed attempt goes on by `policy::retry`.
//!
//! **Architecture Invariant:** a worker leaves `workers` only when its exit is reported, so
//! the slots counted against `max_concurrent` and `max_workers` are real processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Recipient, SpawnHandle};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::memory::dead::DeadLetters;
use crate::backend::memory::queue::{Hold, TaskQueue};
use crate::config::{ExecutorKind, TypeConfig};
use crate::executor::HandlerFn;
use crate::intake::Intake;
use crate::messages::{Execute, ShutdownReport, SlotFreed, SlotWanted, TypeStats, Waiter, WorkerId};
use crate::metrics::TypeMetrics;
use crate::policy::retry::{RetryPolicy, Verdict};
use crate::policy::starts::StartBackoff;
use crate::shared::Shared;
use crate::task::TaskRecord;
use tally::Tally;
use timeouts::{Alarm, Deadline, Deadlines};
use window::HealthWindow;
use workers::{WorkerState, WorkerTable};

mod accounting;
mod dispatch;
mod drain;
mod enforce;
mod handlers;
mod inproc;
mod lifecycle;
mod monitoring;
mod outcome;
mod scale;
mod starts;
mod stop;
mod tally;
mod timeouts;
mod window;
mod workers;

pub(crate) use stop::StopReason;

/// How the pool holds a task it took from its queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Sent ahead to a busy worker (prefetch): in its pipe, not started.
    Sent { worker: WorkerId },
    /// On a worker.
    Running { worker: WorkerId, deadline: Deadline, started: Instant },
}

impl Hold for Held {
    #[inline]
    fn running(&self) -> bool {
        matches!(self, Held::Running { .. })
    }
}

/// Who hears of the pool's wishes for worker slots (the supervisor, which lends them).
#[derive(Clone)]
pub(crate) struct SlotNews {
    pub(crate) wanted: Recipient<SlotWanted>,
    pub(crate) freed: Recipient<SlotFreed>,
}

struct DrainState {
    reply: Option<oneshot::Sender<ShutdownReport>>,
    report: ShutdownReport,
}

/// The pools of a tree, by type name.
pub(crate) type Pools = BTreeMap<String, Addr<TypePool>>;

/// The pool of one task type.
pub(crate) struct TypePool {
    name: Arc<str>,
    cfg: TypeConfig,
    /// What a failed attempt leads to.
    retry: RetryPolicy,
    command: Option<Arc<[String]>>,
    handler: Option<HandlerFn>,
    shared: Arc<Shared>,
    intake: Arc<Intake>,
    metrics: TypeMetrics,
    /// Where the pool says that it wants a worker slot, or gave one back.
    slots: SlotNews,
    /// The type's live tasks: ready, delayed, or held by this pool (the memory backend's
    /// queue; with Redis, the attempts this instance took).
    queue: TaskQueue<Held>,
    /// Wakes the pool when the earliest delay of `queue` ends.
    delay_alarm: Alarm,
    /// The workers and the idle stack.
    workers: WorkerTable,
    /// Tasks that ended `dead` or `timed_out` here (none with a durable backend, which keeps
    /// its own).
    dead: DeadLetters,
    /// Workers that failed to start, in a row, and the wait before the next try.
    starts: StartBackoff,
    /// Wakes the pool when the wait of `starts` is over.
    start_timer: Option<SpawnHandle>,
    /// Workers kept warm: the type's `min_workers`, or more from the pool-wide `min_workers`.
    warm: usize,
    /// Why workers cannot start now (CPU or memory), while that lasts.
    blocked: Option<String>,
    /// Task outcomes and unplanned worker exits of the last five minutes.
    health: HealthWindow,
    next_ping: u64,
    /// Timeouts of running attempts, earliest first; one alarm serves them all.
    deadlines: Deadlines,
    /// In-process attempts that finished at once, waiting for the dispatch loop.
    immediate: inproc::Immediate,
    /// Set while the dispatch loop runs, so that nested calls return at once.
    dispatching: bool,
    /// While a batch of calls is handled: the answers to send at its end.
    answers: Vec<(Waiter, Arc<TaskRecord>, Verdict)>,
    /// Set while a batch of calls is handled (answers wait in `answers`).
    batching: bool,
    /// The calls of the batch being handled, taken from the intake.
    calls: Vec<Execute>,
    /// Tasks completed and failed, and how long attempts take.
    tally: Tally,
    /// Whether this type's last try to start a worker found no GPU room, leaving its wait
    /// in the ledger (`Shared::gpus`), which the pool then ends when it no longer waits.
    gpu_waiting: bool,
    /// The live workers a manual scale-up asked for while some of them wait for GPU room
    /// (see `policy::manual`); `None` once that many live, or after a scale-down.
    scale_target: Option<usize>,
    draining: Option<DrainState>,
}

impl TypePool {
    pub(crate) fn new(
        name: &str,
        cfg: TypeConfig,
        handler: Option<HandlerFn>,
        shared: Arc<Shared>,
        slots: SlotNews,
        warm: usize,
        intake: Arc<Intake>,
    ) -> TypePool {
        let cfg_min = cfg.min_workers.max(warm).min(cfg.max_concurrent);
        let command = match cfg.executor {
            ExecutorKind::Process => cfg.command.clone().map(Arc::from),
            ExecutorKind::InProcess => None,
        };
        let starts = StartBackoff::new(&cfg);
        let retry = RetryPolicy::for_type(&cfg, shared.durable);
        let metrics = TypeMetrics::new(&shared.metrics, name, &cfg);
        TypePool {
            name: Arc::from(name),
            retry,
            cfg,
            command,
            handler,
            metrics,
            intake,
            shared,
            slots,
            queue: TaskQueue::default(),
            delay_alarm: Alarm::default(),
            workers: WorkerTable::new(),
            dead: DeadLetters::default(),
            starts,
            start_timer: None,
            warm: cfg_min,
            blocked: None,
            health: HealthWindow::default(),
            next_ping: 1,
            deadlines: Deadlines::default(),
            immediate: Default::default(),
            dispatching: false,
            answers: Vec::new(),
            batching: false,
            calls: Vec::new(),
            tally: Tally::default(),
            gpu_waiting: false,
            scale_target: None,
            draining: None,
        }
    }

    /// Workers kept even when idle.
    fn min_workers(&self) -> usize {
        self.warm
    }

    /// Tasks a busy process worker may hold in its pipe now: `prefetch`, or with
    /// `auto_prefetch` one while recent attempts are short.
    fn prefetch_window(&self) -> usize {
        if self.cfg.prefetch > 0 {
            return self.cfg.prefetch;
        }
        usize::from(self.cfg.auto_prefetch && self.tally.short_attempts())
    }

    /// Tasks not running (ready, delayed or sent ahead): what `queue_size` bounds.
    #[inline]
    fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    /// Workers alive and not on their way out (starting, idle or busy).
    fn live_workers(&self) -> usize {
        self.workers.live()
    }

    /// How long the oldest ready task has waited (zero when none is ready).
    fn oldest_ready_wait(&self) -> Duration {
        self.queue.oldest_ready_wait(Instant::now())
    }

    fn stats(&mut self) -> TypeStats {
        self.health.prune(Instant::now());
        let oldest = self.oldest_ready_wait().as_millis() as u64;
        let percentiles = self.tally.percentiles();
        TypeStats {
            total: self.live_workers(),
            available: self.workers.count(WorkerState::Idle),
            busy: self.workers.busy(),
            queued: self.waiting(),
            tasks_completed: self.tally.completed_count(),
            tasks_failed: self.tally.failed_count(),
            avg_task_ms: self.tally.avg_task_ms(),
            p50_task_ms: percentiles.map(|p| p.p50_ms),
            p95_task_ms: percentiles.map(|p| p.p95_ms),
            ready: self.queue.ready(),
            oldest_wait_ms: oldest,
            dead_letters: self.dead.len(),
            recent_finished: self.health.finished_count(),
            recent_failed: self.health.failed_count(),
            recent_restarts: self.health.restart_count(),
            start_blocked: self
                .starts
                .status(&self.name, Instant::now())
                .or_else(|| self.blocked.clone())
                .or_else(|| self.shared.gpus.wait_reason(&self.name)),
            start_failures: self.starts.failures(),
            cannot_start: self.starts.gave_up(),
        }
    }
}

impl Drop for TypePool {
    fn drop(&mut self) {
        // Calls still waiting in the intake would otherwise wait for a pool that is gone.
        self.intake.close();
    }
}

impl Actor for TypePool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many handles talk to one pool; the mailbox bound only applies to `send`.
        ctx.set_mailbox_capacity(4096);
        if self.check_command(ctx) {
            self.ensure_workers(ctx);
        }
    }
}
