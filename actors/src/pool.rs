//! `TypePool`: the queue and the workers of one task type.
//!
//! The pool owns every live task of its type (waiting or running) and every worker.
//! It hands the highest-priority ready task to an idle worker, starts workers on demand up to
//! `max_concurrent` (and the tree-wide `max_workers`), times attempts out, retries with
//! backoff, and writes every change to the shared task records.
//!
//! **Architecture Invariant:** a worker leaves `workers` only when its exit is reported, so
//! the slots counted against `max_concurrent` and `max_workers` are real processes.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::config::{ExecutorKind, TypeConfig};
use crate::error::{Error, ErrorKind, SubmitError};
use crate::events::EventKind;
use crate::executor::{HandlerFn as TaskHandlerFn, TaskError};
use crate::messages::*;
use crate::policy::{QueueKey, retry_backoff};
use crate::shared::Shared;
use crate::supervisor::Supervisor;
use crate::task::{Progress, TaskId, TaskRecord, TaskStatus, now_ms};
use crate::worker::{Worker, WorkerKind};

/// How long a new worker may take to answer its first ping.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Workers that exit before they are ready, in a row, before waiting tasks are failed.
const MAX_EARLY_EXITS: u32 = 3;

/// Where a live task is.
enum State {
    /// In the ready queue.
    Queued,
    /// Waiting for its delay or retry backoff to pass.
    Waiting(SpawnHandle),
    /// On a worker.
    Running { worker: WorkerId, timer: SpawnHandle, started: Instant },
}

/// A live task.
struct Pending {
    data: Arc<Value>,
    priority: i32,
    seq: u64,
    timeout: Duration,
    max_retries: u32,
    attempt: u32,
    state: State,
    ready_since: Instant,
    waiters: Vec<oneshot::Sender<TaskRecord>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WState {
    Starting,
    Idle,
    Busy,
    Stopping,
}

impl WState {
    fn name(self) -> &'static str {
        match self {
            WState::Starting => "starting",
            WState::Idle => "idle",
            WState::Busy => "busy",
            WState::Stopping => "stopping",
        }
    }
}

struct Slot {
    addr: Addr<Worker>,
    state: WState,
    task: Option<TaskId>,
    pid: Option<u32>,
    tasks_done: u64,
    born: Instant,
    idle_since: Instant,
    startup_timer: Option<SpawnHandle>,
    /// Retire this worker when its task is done (scaled down while busy).
    retire: bool,
    /// Start a fresh worker when this one has exited (restart).
    replace: bool,
}

/// How an attempt ended without a result.
enum Failure {
    /// The task's code returned an error.
    Error(TaskError),
    /// The worker died under it.
    Crash(String),
    /// The attempt ran past its timeout.
    Timeout,
    /// A caller cancelled it.
    Cancelled,
    /// The pool shut down before it could finish.
    Shutdown,
}

/// A dead-lettered task: enough to run it again.
struct DeadLetter {
    id: TaskId,
    data: Arc<Value>,
    priority: i32,
    timeout: Duration,
    max_retries: u32,
}

struct DrainState {
    reply: Option<oneshot::Sender<ShutdownReport>>,
    report: ShutdownReport,
}

/// The pool of one task type.
pub(crate) struct TypePool {
    name: Arc<str>,
    cfg: TypeConfig,
    command: Option<Arc<[String]>>,
    handler: Option<TaskHandlerFn>,
    shared: Arc<Shared>,
    supervisor: Addr<Supervisor>,
    tasks: HashMap<TaskId, Pending>,
    queue: BinaryHeap<QueueKey<TaskId>>,
    ready: usize,
    seq: u64,
    workers: HashMap<WorkerId, Slot>,
    idle: Vec<WorkerId>,
    dead: VecDeque<DeadLetter>,
    early_exits: u32,
    starved: bool,
    completed: u64,
    failed: u64,
    busy_ms_total: u64,
    draining: Option<DrainState>,
}

impl TypePool {
    pub(crate) fn new(
        name: &str,
        cfg: TypeConfig,
        handler: Option<TaskHandlerFn>,
        shared: Arc<Shared>,
        supervisor: Addr<Supervisor>,
    ) -> TypePool {
        let command = match cfg.executor {
            ExecutorKind::Process => cfg.command.clone().map(Arc::from),
            ExecutorKind::InProcess => None,
        };
        TypePool {
            name: Arc::from(name),
            cfg,
            command,
            handler,
            shared,
            supervisor,
            tasks: HashMap::new(),
            queue: BinaryHeap::new(),
            ready: 0,
            seq: 0,
            workers: HashMap::new(),
            idle: Vec::new(),
            dead: VecDeque::new(),
            early_exits: 0,
            starved: false,
            completed: 0,
            failed: 0,
            busy_ms_total: 0,
            draining: None,
        }
    }

    fn waiting(&self) -> usize {
        self.tasks.len() - self.workers.values().filter(|w| w.state == WState::Busy).count()
    }

    // ===== intake =====

    fn enqueue(&mut self, msg: Enqueue, ctx: &mut Context<Self>) -> Result<TaskId, SubmitError> {
        let Enqueue { id, request, waiter } = msg;
        if self.draining.is_some() {
            return Err(SubmitError::new(
                Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"),
                request,
            ));
        }
        if self.waiting() >= self.cfg.queue_size {
            let e = Error::new(
                ErrorKind::QueueFull,
                format!("the queue of {} is full ({} tasks)", self.name, self.cfg.queue_size),
            );
            return Err(SubmitError::new(e, request));
        }
        if self.tasks.contains_key(&id) {
            let e = Error::new(ErrorKind::InvalidRequest, format!("task {id} is already live"));
            return Err(SubmitError::new(e, request));
        }
        let opts = &request.options;
        let priority = opts.priority.unwrap_or(0);
        let max_retries = opts.max_retries.unwrap_or(self.cfg.max_retries);
        let timeout = Duration::from_millis(opts.timeout.unwrap_or(self.cfg.timeout_ms));
        let delay = opts.delay.unwrap_or(0);
        self.shared.store.insert(TaskRecord::new(id.clone(), &self.name, priority, max_retries));
        self.seq += 1;
        let mut pending = Pending {
            data: Arc::new(request.data),
            priority,
            seq: self.seq,
            timeout,
            max_retries,
            attempt: 0,
            state: State::Queued,
            ready_since: Instant::now(),
            waiters: waiter.into_iter().collect(),
        };
        if delay > 0 {
            pending.state = State::Waiting(Self::wake_later(id.clone(), Duration::from_millis(delay), ctx));
            self.tasks.insert(id.clone(), pending);
        } else {
            self.tasks.insert(id.clone(), pending);
            self.push_ready(&id);
            self.dispatch(ctx);
        }
        Ok(id)
    }

    fn wake_later(id: TaskId, after: Duration, ctx: &mut Context<Self>) -> SpawnHandle {
        ctx.run_later(after, move |act, ctx| {
            if let Some(p) = act.tasks.get_mut(&id)
                && matches!(p.state, State::Waiting(_))
            {
                p.state = State::Queued;
                act.push_ready(&id);
                act.dispatch(ctx);
            }
        })
    }

    fn push_ready(&mut self, id: &TaskId) {
        if let Some(p) = self.tasks.get_mut(id) {
            p.ready_since = Instant::now();
            self.queue.push(QueueKey { priority: p.priority, seq: p.seq, item: id.clone() });
            self.ready += 1;
        }
    }

    /// Pops the next ready task, skipping entries of tasks that left the queue (cancelled).
    fn pop_ready(&mut self) -> Option<TaskId> {
        while let Some(key) = self.queue.pop() {
            let live = self
                .tasks
                .get(&key.item)
                .is_some_and(|p| matches!(p.state, State::Queued) && p.seq == key.seq);
            if live {
                // `ready` drops when the task leaves the `Queued` state (assign or finish).
                return Some(key.item);
            }
        }
        None
    }

    // ===== dispatch and workers =====

    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while self.ready > 0 {
            let Some(worker) = self.idle.pop() else { break };
            let Some(id) = self.pop_ready() else {
                self.idle.push(worker);
                break;
            };
            self.assign(id, worker, ctx);
        }
        self.ensure_workers(ctx);
    }

    fn assign(&mut self, id: TaskId, worker: WorkerId, ctx: &mut Context<Self>) {
        let (Some(p), Some(slot)) = (self.tasks.get_mut(&id), self.workers.get_mut(&worker)) else {
            return;
        };
        if matches!(p.state, State::Queued) {
            self.ready -= 1;
        }
        p.attempt += 1;
        let attempt = p.attempt;
        let timer_id = id.clone();
        let timer = ctx.run_later(p.timeout, move |act, ctx| act.on_timeout(timer_id, attempt, ctx));
        p.state = State::Running { worker: worker.clone(), timer, started: Instant::now() };
        slot.state = WState::Busy;
        slot.task = Some(id.clone());
        let pid = slot.pid;
        slot.addr.do_send(Run { id: id.clone(), data: p.data.clone(), attempt });
        self.shared.store.update(&id, |r| {
            r.status = TaskStatus::Running;
            r.attempts = attempt;
            r.started_at = Some(now_ms());
            r.progress = None;
            r.worker_id = Some(worker.to_string());
            r.worker_pid = pid;
        });
        self.shared.events.emit(|| EventKind::TaskAssigned {
            task_id: id.to_string(),
            task_type: self.name.to_string(),
            worker_id: worker.to_string(),
            attempt,
        });
    }

    /// Starts the workers the ready queue (and `min_workers`) calls for, within the limits.
    fn ensure_workers(&mut self, ctx: &mut Context<Self>) {
        if self.draining.is_some() {
            return;
        }
        let starting = self.workers.values().filter(|w| w.state == WState::Starting).count();
        let live = self.workers.values().filter(|w| w.state != WState::Stopping).count();
        let demand = self.ready.saturating_sub(starting + self.idle.len());
        let below_min = self.cfg.min_workers.saturating_sub(live);
        let want = demand.max(below_min).min(self.cfg.max_concurrent.saturating_sub(self.workers.len()));
        for _ in 0..want {
            if !self.shared.try_take_slot() {
                if !self.starved {
                    self.starved = true;
                    self.shared.set_starved(&self.name, true);
                    self.supervisor.do_send(SlotWanted);
                }
                return;
            }
            self.start_worker(ctx);
        }
        if self.starved && demand <= want {
            self.starved = false;
            self.shared.set_starved(&self.name, false);
        }
    }

    /// Starts one worker in a slot already taken.
    fn start_worker(&mut self, ctx: &mut Context<Self>) -> WorkerId {
        let id = self.shared.next_worker_id(&self.name);
        let kind = match (&self.handler, &self.command) {
            (Some(handler), _) => WorkerKind::InProcess { handler: handler.clone() },
            (None, Some(command)) => WorkerKind::Process { command: command.clone() },
            // Validation at start-up rules this out; a worker without a way to run fails to spawn.
            (None, None) => WorkerKind::Process { command: Arc::from(vec![String::new()]) },
        };
        let addr = Worker::new(id.clone(), self.name.clone(), ctx.address(), kind).start();
        let timer_id = id.clone();
        let startup_timer = ctx.run_later(STARTUP_TIMEOUT, move |act, _| {
            if act.workers.get(&timer_id).is_some_and(|w| w.state == WState::Starting) {
                act.worker_error(&timer_id, "did not answer its first ping in time".into());
                act.stop_worker(&timer_id, true, "startup_timeout");
            }
        });
        let now = Instant::now();
        self.workers.insert(
            id.clone(),
            Slot {
                addr,
                state: WState::Starting,
                task: None,
                pid: None,
                tasks_done: 0,
                born: now,
                idle_since: now,
                startup_timer: Some(startup_timer),
                retire: false,
                replace: false,
            },
        );
        log::info!("worker {id} starting ({})", self.name);
        id
    }

    /// Asks a worker to stop; it stays counted until its exit is reported.
    fn stop_worker(&mut self, id: &WorkerId, kill: bool, reason: &str) {
        let Some(slot) = self.workers.get_mut(id) else { return };
        if slot.state == WState::Stopping {
            return;
        }
        slot.state = WState::Stopping;
        slot.addr.do_send(StopWorker { kill });
        self.idle.retain(|w| w != id);
        log::info!("worker {id} stopping ({reason})");
    }

    fn worker_error(&self, id: &WorkerId, error: String) {
        log::warn!("worker {id}: {error}");
        self.shared.events.emit(|| EventKind::WorkerError {
            worker_id: id.to_string(),
            task_type: self.name.to_string(),
            error,
        });
    }

    /// A worker finished a task: reuse it, or retire it (recycling, another type's need).
    fn worker_free(&mut self, id: &WorkerId, ctx: &mut Context<Self>) {
        let Some(slot) = self.workers.get_mut(id) else { return };
        slot.task = None;
        slot.tasks_done += 1;
        if slot.state != WState::Busy {
            return;
        }
        slot.state = WState::Idle;
        slot.idle_since = Instant::now();
        let recycle = self.cfg.max_tasks_per_worker.is_some_and(|max| slot.tasks_done >= max);
        if slot.retire {
            self.stop_worker(id, false, "scaled down");
        } else if recycle {
            self.stop_worker(id, false, "recycled");
        } else if self.draining.is_some() {
            self.stop_worker(id, false, "shutdown");
        } else if self.should_yield() {
            self.stop_worker(id, false, "yielded to a starved type");
        } else {
            self.idle.push(id.clone());
        }
        self.dispatch(ctx);
    }

    /// Whether to give a worker slot to a type that cannot start one: when this type has no
    /// ready work, or holds more than one worker while another type holds none.
    fn should_yield(&self) -> bool {
        if !self.shared.others_starved(&self.name) {
            return false;
        }
        let live = self.workers.values().filter(|w| w.state != WState::Stopping).count();
        live > self.cfg.min_workers && (self.ready == 0 || live > 1)
    }

    fn on_exit(&mut self, id: &WorkerId, code: Option<i32>, signal: Option<i32>, ctx: &mut Context<Self>) {
        let Some(slot) = self.workers.remove(id) else { return };
        self.idle.retain(|w| w != id);
        self.shared.release_slot();
        if self.shared.any_starved() {
            self.supervisor.do_send(SlotFreed);
        }
        if let Some(timer) = slot.startup_timer {
            ctx.cancel_future(timer);
        }
        let how = match (code, signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended".to_string(),
        };
        let reason = match slot.state {
            WState::Stopping => "stopped",
            WState::Busy => "crashed",
            WState::Starting => "failed_to_start",
            WState::Idle => "exited",
        };
        log::info!("worker {id} {how} ({reason})");
        self.shared.events.emit(|| EventKind::WorkerExited {
            worker_id: id.to_string(),
            task_type: self.name.to_string(),
            reason: reason.to_string(),
            code,
        });
        if slot.state == WState::Starting {
            self.early_exits += 1;
            if self.early_exits >= MAX_EARLY_EXITS {
                self.early_exits = 0;
                self.fail_ready(&format!("worker of {} {how} before it was ready", self.name));
            }
        }
        if let (WState::Busy, Some(task)) = (slot.state, slot.task) {
            self.fail_attempt(&task, Failure::Crash(format!("worker {id} {how}")), ctx);
        }
        if slot.replace
            && self.draining.is_none()
            && self.workers.len() < self.cfg.max_concurrent
            && self.shared.try_take_slot()
        {
            self.start_worker(ctx);
        }
        self.check_drained();
        self.dispatch(ctx);
    }

    /// Fails every ready task at once: no worker of this type can be started.
    fn fail_ready(&mut self, why: &str) {
        while let Some(id) = self.pop_ready() {
            self.finish(&id, TaskStatus::Failed, Err(why.to_string()), None);
        }
    }

    // ===== outcomes =====

    fn on_report(&mut self, msg: WorkerReport, ctx: &mut Context<Self>) {
        let WorkerReport { worker, report } = msg;
        match report {
            Report::Spawned { pid } => {
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.pid = pid;
                }
                self.shared.events.emit(|| EventKind::WorkerCreated {
                    worker_id: worker.to_string(),
                    task_type: self.name.to_string(),
                    pid,
                });
            }
            Report::SpawnFailed(e) => {
                // The actor stopped without a process: nothing else will report an exit.
                self.worker_error(&worker, e.clone());
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.state = WState::Stopping;
                }
                self.fail_ready(&e);
                self.on_exit(&worker, None, None, ctx);
            }
            Report::Pong(n) => {
                log::trace!("worker {worker} pong {n}");
                let Some(slot) = self.workers.get_mut(&worker) else { return };
                if slot.state == WState::Starting {
                    slot.state = WState::Idle;
                    slot.idle_since = Instant::now();
                    if let Some(t) = slot.startup_timer.take() {
                        ctx.cancel_future(t);
                    }
                    self.early_exits = 0;
                    self.idle.push(worker.clone());
                    log::info!("worker {worker} ready");
                    self.shared.events.emit(|| EventKind::WorkerReady {
                        worker_id: worker.to_string(),
                        task_type: self.name.to_string(),
                    });
                    if self.draining.is_some() {
                        self.stop_worker(&worker, false, "shutdown");
                    }
                    self.dispatch(ctx);
                }
            }
            Report::Progress { id, progress, stage } => {
                if !self.runs_on(&id, &worker) {
                    return;
                }
                let stage2 = stage.clone();
                self.shared.store.update(&id, |r| r.progress = Some(Progress { progress, stage: stage2 }));
                self.shared.events.emit(|| EventKind::TaskProgress {
                    task_id: id.to_string(),
                    task_type: self.name.to_string(),
                    worker_id: worker.to_string(),
                    progress,
                    stage,
                });
            }
            Report::Done { id, outcome } => {
                if !self.runs_on(&id, &worker) {
                    log::warn!("worker {worker} answered for task {id}, which it does not run");
                    return;
                }
                match outcome {
                    Ok(result) => self.complete(&id, &worker, result, ctx),
                    Err(e) => self.fail_attempt(&id, Failure::Error(e), ctx),
                }
                self.worker_free(&worker, ctx);
            }
            Report::Crashed { id, message } => {
                if self.runs_on(&id, &worker) {
                    // The slot is replaced like a crashed process.
                    self.stop_worker(&worker, true, "crashed");
                    self.fail_attempt(&id, Failure::Crash(message), ctx);
                }
            }
            Report::Invalid(why) => self.worker_error(&worker, format!("invalid line: {why}")),
            Report::Exited { code, signal } => self.on_exit(&worker, code, signal, ctx),
        }
    }

    fn runs_on(&self, id: &TaskId, worker: &WorkerId) -> bool {
        self.tasks
            .get(id)
            .is_some_and(|p| matches!(&p.state, State::Running { worker: w, .. } if w == worker))
    }

    fn complete(&mut self, id: &TaskId, worker: &WorkerId, result: Value, ctx: &mut Context<Self>) {
        let Some(p) = self.tasks.get(id) else { return };
        if let State::Running { timer, started, .. } = p.state {
            ctx.cancel_future(timer);
            let ms = started.elapsed().as_millis() as u64;
            self.busy_ms_total += ms;
            self.shared.events.emit(|| EventKind::TaskCompleted {
                task_id: id.to_string(),
                task_type: self.name.to_string(),
                worker_id: worker.to_string(),
                duration_ms: ms,
            });
        }
        self.completed += 1;
        self.finish(id, TaskStatus::Completed, Ok(result), None);
    }

    fn on_timeout(&mut self, id: TaskId, attempt: u32, ctx: &mut Context<Self>) {
        let Some(p) = self.tasks.get(&id) else { return };
        let State::Running { worker, .. } = &p.state else { return };
        if p.attempt != attempt {
            return;
        }
        let worker = worker.clone();
        self.stop_worker(&worker, true, "task timed out");
        self.fail_attempt(&id, Failure::Timeout, ctx);
    }

    /// An attempt ended without a result: retry with backoff while attempts remain.
    fn fail_attempt(&mut self, id: &TaskId, failure: Failure, ctx: &mut Context<Self>) {
        let Some(p) = self.tasks.get_mut(id) else { return };
        let (worker, running_timer) = match &p.state {
            State::Running { worker, timer, .. } => (Some(worker.clone()), Some(*timer)),
            State::Waiting(handle) => {
                ctx.cancel_future(*handle);
                (None, None)
            }
            State::Queued => (None, None),
        };
        if let Some(t) = running_timer {
            ctx.cancel_future(t);
        }
        let (message, retryable, final_status) = match failure {
            Failure::Error(e) => {
                let status = if e.retryable { TaskStatus::Dead } else { TaskStatus::Failed };
                (e.message, e.retryable, status)
            }
            Failure::Crash(m) => (m, true, TaskStatus::Dead),
            Failure::Timeout => {
                (format!("timed out after {} ms", p.timeout.as_millis()), true, TaskStatus::TimedOut)
            }
            Failure::Cancelled => ("cancelled".to_string(), false, TaskStatus::Cancelled),
            Failure::Shutdown => ("shutdown".to_string(), false, TaskStatus::Failed),
        };
        let retry = retryable && p.attempt <= p.max_retries && self.draining.is_none();
        let status = if retry { TaskStatus::Queued } else { final_status };
        {
            self.shared.events.emit(|| EventKind::TaskFailed {
                task_id: id.to_string(),
                task_type: self.name.to_string(),
                worker_id: worker.as_ref().map(|w| w.to_string()),
                error: message.clone(),
                status,
            });
        }
        if retry {
            let backoff = retry_backoff(self.cfg.retry_delay_ms, p.attempt);
            log::info!("task {id} attempt {} failed ({message}); retry in {backoff:?}", p.attempt);
            p.state = State::Waiting(Self::wake_later(id.clone(), backoff, ctx));
            self.shared.store.update(id, |r| {
                r.status = TaskStatus::Queued;
                r.error = Some(message);
            });
        } else {
            if status != TaskStatus::Cancelled {
                self.failed += 1;
            }
            self.finish(id, status, Err(message), worker);
        }
    }

    /// Ends a task: writes its record, answers its waiters, dead-letters it if out of attempts.
    fn finish(
        &mut self,
        id: &TaskId,
        status: TaskStatus,
        outcome: Result<Value, String>,
        _worker: Option<WorkerId>,
    ) {
        let Some(p) = self.tasks.remove(id) else { return };
        if matches!(p.state, State::Queued) {
            // Its heap entry stays behind and is skipped when popped.
            self.ready -= 1;
        }
        let record = self.shared.store.update(id, |r| {
            r.status = status;
            r.finished_at = Some(now_ms());
            match outcome {
                Ok(v) => {
                    r.result = Some(v);
                    r.error = None;
                }
                Err(e) => r.error = Some(e),
            }
        });
        if matches!(status, TaskStatus::Dead | TaskStatus::TimedOut) {
            self.dead.push_back(DeadLetter {
                id: id.clone(),
                data: p.data,
                priority: p.priority,
                timeout: p.timeout,
                max_retries: p.max_retries,
            });
            while self.dead.len() > self.shared.max_dead_letters {
                self.dead.pop_front();
            }
        }
        if let Some(record) = record {
            for w in p.waiters {
                let _ = w.send(record.clone());
            }
        }
        if let Some(d) = &mut self.draining
            && status == TaskStatus::Completed
        {
            d.report.finished_in_grace += 1;
        }
    }

    // ===== shutdown =====

    fn check_drained(&mut self) {
        let Some(d) = &mut self.draining else { return };
        if self.workers.is_empty()
            && let Some(reply) = d.reply.take()
        {
            let _ = reply.send(d.report.clone());
        }
    }

    fn stop_all_workers(&mut self, kill: bool) {
        let ids: Vec<WorkerId> = self.workers.keys().cloned().collect();
        for id in ids {
            self.stop_worker(&id, kill, "shutdown");
        }
    }

    fn stats(&self) -> TypeStats {
        let count = |s: WState| self.workers.values().filter(|w| w.state == s).count();
        let oldest = self
            .tasks
            .values()
            .filter(|p| matches!(p.state, State::Queued))
            .map(|p| p.ready_since.elapsed().as_millis() as u64)
            .max()
            .unwrap_or(0);
        TypeStats {
            total: self.workers.len() - count(WState::Stopping),
            available: count(WState::Idle),
            busy: count(WState::Busy),
            queued: self.waiting(),
            tasks_completed: self.completed,
            tasks_failed: self.failed,
            avg_task_ms: if self.completed == 0 {
                0.0
            } else {
                self.busy_ms_total as f64 / self.completed as f64
            },
            ready: self.ready,
            oldest_wait_ms: oldest,
            dead_letters: self.dead.len(),
        }
    }
}

impl Actor for TypePool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many handles talk to one pool; the mailbox bound only applies to `send`.
        ctx.set_mailbox_capacity(4096);
        self.ensure_workers(ctx);
    }
}

// ===== impl Handler =====

impl Handler<Enqueue> for TypePool {
    type Result = Result<TaskId, SubmitError>;

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) -> Self::Result {
        self.enqueue(msg, ctx)
    }
}

impl Handler<Watch> for TypePool {
    type Result = bool;

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> bool {
        match self.tasks.get_mut(&msg.0) {
            Some(p) => {
                p.waiters.push(msg.1);
                true
            }
            None => false,
        }
    }
}

impl Handler<CancelTask> for TypePool {
    type Result = Result<TaskRecord, Error>;

    fn handle(&mut self, msg: CancelTask, ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.0;
        let Some(p) = self.tasks.get(&id) else {
            return match self.shared.store.get(&id) {
                Some(r) => {
                    Err(Error::new(ErrorKind::Finished, format!("task {id} already ended ({})", r.status)))
                }
                None => Err(Error::new(ErrorKind::UnknownTask, format!("no task {id}"))),
            };
        };
        if let State::Running { worker, .. } = &p.state {
            let worker = worker.clone();
            self.stop_worker(&worker, true, "task cancelled");
        }
        self.fail_attempt(&id, Failure::Cancelled, ctx);
        self.dispatch(ctx);
        self.shared.store.get(&id).ok_or_else(|| Error::new(ErrorKind::UnknownTask, format!("no task {id}")))
    }
}

impl Handler<GetTypeStats> for TypePool {
    type Result = MessageResult<GetTypeStats>;

    fn handle(&mut self, _: GetTypeStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<GetWorkers> for TypePool {
    type Result = MessageResult<GetWorkers>;

    fn handle(&mut self, _: GetWorkers, _: &mut Context<Self>) -> Self::Result {
        let mut list: Vec<WorkerInfo> = self
            .workers
            .iter()
            .map(|(id, w)| WorkerInfo {
                id: id.to_string(),
                task_type: self.name.to_string(),
                pid: w.pid,
                state: w.state.name(),
                task_id: w.task.as_ref().map(|t| t.to_string()),
                tasks_done: w.tasks_done,
                uptime_ms: w.born.elapsed().as_millis() as u64,
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        MessageResult(list)
    }
}

impl Handler<GetDeadLetters> for TypePool {
    type Result = MessageResult<GetDeadLetters>;

    fn handle(&mut self, _: GetDeadLetters, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.dead.iter().filter_map(|d| self.shared.store.get(&d.id)).collect())
    }
}

impl Handler<Requeue> for TypePool {
    type Result = Result<TaskId, Error>;

    fn handle(&mut self, msg: Requeue, ctx: &mut Context<Self>) -> Self::Result {
        if self.draining.is_some() {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        let Some(pos) = self.dead.iter().position(|d| d.id == msg.0) else {
            return Err(Error::new(
                ErrorKind::UnknownTask,
                format!("task {} is not in the dead-letter list of {}", msg.0, self.name),
            ));
        };
        let Some(d) = self.dead.remove(pos) else {
            return Err(Error::new(ErrorKind::UnknownTask, format!("no task {}", msg.0)));
        };
        self.seq += 1;
        let mut record = TaskRecord::new(d.id.clone(), &self.name, d.priority, d.max_retries);
        if let Some(old) = self.shared.store.get(&d.id) {
            record.created_at = old.created_at;
        }
        self.shared.store.insert(record);
        self.tasks.insert(
            d.id.clone(),
            Pending {
                data: d.data,
                priority: d.priority,
                seq: self.seq,
                timeout: d.timeout,
                max_retries: d.max_retries,
                attempt: 0,
                state: State::Queued,
                ready_since: Instant::now(),
                waiters: Vec::new(),
            },
        );
        self.push_ready(&d.id);
        self.dispatch(ctx);
        Ok(d.id)
    }
}

impl Handler<Scale> for TypePool {
    type Result = Result<usize, Error>;

    fn handle(&mut self, msg: Scale, ctx: &mut Context<Self>) -> Self::Result {
        if self.draining.is_some() {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        let live = self.workers.values().filter(|w| w.state != WState::Stopping).count();
        if msg.up {
            let room = self.cfg.max_concurrent.saturating_sub(self.workers.len());
            if msg.count > room {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "cannot add {} workers to {}: max_concurrent is {} and {} are alive",
                        msg.count,
                        self.name,
                        self.cfg.max_concurrent,
                        self.workers.len()
                    ),
                ));
            }
            let free = self.shared.max_workers.saturating_sub(self.shared.slots_used());
            if msg.count > free {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "cannot add {} workers: max_workers is {} and {free} slots are free",
                        msg.count, self.shared.max_workers
                    ),
                ));
            }
            for _ in 0..msg.count {
                if !self.shared.try_take_slot() {
                    break;
                }
                self.start_worker(ctx);
            }
            self.shared.events.emit(|| EventKind::ScaleUp {
                task_type: self.name.to_string(),
                workers: live + msg.count,
                reason: "manual".into(),
            });
            Ok(live + msg.count)
        } else {
            let floor = self.cfg.min_workers;
            if live < msg.count + floor {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "cannot remove {} workers from {}: {live} are alive and min_workers is {floor}",
                        msg.count, self.name
                    ),
                ));
            }
            // Idle workers go first; busy ones finish their task and are then retired.
            let mut victims: Vec<WorkerId> = self.idle.iter().rev().take(msg.count).cloned().collect();
            if victims.len() < msg.count {
                let extra = self
                    .workers
                    .iter()
                    .filter(|(id, w)| w.state != WState::Stopping && !w.retire && !victims.contains(id))
                    .map(|(id, _)| id.clone())
                    .take(msg.count - victims.len())
                    .collect::<Vec<_>>();
                victims.extend(extra);
            }
            for id in &victims {
                if let Some(slot) = self.workers.get_mut(id).filter(|w| w.state == WState::Busy) {
                    // Let the running task finish: retire the worker when it is free.
                    slot.retire = true;
                    continue;
                }
                self.stop_worker(id, false, "scaled down");
            }
            self.shared.events.emit(|| EventKind::ScaleDown {
                task_type: self.name.to_string(),
                workers: live - msg.count,
                reason: "manual".into(),
            });
            Ok(live - msg.count)
        }
    }
}

impl Handler<RestartWorker> for TypePool {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: RestartWorker, ctx: &mut Context<Self>) -> Self::Result {
        let Some((id, slot)) = self.workers.iter().find(|(id, _)| ***id == *msg.0) else {
            return Err(Error::new(
                ErrorKind::UnknownWorker,
                format!("no worker {} in {}", msg.0, self.name),
            ));
        };
        let id = id.clone();
        if let (WState::Busy, Some(task)) = (slot.state, slot.task.clone()) {
            // The task did nothing wrong: it goes back to the queue without spending an attempt.
            if let Some(p) = self.tasks.get_mut(&task) {
                if let State::Running { timer, .. } = p.state {
                    ctx.cancel_future(timer);
                }
                p.attempt = p.attempt.saturating_sub(1);
                p.state = State::Queued;
                self.shared.store.update(&task, |r| {
                    r.status = TaskStatus::Queued;
                    r.attempts = r.attempts.saturating_sub(1);
                });
                self.push_ready(&task);
            }
        }
        if let Some(slot) = self.workers.get_mut(&id) {
            slot.replace = true;
        }
        self.stop_worker(&id, true, "restart");
        self.dispatch(ctx);
        Ok(())
    }
}

impl Handler<Drain> for TypePool {
    type Result = ResponseFuture<ShutdownReport>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.draining.is_none() {
            self.draining = Some(DrainState { reply: Some(tx), report: ShutdownReport::default() });
            let waiting: Vec<TaskId> = self
                .tasks
                .iter()
                .filter(|(_, p)| !matches!(p.state, State::Running { .. }))
                .map(|(id, _)| id.clone())
                .collect();
            for id in &waiting {
                self.fail_attempt(id, Failure::Shutdown, ctx);
            }
            if let Some(d) = &mut self.draining {
                d.report.failed_waiting = waiting.len();
            }
            let idle: Vec<WorkerId> = self
                .workers
                .iter()
                .filter(|(_, w)| w.state != WState::Busy)
                .map(|(id, _)| id.clone())
                .collect();
            for id in idle {
                self.stop_worker(&id, false, "shutdown");
            }
            ctx.run_later(msg.timeout, |act, ctx| {
                let running: Vec<TaskId> = act.tasks.keys().cloned().collect();
                if let Some(d) = &mut act.draining {
                    d.report.failed_running = running.len();
                }
                for id in &running {
                    act.fail_attempt(id, Failure::Shutdown, ctx);
                }
                act.stop_all_workers(true);
                act.check_drained();
            });
            self.check_drained();
        } else {
            // A second drain request waits for nothing: the first one owns the reply.
            let _ = tx.send(ShutdownReport::default());
        }
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}

impl Handler<Poke> for TypePool {
    type Result = ();

    fn handle(&mut self, _: Poke, ctx: &mut Context<Self>) {
        self.dispatch(ctx);
    }
}

impl Handler<ReleaseIdle> for TypePool {
    type Result = ();

    fn handle(&mut self, _: ReleaseIdle, _: &mut Context<Self>) {
        let live = self.workers.values().filter(|w| w.state != WState::Stopping).count();
        if live > self.cfg.min_workers
            && self.ready == 0
            && let Some(id) = self.idle.first().cloned()
        {
            self.stop_worker(&id, false, "yielded to a starved type");
        }
    }
}

impl Handler<WorkerReport> for TypePool {
    type Result = ();

    fn handle(&mut self, msg: WorkerReport, ctx: &mut Context<Self>) {
        self.on_report(msg, ctx);
    }
}
