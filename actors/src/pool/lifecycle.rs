//! Starting and stopping workers: demand-driven starts, the stop of a worker and the report
//! of its exit, and what a worker that finished a task does next.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context};
use tokio::time::Instant;

use super::stop::StopReason;
use super::timeouts::GHOST_ATTEMPT;
use super::workers::{Slot, WorkerState};
use super::{Held, TypePool};
use crate::events::EventKind;
use crate::messages::{SlotFreed, SlotWanted, StopWorker, WorkerId};
use crate::policy::admission::{self, Admission, Asker};
use crate::policy::manual;
use crate::policy::retry::Failure;
use crate::worker::{Worker, WorkerKind};

impl TypePool {
    /// Starts the workers the ready queue (and `min_workers`) calls for, within the limits.
    pub(super) fn ensure_workers(&mut self, ctx: &mut Context<Self>) {
        if self.draining.is_some() {
            self.scale_target = None;
            self.end_gpu_wait();
            return;
        }
        let starting = self.workers.count(WorkerState::Starting);
        let live = self.live_workers();
        let demand = self.queue.ready().saturating_sub(starting + self.workers.idle().len());
        let probe = self.wants_probe();
        // Workers a manual scale-up asked for that found no GPU room yet (from `live`, counted
        // once: this runs for every task).
        let owed = manual::owed(self.scale_target, live);
        if owed == 0 && self.scale_target.is_some() {
            self.scale_target = None;
        }
        if demand == 0 && !probe && owed == 0 && live >= self.min_workers().max(self.cfg.min_workers) {
            // The usual case under load: nothing to start, whoever is starved. A type that
            // was starved needs no slot now (the lender's count is read without its lock).
            self.blocked = None;
            self.end_gpu_wait();
            if self.shared.lender.any_starved() {
                self.shared.lender.set_starved(&self.name, false);
            }
            return;
        }
        let floor = admission::floor(
            self.cfg.min_workers,
            self.min_workers(),
            self.shared.lender.others_starved(&self.name),
        );
        let below_min = floor.saturating_sub(live);
        let wanted = demand.max(below_min).max(owed).max(usize::from(probe));
        let input = self.admission_input(Asker::Demand, wanted, live, starting);
        let admission =
            admission::admit(&input, || self.start_waiting(), |live| self.shared.can_start(&self.cfg, live));
        match admission {
            Admission::Full { .. } => {
                self.blocked = None;
                self.end_gpu_wait();
                return;
            }
            Admission::Start(_) | Admission::Blocked(_) => {}
            Admission::Draining | Admission::Backoff | Admission::NoSlots { .. } => return,
        }
        if probe && !self.check_command(ctx) {
            return;
        }
        let want = match admission {
            Admission::Start(want) => want,
            Admission::Blocked(why) => {
                if self.blocked.as_deref() != Some(why.as_str()) {
                    log::info!("{}: not starting workers: {why}", self.name);
                }
                self.blocked = Some(why);
                // What it waits for now is the machine, not GPU room.
                self.end_gpu_wait();
                return;
            }
            _ => return,
        };
        self.blocked = None;
        let started = self.start_workers(want, ctx);
        if owed > 0 && started >= owed {
            self.scale_target = None;
        }
        // A worker that fits on no GPU waits for room there (the ledger says why), not for a
        // slot: a slot lent to it would go unused.
        let gpu_wait = started < want && self.gpu_waiting;
        if gpu_wait && self.shared.lender.any_starved() {
            self.shared.lender.set_starved(&self.name, false);
        }
        // Every slot is taken. Only real work (or the due retry of a type that gave up) may
        // ask other types for a slot; keeping workers warm may not.
        if started < want
            && !gpu_wait
            && (demand > 0 || probe)
            && self.shared.lender.set_starved(&self.name, true)
        {
            self.slots.wanted.do_send(SlotWanted);
        }
        if started > 0 {
            let reason = match () {
                _ if demand > 0 => "demand",
                _ if owed > 0 => "manual",
                _ => "min_workers",
            };
            self.scaled(true, live + started, reason);
        }
        if started < want {
            return;
        }
        if demand <= want {
            self.shared.lender.set_starved(&self.name, false);
        }
    }

    /// Starts up to `n` workers, each in a tree-wide slot and, for a type that needs GPUs,
    /// placed on its GPUs, until the slots or the GPU room run out; returns how many started.
    /// A worker that fits on no GPU leaves the type waiting for room (see `GpuLedger`).
    pub(super) fn start_workers(&mut self, n: usize, ctx: &mut Context<Self>) -> usize {
        let mut started = 0;
        while started < n {
            if !self.shared.lender.try_take() {
                // Out of slots, not of GPU room: whatever wait the ledger had is over.
                self.end_gpu_wait();
                break;
            }
            let id = self.shared.next_worker_id(&self.name);
            let Ok(gpus) = self.shared.gpus.reserve(&id, &self.name, &self.cfg) else {
                self.shared.lender.release();
                self.gpu_waiting = true;
                break;
            };
            // A placement clears the type's wait in the ledger.
            self.gpu_waiting = false;
            self.start_worker(id, &gpus, ctx);
            started += 1;
        }
        started
    }

    /// Ends this type's wait for GPU room in the ledger, if it left one (so that the
    /// dispatch path takes the ledger's lock only then).
    pub(super) fn end_gpu_wait(&mut self) {
        if self.gpu_waiting {
            self.gpu_waiting = false;
            self.shared.gpus.clear_wait(&self.name);
        }
    }

    /// Starts worker `id`, placed on `gpus`, in a slot already taken.
    fn start_worker(&mut self, id: WorkerId, gpus: &[String], ctx: &mut Context<Self>) {
        let max_line_bytes = usize::try_from(self.cfg.max_output_line_mb << 20).unwrap_or(usize::MAX);
        let env = self.shared.gpus.env(gpus);
        let kind = match (&self.handler, &self.command) {
            (Some(_), _) => WorkerKind::InProcess,
            (None, Some(command)) => WorkerKind::Process { command: command.clone(), max_line_bytes, env },
            // Validation at start-up rules this out; a worker without a way to run fails to spawn.
            (None, None) => WorkerKind::Process { command: Arc::from(Vec::new()), max_line_bytes, env },
        };
        let addr = Worker::new(id.clone(), self.name.clone(), ctx.address().recipient(), kind).start();
        let timer_id = id.clone();
        let start_timeout = Duration::from_millis(self.cfg.start_timeout_ms);
        // A handler slot is ready when its actor starts: only a process can fail to start.
        let startup_timer = self.handler.is_none().then(|| {
            ctx.run_later(start_timeout, move |act, ctx| {
                let Some(born) =
                    act.workers.get(&timer_id).filter(|w| w.state == WorkerState::Starting).map(|w| w.born)
                else {
                    return;
                };
                let why = format!("did not answer its first ping within {} ms", start_timeout.as_millis());
                act.worker_error(&timer_id, why.clone());
                act.stop_worker(&timer_id, true, StopReason::StartupTimeout);
                act.start_failed(format!("worker {timer_id} {why}"), Some(born), ctx);
            })
        });
        self.workers.insert(id.clone(), Slot::starting(addr, startup_timer, gpus.to_vec(), Instant::now()));
        if gpus.is_empty() {
            log::info!("worker {id} starting ({})", self.name);
        } else {
            let simulated = if self.shared.gpus.simulated() { "simulated " } else { "" };
            log::info!("worker {id} starting ({}) on {simulated}GPU(s) {}", self.name, gpus.join(","));
        }
    }

    /// Asks a worker to stop; it stays counted until its exit is reported.
    pub(super) fn stop_worker(&mut self, id: &WorkerId, kill: bool, reason: StopReason) {
        let Some(slot) = self.workers.get_mut(id) else { return };
        if let WorkerState::Ghost(deadline) = slot.state {
            // Its answer will be dropped as that of a stopping worker.
            self.deadlines.remove(&deadline);
        }
        if slot.state == WorkerState::Stopping {
            return;
        }
        slot.state = WorkerState::Stopping;
        slot.stop_reason = Some(reason);
        let sent_ahead = !slot.queued.is_empty();
        if let Some(abort) = slot.abort.take() {
            abort.abort();
        }
        // Tasks sent ahead must not start once they are back in the queue, and a worker over its
        // memory limit gets no grace to take more.
        let at_once = sent_ahead || reason.kills_at_once();
        slot.addr.do_send(StopWorker { kill: kill || sent_ahead, at_once });
        self.workers.unidle(id);
        log::info!("worker {id} stopping ({reason})");
        if sent_ahead {
            // Killed before it reads them: they go back to the queue.
            self.requeue_sent(id);
        }
    }

    pub(super) fn worker_error(&self, id: &WorkerId, error: String) {
        log::warn!("worker {id}: {error}");
        self.shared.events.emit(|| EventKind::WorkerError {
            worker_id: id.to_string(),
            task_type: self.name.to_string(),
            error,
        });
    }

    /// A worker finished a task: reuse it, or retire it (recycling, another type's need).
    pub(super) fn worker_free(&mut self, id: &WorkerId, ctx: &mut Context<Self>) {
        let Some(slot) = self.workers.get_mut(id) else { return };
        slot.task = None;
        slot.abort = None;
        slot.tasks_done += 1;
        if slot.state != WorkerState::Busy {
            return;
        }
        // A task sent ahead is already in the worker's pipe: it starts now.
        if let Some((next, timeout)) = slot.queued.pop_front() {
            let held = self.queue.get(&next).and_then(|p| p.held());
            let sent_here = matches!(held, Some(Held::Sent { worker }) if worker == id);
            if sent_here {
                self.start_attempt(&next, id, ctx);
            } else {
                // Cancelled after it was sent: the worker runs it anyway. It stays busy, bounded by
                // the task's timeout, until that result arrives and is dropped.
                let deadline = self.set_deadline(&next, GHOST_ATTEMPT, Instant::now() + timeout, ctx);
                if let Some(slot) = self.workers.get_mut(id) {
                    slot.task = Some(next);
                    slot.state = WorkerState::Ghost(deadline);
                }
            }
            self.dispatch(ctx);
            return;
        }
        slot.state = WorkerState::Idle;
        slot.idle_since = Instant::now();
        let recycle = self.cfg.max_tasks_per_worker.is_some_and(|max| slot.tasks_done >= max);
        if slot.retire {
            self.stop_worker(id, false, StopReason::ScaledDown);
        } else if recycle {
            self.stop_worker(id, false, StopReason::Recycled);
        } else if self.draining.is_some() {
            self.stop_worker(id, false, StopReason::Shutdown);
        } else if self.shared.lender.others_starved(&self.name)
            && admission::should_yield(self.live_workers(), self.cfg.min_workers, self.queue.ready())
        {
            self.stop_worker(id, false, StopReason::Yielded);
        } else {
            self.workers.push_idle(id.clone());
        }
        self.dispatch(ctx);
    }

    pub(super) fn on_exit(
        &mut self,
        id: &WorkerId,
        code: Option<i32>,
        signal: Option<i32>,
        ctx: &mut Context<Self>,
    ) {
        self.requeue_sent(id);
        let how = match (code, signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended".to_string(),
        };
        // The task it was running fails as a crash while its slot is still there, so that
        // the attempt keeps its figures and its GPUs.
        let running =
            self.workers.get(id).filter(|w| w.state == WorkerState::Busy).and_then(|w| w.task.clone());
        if let Some(task) = running {
            self.fail_attempt(&task, Failure::Crash(format!("worker {id} {how}")), ctx);
        }
        let Some(slot) = self.workers.remove(id) else { return };
        self.shared.lender.release();
        // The worker's GPU reservation ends with its process, never before.
        let gpu_freed = !slot.gpus().is_empty() && self.shared.gpus.release(id, slot.pid);
        self.shared.metrics.forget_worker(id, &self.name);
        if self.shared.lender.any_starved() || (gpu_freed && self.shared.gpus.any_waiting()) {
            self.slots.freed.do_send(SlotFreed);
        }
        if let Some(timer) = slot.startup_timer {
            ctx.cancel_future(timer);
        }
        let reason = match slot.state {
            WorkerState::Stopping => slot.stop_reason.unwrap_or(StopReason::Stopped),
            WorkerState::Busy | WorkerState::Ghost(_) => StopReason::Crashed,
            WorkerState::Starting => StopReason::FailedToStart,
            WorkerState::Idle => StopReason::Exited,
        };
        if !reason.is_planned() {
            self.shared.metrics.worker_restarted(&self.name, reason.as_str());
            self.health.restarted(Instant::now());
        }
        log::info!("worker {id} {how} ({reason})");
        self.shared.events.emit(|| EventKind::WorkerExited {
            worker_id: id.to_string(),
            task_type: self.name.to_string(),
            reason: reason.to_string(),
            code,
        });
        if slot.state == WorkerState::Starting && self.handler.is_none() {
            self.start_failed(format!("worker {id} {how} before it was ready"), Some(slot.born), ctx);
        }
        if let WorkerState::Ghost(deadline) = slot.state {
            // It died running a cancelled task: nothing waits for that answer.
            self.deadlines.remove(&deadline);
        }
        if slot.replace {
            let starting = self.workers.count(WorkerState::Starting);
            let input = self.admission_input(Asker::Replace, 1, self.live_workers(), starting);
            if let Admission::Start(n) = admission::admit(&input, || self.start_waiting(), |_| Ok(())) {
                self.start_workers(n, ctx);
            }
        }
        self.check_drained(ctx);
        self.dispatch(ctx);
    }

    /// Fails every ready task at once: no worker of this type can be started.
    pub(super) fn fail_ready(&mut self, why: &str, ctx: &mut Context<Self>) {
        for id in self.queue.ready_ids() {
            self.fail_attempt(&id, Failure::NotStarted(why.to_string()), ctx);
        }
    }
}
