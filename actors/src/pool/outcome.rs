//! How attempts end: results, failures, retries with backoff, dead letters and the drain.

use std::sync::Arc;

use actix::{AsyncContext, Context};
use serde_json::Value;
use tokio::time::Instant;

use super::stop::StopReason;
use super::timeouts::GHOST_ATTEMPT;
use super::workers::WorkerState;
use super::{Held, TypePool};
use crate::backend::memory::dead::DeadLetter;
use crate::backend::memory::queue::Place;
use crate::events::EventKind;
use crate::messages::{Report, Waiter, WorkerId, WorkerReport};
use crate::policy::retry::{Failure, Verdict};
use crate::task::{Progress, TaskId, TaskRecord, TaskStatus, ms_at};

impl TypePool {
    pub(super) fn on_report(&mut self, msg: WorkerReport, ctx: &mut Context<Self>) {
        let WorkerReport { worker, report } = msg;
        let ends_or_nudges =
            matches!(report, Report::ProgressReady | Report::Done { .. } | Report::Crashed { .. });
        if self.handler.is_some() && ends_or_nudges {
            for (id, progress, stage) in self.drain_progress(&worker) {
                let report = Report::Progress { id, progress, stage };
                self.on_report(WorkerReport { worker: worker.clone(), report }, ctx);
            }
        }
        match report {
            Report::ProgressReady | Report::Sync => {}
            Report::Spawned { pid } => {
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.pid = pid;
                }
                if let Some(pid) = pid {
                    log::info!("worker {worker} spawned (pid {pid})");
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
                let mut born = Instant::now();
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.state = WorkerState::Stopping;
                    slot.stop_reason = Some(StopReason::FailedToStart);
                    born = slot.born;
                }
                self.start_failed(e, Some(born), ctx);
                self.on_exit(&worker, None, None, ctx);
            }
            Report::Pong(n) => {
                log::trace!("worker {worker} pong {n}");
                self.on_pong(&worker, n);
                let Some(slot) = self.workers.get_mut(&worker) else { return };
                if slot.state == WorkerState::Starting {
                    slot.state = WorkerState::Idle;
                    slot.idle_since = Instant::now();
                    if let Some(t) = slot.startup_timer.take() {
                        ctx.cancel_future(t);
                    }
                    self.start_succeeded(ctx);
                    self.workers.push_idle(worker.clone());
                    log::info!("worker {worker} ready");
                    self.shared.events.emit(|| EventKind::WorkerReady {
                        worker_id: worker.to_string(),
                        task_type: self.name.to_string(),
                    });
                    if self.draining.is_some() {
                        self.stop_worker(&worker, false, StopReason::Shutdown);
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
                if self.ends_ghost(&id, &worker) {
                    self.worker_free(&worker, ctx);
                    return;
                }
                if !self.runs_on(&id, &worker) {
                    let stopping = self.workers.get(&worker).filter(|w| w.state == WorkerState::Stopping);
                    if stopping.is_some_and(|w| w.task.as_ref() == Some(&id)) {
                        // Stopped while it ran this task (cancelled, say): its answer is dropped.
                        log::debug!("worker {worker} answered for task {id} while stopping; dropped");
                        self.worker_free(&worker, ctx);
                    } else {
                        log::warn!("worker {worker} answered for task {id}, which it does not run");
                    }
                    return;
                }
                match outcome {
                    Ok(result) => self.complete(&id, &worker, result),
                    Err(e) => self.fail_attempt(&id, Failure::Error(e), ctx),
                }
                self.worker_free(&worker, ctx);
            }
            Report::Crashed { id, message } => {
                if self.runs_on(&id, &worker) {
                    // The slot is replaced like a crashed process.
                    self.stop_worker(&worker, true, StopReason::Crashed);
                    self.fail_attempt(&id, Failure::Crash(message), ctx);
                }
            }
            Report::Invalid(why) => self.worker_error(&worker, format!("invalid line: {why}")),
            Report::OutputTooLarge { limit_bytes } => {
                let detail = format!(
                    "worker {worker} wrote a stdout line longer than max_output_line_mb ({} MiB)",
                    limit_bytes >> 20
                );
                self.worker_error(&worker, detail.clone());
                let slot = self.workers.get(&worker);
                let task = slot.and_then(|w| w.task.clone());
                let starting = slot.filter(|w| w.state == WorkerState::Starting).map(|w| w.born);
                self.stop_worker(&worker, true, StopReason::OutputTooLarge);
                if let Some(born) = starting {
                    self.start_failed(detail.clone(), Some(born), ctx);
                }
                if let Some(task) = task.filter(|t| self.runs_on(t, &worker)) {
                    self.fail_attempt(&task, Failure::OutputTooLarge(detail), ctx);
                }
                self.dispatch(ctx);
            }
            Report::Exited { code, signal } => self.on_exit(&worker, code, signal, ctx),
        }
    }

    /// Whether this answer ends a cancelled task the worker ran anyway; if so the worker is
    /// busy as usual again, to be freed.
    fn ends_ghost(&mut self, id: &TaskId, worker: &WorkerId) -> bool {
        let Some(slot) = self.workers.get_mut(worker) else { return false };
        let WorkerState::Ghost(deadline) = slot.state else { return false };
        if slot.task.as_ref() != Some(id) {
            return false;
        }
        self.deadlines.remove(&deadline);
        slot.state = WorkerState::Busy;
        true
    }

    /// Answers a waiter now, or at the end of the batch being handled (see `DrainIntake`).
    fn answer(&mut self, waiter: Waiter, record: Arc<TaskRecord>, verdict: Verdict) {
        if self.batching {
            self.answers.push((waiter, record, verdict));
        } else {
            waiter.send(record, verdict);
        }
    }

    pub(super) fn runs_on(&self, id: &TaskId, worker: &WorkerId) -> bool {
        let held = self.queue.get(id).and_then(|p| p.held());
        matches!(held, Some(Held::Running { worker: w, .. }) if w == worker)
    }

    pub(super) fn complete(&mut self, id: &TaskId, worker: &WorkerId, result: Value) {
        // Only a running attempt completes (see `runs_on`).
        let Some(&Held::Running { deadline, started, .. }) = self.queue.get(id).and_then(|p| p.held()) else {
            return;
        };
        let now = Instant::now();
        self.deadlines.remove(&deadline);
        let took = now.saturating_duration_since(started);
        self.metrics.duration.observe(took.as_secs_f64());
        self.tally.completed(took);
        let ms = took.as_millis() as u64;
        self.metrics.completed.inc();
        self.finish_at(id, Verdict::End(TaskStatus::Completed), Ok(result), now);
        // After the record is written, so a listener that reads it sees the result.
        self.shared.events.emit(|| EventKind::TaskCompleted {
            task_id: id.to_string(),
            task_type: self.name.to_string(),
            worker_id: worker.to_string(),
            duration_ms: ms,
        });
    }

    pub(super) fn on_timeout(&mut self, id: TaskId, attempt: u32, ctx: &mut Context<Self>) {
        if attempt == GHOST_ATTEMPT {
            // A cancelled task a worker ran anyway, past its timeout: replace that worker
            // (whether or not a new task took the same id meanwhile).
            let ghost = self
                .workers
                .iter()
                .find(|(_, w)| matches!(w.state, WorkerState::Ghost(_)) && w.task.as_ref() == Some(&id));
            if let Some((worker, _)) = ghost {
                let worker = worker.clone();
                self.stop_worker(&worker, true, StopReason::Timeout);
                self.dispatch(ctx);
            }
            return;
        }
        let Some(p) = self.queue.get(&id) else { return };
        let Some(Held::Running { worker, .. }) = p.held() else { return };
        if p.task.attempt != attempt {
            return;
        }
        let worker = worker.clone();
        // A timed-out attempt counts as long as its timeout: no task is sent ahead behind one.
        let timeout = p.task.timeout;
        self.tally.attempt_took(timeout);
        self.stop_worker(&worker, true, StopReason::Timeout);
        self.fail_attempt(&id, Failure::Timeout(timeout), ctx);
        // Tasks it had been sent went back to the queue: another worker may take them.
        self.dispatch(ctx);
    }

    /// An attempt ended without a result (or a task could not run): the retry policy
    /// decides, and the pool carries the verdict out. A retry waits here, unless the queue
    /// is durable: then the task leaves the pool with the verdict, for the backend.
    pub(super) fn fail_attempt(&mut self, id: &TaskId, failure: Failure, ctx: &mut Context<Self>) {
        self.settle(id, failure, Some(ctx));
    }

    /// As [`TypePool::fail_attempt`]; without `ctx` (a task sent ahead, which has no timer
    /// to cancel), a local retry goes straight back to the ready queue.
    pub(super) fn settle(&mut self, id: &TaskId, failure: Failure, ctx: Option<&mut Context<Self>>) {
        let Some(p) = self.queue.get(id) else { return };
        let (worker, running_timer) = match p.place() {
            Place::Held(Held::Running { worker, deadline, .. }) => (Some(worker.clone()), Some(*deadline)),
            // It stays in the worker's `queued`: the worker will still run it (see `worker_free`).
            Place::Held(Held::Sent { worker }) => (Some(worker.clone()), None),
            Place::Ready | Place::Delayed(_) => (None, None),
        };
        let attempt = p.task.attempt;
        if let Some(deadline) = running_timer {
            self.deadlines.remove(&deadline);
        }
        let verdict = self.retry.decide(&failure, attempt, p.task.max_retries, self.draining.is_some());
        let message = failure.message();
        let status = verdict.status();
        // A task re-queued for another instance did not fail; the backend announces it.
        let event_error =
            (self.shared.events.active() && verdict != Verdict::Requeue).then(|| message.clone());
        match verdict {
            Verdict::Retry { .. } => self.metrics.retried(&failure),
            Verdict::End(status) => self.metrics.ended(status),
            Verdict::Requeue => {}
        }
        match verdict {
            Verdict::Retry { backoff } if !self.retry.durable => {
                log::info!("task {id} attempt {attempt} failed ({message}); retry in {backoff:?}");
                let now = Instant::now();
                // Before the task leaves its worker (every other verdict goes through
                // `finish_at`, which counts the attempt there).
                let resources = self.end_usage(id, now);
                match ctx {
                    Some(ctx) => {
                        self.queue.delay(id, now + backoff);
                        self.arm_delays(ctx);
                    }
                    None => {
                        // Only tasks sent ahead come here, and only while draining, when no
                        // local retry is given: kept correct all the same.
                        debug_assert!(false, "a local retry of task {id} without a context");
                        self.queue.put_back(id, false, now);
                    }
                }
                self.shared.store.update(id, |r| {
                    r.status = TaskStatus::Queued;
                    r.error = Some(message);
                    if resources.is_some() {
                        r.resources = resources;
                    }
                });
            }
            verdict => {
                if matches!(verdict, Verdict::End(s) if s != TaskStatus::Cancelled) {
                    self.tally.failed();
                }
                self.finish_at(id, verdict, Err(message), Instant::now());
            }
        }
        // After the record is written, so a listener that reads it sees the new status.
        if let Some(error) = event_error {
            self.shared.events.emit(|| EventKind::TaskFailed {
                task_id: id.to_string(),
                task_type: self.name.to_string(),
                worker_id: worker.as_ref().map(|w| w.to_string()),
                error,
                status,
            });
        }
    }

    /// Ends a task here as of `now`: writes its record, answers its waiters with the
    /// verdict, dead-letters it if it ended out of attempts. With a durable queue a retry or
    /// a re-queue also ends it here (its record says `queued`): the backend goes on.
    pub(super) fn finish_at(
        &mut self,
        id: &TaskId,
        verdict: Verdict,
        outcome: Result<Value, String>,
        now: Instant,
    ) {
        let resources = self.end_usage(id, now);
        let Some(mut p) = self.queue.remove(id) else { return };
        let mut waiters = std::mem::take(&mut p.task.waiters);
        let (ended, status) = (verdict.end(), verdict.status());
        if let Some(status) = ended.filter(|s| *s != TaskStatus::Cancelled) {
            self.health.finished(now, status != TaskStatus::Completed);
        }
        let change = |r: &mut TaskRecord| {
            r.status = status;
            if ended.is_some() {
                r.finished_at = Some(ms_at(now));
            }
            // A task that ends without running again keeps its last attempt's figures.
            if resources.is_some() {
                r.resources = resources;
            }
            match outcome {
                Ok(v) => {
                    r.result = Some(v);
                    r.error = None;
                }
                Err(e) => r.error = Some(e),
            }
        };
        // Shared with whoever waits; each copies it on its own thread.
        let read = |r: &Arc<TaskRecord>| (!waiters.is_empty()).then(|| r.clone());
        let record = match ended {
            Some(_) => self.shared.store.update_at(id, now, change, read),
            // The task goes on in the durable backend, which keeps its record.
            None => self.shared.store.hand_over(id, change, read),
        };
        // A durable backend keeps its own dead-letter lists.
        if matches!(status, TaskStatus::Dead | TaskStatus::TimedOut) && !self.retry.durable {
            self.dead.push(DeadLetter::of(id.clone(), p.task), self.shared.max_dead_letters);
        }
        if let Some(Some(record)) = record {
            let last = waiters.pop();
            for w in waiters {
                self.answer(w, record.clone(), verdict);
            }
            if let Some(w) = last {
                self.answer(w, record, verdict);
            }
        }
        if let Some(d) = &mut self.draining
            && status == TaskStatus::Completed
        {
            d.report.finished_in_grace += 1;
        }
    }
}
