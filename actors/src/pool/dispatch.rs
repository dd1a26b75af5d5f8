//! Intake, taking tasks from the queue, and handing them to workers.

use std::sync::Arc;
use std::time::Duration;

use actix::Context;
use tokio::time::Instant;

use super::workers::{Slot, WorkerState};
use super::{Held, TypePool};
use crate::backend::memory::queue::Pending;
use crate::error::{Error, ErrorKind, SubmitError};
use crate::events::EventKind;
use crate::messages::{Enqueue, Run, Waiter, WorkerId};
use crate::task::{TaskId, TaskRecord, TaskStatus, ms_at};

impl TypePool {
    /// Why a new task cannot be queued now, if it cannot.
    fn refusal(&self, id: &TaskId) -> Option<Error> {
        if self.draining.is_some() {
            return Some(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        if self.starts.gave_up()
            && let Some(why) = self.starts.reason(&self.name)
        {
            return Some(Error::new(ErrorKind::Unavailable, why));
        }
        if self.waiting() >= self.cfg.queue_size {
            let msg = format!("the queue of {} is full ({} tasks)", self.name, self.cfg.queue_size);
            return Some(Error::new(ErrorKind::QueueFull, msg));
        }
        if self.queue.contains(id) {
            return Some(Error::new(ErrorKind::InvalidRequest, format!("task {id} is already live")));
        }
        None
    }

    /// Queues a task; a refusal hands the request back, with the waiter that will not be
    /// answered otherwise.
    pub(super) fn enqueue(
        &mut self,
        msg: Enqueue,
        ctx: &mut Context<Self>,
    ) -> Result<TaskId, (SubmitError, Option<Waiter>)> {
        let Enqueue { id, request, waiter, prior_attempts } = msg;
        if let Some(e) = self.refusal(&id) {
            return Err((SubmitError::new(e, request), waiter));
        }
        let opts = &request.options;
        let priority = opts.priority.unwrap_or(0);
        let max_retries = opts.max_retries.unwrap_or(self.cfg.max_retries);
        let timeout = Duration::from_millis(opts.timeout.unwrap_or(self.cfg.timeout_ms));
        let delay = opts.delay.unwrap_or(0);
        let now = Instant::now();
        let mut record = TaskRecord::new_at(id.clone(), &self.name, priority, max_retries, ms_at(now));
        record.attempts = prior_attempts;
        self.shared.store.insert(record);
        let task = Pending {
            data: Arc::new(request.data),
            priority,
            timeout,
            max_retries,
            attempt: prior_attempts,
            waiters: waiter.into_iter().collect(),
        };
        let delay = (delay > 0).then(|| Duration::from_millis(delay));
        self.queue.insert(id.clone(), task, delay, now);
        if delay.is_some() {
            self.arm_delays(ctx);
        } else {
            self.dispatch(ctx);
        }
        Ok(id)
    }

    /// Runs a dead-lettered task again, from its first attempt.
    pub(super) fn requeue_dead(&mut self, id: TaskId, ctx: &mut Context<Self>) -> Result<TaskId, Error> {
        if self.draining.is_some() {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        // A task that exists but is not dead-lettered (or was queued again under its id) is a
        // conflict, not a missing task.
        if self.queue.contains(&id) {
            return Err(Error::new(
                ErrorKind::Finished,
                format!("task {id} is not in the dead-letter list of {}: it is live", self.name),
            ));
        }
        let Some(letter) = self.dead.take(&id) else {
            let kind = if self.shared.store.get(&id).is_some() {
                ErrorKind::Finished
            } else {
                ErrorKind::UnknownTask
            };
            return Err(Error::new(
                kind,
                format!("task {id} is not in the dead-letter list of {}", self.name),
            ));
        };
        let mut record =
            TaskRecord::new(id.clone(), &self.name, letter.task.priority, letter.task.max_retries);
        if let Some(old) = self.shared.store.get(&id) {
            record.created_at = old.created_at;
        }
        self.shared.store.insert(record);
        let (id, task) = letter.again();
        self.queue.insert(id.clone(), task, None, Instant::now());
        self.dispatch(ctx);
        Ok(id)
    }

    // ===== dispatch and workers =====

    /// Hands ready tasks to idle workers until one of the two runs out. In-process attempts
    /// that finish at once are ended here too, and their slots reused, in a loop rather
    /// than by recursion.
    pub(super) fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.dispatching {
            return;
        }
        self.dispatching = true;
        loop {
            while self.queue.ready() > 0 {
                let Some(worker) = self.workers.pop_idle() else { break };
                let Some(id) = self.queue.take(Held::Sent { worker: worker.clone() }) else {
                    self.workers.push_idle(worker);
                    break;
                };
                self.assign(id, worker, ctx);
            }
            let Some(report) = self.immediate.pop_front() else { break };
            self.on_report(report, ctx);
        }
        self.send_ahead();
        self.dispatching = false;
        self.ensure_workers(ctx);
    }

    /// Starts a task just taken from the queue on an idle worker.
    pub(super) fn assign(&mut self, id: TaskId, worker: WorkerId, ctx: &mut Context<Self>) {
        if !self.workers.contains(&worker) {
            self.queue.put_back(&id, true, Instant::now());
            return;
        }
        let Some(p) = self.queue.get(&id) else { return };
        let (attempt, data) = (p.task.attempt, p.task.data.clone());
        self.start_attempt(&id, &worker, ctx);
        match &self.handler {
            Some(handler) => {
                let handler = handler.clone();
                self.run_inproc(handler, &worker, id, data, attempt, ctx);
            }
            None => {
                if let Some(slot) = self.workers.get(&worker) {
                    slot.addr.do_send(Run { id, data, attempt });
                }
            }
        }
    }

    /// Starts the clock of an attempt already handed to `worker`: its state, timeout,
    /// record and `task_assigned` event.
    pub(super) fn start_attempt(&mut self, id: &TaskId, worker: &WorkerId, ctx: &mut Context<Self>) {
        let Some(p) = self.queue.get(id) else { return };
        let now = Instant::now();
        let (attempt, timeout, waited) =
            (p.task.attempt, p.task.timeout, now.saturating_duration_since(p.ready_since()));
        self.metrics.wait.observe(waited.as_secs_f64());
        let deadline = self.set_deadline(id, attempt, now + timeout, ctx);
        let Some(slot) = self.workers.get_mut(worker) else { return };
        self.queue.hold(id, Held::Running { worker: worker.clone(), deadline, started: now });
        slot.state = WorkerState::Busy;
        slot.task = Some(id.clone());
        slot.usage.start(now);
        let pid = slot.pid;
        self.shared.store.update(id, |r| {
            r.status = TaskStatus::Running;
            r.attempts = attempt;
            r.started_at = Some(ms_at(now));
            r.progress = None;
            r.worker_id = Some(worker.to_string());
            r.worker_pid = pid;
        });
        self.shared.events.emit(|| EventKind::TaskAssigned {
            task_id: id.to_string(),
            task_type: self.name.to_string(),
            worker_id: worker.to_string(),
            attempt,
            wait_ms: waited.as_millis() as u64,
        });
    }

    /// Prefetch: hands ready tasks to busy process workers with room in their prefetch
    /// window (see [`TypePool::prefetch_window`]), so a worker finds its next task in its pipe the moment it finishes one.
    fn send_ahead(&mut self) {
        let prefetch = self.prefetch_window();
        if prefetch == 0 || self.handler.is_some() || self.draining.is_some() || self.queue.ready() == 0 {
            return;
        }
        let max_tasks = self.cfg.max_tasks_per_worker;
        // Room for one more: busy, staying, under the window, and (with recycling) the task
        // running, those sent and this one all within the worker's task budget.
        let has_room = |w: &Slot| {
            let budget = max_tasks.is_none_or(|max| w.tasks_done + 2 + (w.queued.len() as u64) <= max);
            w.state.is_busy() && !w.retire && w.queued.len() < prefetch && budget
        };
        let mut room: Vec<WorkerId> =
            self.workers.iter().filter(|(_, w)| has_room(w)).map(|(id, _)| id.clone()).collect();
        room.sort();
        for worker in room {
            while self.workers.get(&worker).is_some_and(has_room) {
                let Some(id) = self.queue.take(Held::Sent { worker: worker.clone() }) else { return };
                let Some(p) = self.queue.get(&id) else { continue };
                let (attempt, data, timeout) = (p.task.attempt, p.task.data.clone(), p.task.timeout);
                let Some(slot) = self.workers.get_mut(&worker) else {
                    self.queue.put_back(&id, true, Instant::now());
                    return;
                };
                slot.queued.push_back((id.clone(), timeout));
                slot.addr.do_send(Run { id: id.clone(), data, attempt });
                let w = worker.to_string();
                self.shared.store.update(&id, |r| {
                    r.attempts = attempt;
                    r.worker_id = Some(w);
                });
            }
        }
    }

    /// Puts the tasks sent ahead to a worker that will not run them back at the head of the
    /// queue, without spending their attempt; while draining, fails them with reason
    /// `shutdown` instead (no worker will take them).
    pub(super) fn requeue_sent(&mut self, worker: &WorkerId) {
        let Some(slot) = self.workers.get_mut(worker) else { return };
        let sent: Vec<TaskId> = slot.queued.drain(..).map(|(id, _)| id).collect();
        for id in sent {
            let held = self.queue.get(&id).and_then(|p| p.held());
            if !matches!(held, Some(Held::Sent { worker: w }) if w == worker) {
                continue;
            }
            if self.draining.is_some() {
                self.fail_for_shutdown(&id, None);
                continue;
            }
            self.refund(&id);
        }
    }

    /// Gives a held task back to the queue without spending its attempt (it never ran, or
    /// stopped through no fault of its own): in the queue and in its record.
    pub(super) fn refund(&mut self, id: &TaskId) -> bool {
        if !self.queue.put_back(id, true, Instant::now()) {
            return false;
        }
        self.shared.store.update(id, |r| {
            r.status = TaskStatus::Queued;
            r.attempts = r.attempts.saturating_sub(1);
            r.worker_id = None;
        });
        true
    }
}
