//! Intake, the ready queue, and starting and stopping workers.

use super::*;

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
        if self.tasks.contains_key(id) {
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
        let seq = self.queue.next_seq();
        let mut pending = Pending {
            data: Arc::new(request.data),
            priority,
            seq,
            timeout,
            max_retries,
            attempt: prior_attempts,
            state: State::Queued,
            ready_since: now,
            waiters: waiter.into_iter().collect(),
        };
        if delay > 0 {
            pending.state = State::Waiting(Self::wake_later(id.clone(), Duration::from_millis(delay), ctx));
            self.tasks.insert(id.clone(), pending);
        } else {
            self.tasks.insert(id.clone(), pending);
            self.push_ready_at(&id, now);
            self.dispatch(ctx);
        }
        Ok(id)
    }

    pub(super) fn wake_later(id: TaskId, after: Duration, ctx: &mut Context<Self>) -> SpawnHandle {
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

    pub(super) fn push_ready(&mut self, id: &TaskId) {
        self.push_ready_at(id, Instant::now());
    }

    /// Puts a task in the ready queue as of `now`.
    pub(super) fn push_ready_at(&mut self, id: &TaskId, now: Instant) {
        if let Some(p) = self.tasks.get_mut(id) {
            p.ready_since = now;
            self.queue.push(p.priority, p.seq, id.clone());
        }
    }

    /// Pops the next ready task, skipping entries of tasks that left the queue (cancelled).
    pub(super) fn pop_ready(&mut self) -> Option<TaskId> {
        // The ready count drops when the task leaves the `Queued` state (assign or finish).
        let tasks = &self.tasks;
        self.queue
            .pop(|id, seq| tasks.get(id).is_some_and(|p| matches!(p.state, State::Queued) && p.seq == seq))
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
                let Some(id) = self.pop_ready() else {
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

    /// Starts a ready task on an idle worker.
    pub(super) fn assign(&mut self, id: TaskId, worker: WorkerId, ctx: &mut Context<Self>) {
        if !self.workers.contains(&worker) {
            return;
        }
        let Some(p) = self.tasks.get_mut(&id) else { return };
        if matches!(p.state, State::Queued) {
            self.queue.left();
        }
        p.attempt += 1;
        let (attempt, data) = (p.attempt, p.data.clone());
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
        let Some(p) = self.tasks.get(id) else { return };
        let now = Instant::now();
        let (attempt, timeout, waited) = (p.attempt, p.timeout, now.saturating_duration_since(p.ready_since));
        self.metrics.wait.observe(waited.as_secs_f64());
        let deadline = self.set_deadline(id, attempt, now + timeout, ctx);
        let (Some(p), Some(slot)) = (self.tasks.get_mut(id), self.workers.get_mut(worker)) else {
            return;
        };
        p.state = State::Running { worker: worker.clone(), deadline, started: now };
        slot.state = WorkerState::Busy;
        slot.task = Some(id.clone());
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
            w.state == WorkerState::Busy && !w.retire && w.queued.len() < prefetch && budget
        };
        let mut room: Vec<WorkerId> =
            self.workers.iter().filter(|(_, w)| has_room(w)).map(|(id, _)| id.clone()).collect();
        room.sort();
        for worker in room {
            while self.workers.get(&worker).is_some_and(has_room) {
                let Some(id) = self.pop_ready() else { return };
                let Some(p) = self.tasks.get_mut(&id) else { continue };
                self.queue.left();
                p.attempt += 1;
                p.state = State::Sent { worker: worker.clone() };
                let (attempt, data, timeout) = (p.attempt, p.data.clone(), p.timeout);
                let Some(slot) = self.workers.get_mut(&worker) else { return };
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
            let Some(p) = self.tasks.get_mut(&id) else { continue };
            if !matches!(&p.state, State::Sent { worker: w } if w == worker) {
                continue;
            }
            if self.draining.is_some() {
                self.fail_for_shutdown(&id, None);
                continue;
            }
            p.attempt = p.attempt.saturating_sub(1);
            p.state = State::Queued;
            self.shared.store.update(&id, |r| {
                r.attempts = r.attempts.saturating_sub(1);
                r.worker_id = None;
            });
            self.push_ready(&id);
        }
    }

    /// Starts the workers the ready queue (and `min_workers`) calls for, within the limits.
    pub(super) fn ensure_workers(&mut self, ctx: &mut Context<Self>) {
        if self.draining.is_some() {
            return;
        }
        let starting = self.workers.count(WorkerState::Starting);
        let live = self.live_workers();
        let demand = self.queue.ready().saturating_sub(starting + self.workers.idle().len());
        let probe = self.wants_probe();
        if demand == 0 && !probe && live >= self.min_workers().max(self.cfg.min_workers) {
            // The usual case under load: nothing to start, whoever is starved.
            self.blocked = None;
            return;
        }
        // Warm workers beyond the type's own minimum wait while another type needs a slot.
        let floor =
            if self.shared.others_starved(&self.name) { self.cfg.min_workers } else { self.min_workers() };
        let below_min = floor.saturating_sub(live);
        let want = demand
            .max(below_min)
            .max(usize::from(probe))
            .min(self.cfg.max_concurrent.saturating_sub(self.workers.len()));
        if want == 0 {
            self.blocked = None;
            return;
        }
        // After failed starts, one try at a time, when the wait is over.
        if self.start_waiting() {
            return;
        }
        let want = if self.starts.failures() > 0 { want.min(1).saturating_sub(starting) } else { want };
        if want == 0 || (probe && !self.check_command(ctx)) {
            return;
        }
        if let Err(why) = self.shared.can_start(&self.cfg, live) {
            if self.blocked.as_deref() != Some(why.as_str()) {
                log::info!("{}: not starting workers: {why}", self.name);
            }
            self.blocked = Some(why);
            return;
        }
        self.blocked = None;
        let mut started = 0;
        for _ in 0..want {
            if !self.shared.try_take_slot() {
                // Only real work (or the due retry of a type that gave up) may ask other types for
                // a slot; keeping workers warm may not.
                if (demand > 0 || probe) && !self.starved {
                    self.starved = true;
                    self.shared.set_starved(&self.name, true);
                    self.slots.wanted.do_send(SlotWanted);
                }
                break;
            }
            self.start_worker(ctx);
            started += 1;
        }
        if started > 0 {
            self.scaled(true, live + started, if demand > 0 { "demand" } else { "min_workers" });
        }
        if started < want {
            return;
        }
        if self.starved && demand <= want {
            self.starved = false;
            self.shared.set_starved(&self.name, false);
        }
    }

    /// Starts one worker in a slot already taken.
    pub(super) fn start_worker(&mut self, ctx: &mut Context<Self>) -> WorkerId {
        let id = self.shared.next_worker_id(&self.name);
        let max_line_bytes = usize::try_from(self.cfg.max_output_line_mb << 20).unwrap_or(usize::MAX);
        let kind = match (&self.handler, &self.command) {
            (Some(_), _) => WorkerKind::InProcess,
            (None, Some(command)) => WorkerKind::Process { command: command.clone(), max_line_bytes },
            // Validation at start-up rules this out; a worker without a way to run fails to spawn.
            (None, None) => WorkerKind::Process { command: Arc::from(Vec::new()), max_line_bytes },
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
        self.workers.insert(id.clone(), Slot::starting(addr, startup_timer, Instant::now()));
        log::info!("worker {id} starting ({})", self.name);
        id
    }

    /// Asks a worker to stop; it stays counted until its exit is reported.
    pub(super) fn stop_worker(&mut self, id: &WorkerId, kill: bool, reason: StopReason) {
        let Some(slot) = self.workers.get_mut(id) else { return };
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
            let sent_here = self
                .tasks
                .get(&next)
                .is_some_and(|p| matches!(&p.state, State::Sent { worker } if worker == id));
            if sent_here {
                self.start_attempt(&next, id, ctx);
            } else {
                // Cancelled after it was sent: the worker runs it anyway. It stays busy, bounded by
                // the task's timeout, until that result arrives and is dropped.
                let deadline = self.set_deadline(&next, 0, Instant::now() + timeout, ctx);
                if let Some(slot) = self.workers.get_mut(id) {
                    slot.task = Some(next);
                    slot.ghost = Some(deadline);
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
        } else if self.should_yield() {
            self.stop_worker(id, false, StopReason::Yielded);
        } else {
            self.workers.push_idle(id.clone());
        }
        self.dispatch(ctx);
    }

    /// Whether to give a worker slot to a type that cannot start one: when this type has no
    /// ready work, or holds more than one worker while another type holds none.
    pub(super) fn should_yield(&self) -> bool {
        if !self.shared.others_starved(&self.name) {
            return false;
        }
        let live = self.live_workers();
        // Warm workers (the pool-wide minimum) give way to real work; a type's own
        // `min_workers` does not.
        live > self.cfg.min_workers && (self.queue.ready() == 0 || live > 1)
    }

    pub(super) fn on_exit(
        &mut self,
        id: &WorkerId,
        code: Option<i32>,
        signal: Option<i32>,
        ctx: &mut Context<Self>,
    ) {
        self.requeue_sent(id);
        let Some(slot) = self.workers.remove(id) else { return };
        self.shared.release_slot();
        if self.shared.any_starved() {
            self.slots.freed.do_send(SlotFreed);
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
            WorkerState::Stopping => slot.stop_reason.unwrap_or(StopReason::Stopped),
            WorkerState::Busy => StopReason::Crashed,
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
        if let (WorkerState::Busy, Some(task)) = (slot.state, slot.task) {
            self.fail_attempt(&task, Failure::Crash(format!("worker {id} {how}")), ctx);
        }
        if slot.replace
            && self.draining.is_none()
            && !self.start_waiting()
            && self.workers.len() < self.cfg.max_concurrent
            && self.shared.try_take_slot()
        {
            self.start_worker(ctx);
        }
        self.check_drained(ctx);
        self.dispatch(ctx);
    }

    /// Fails every ready task at once: no worker of this type can be started.
    pub(super) fn fail_ready(&mut self, why: &str, ctx: &mut Context<Self>) {
        while let Some(id) = self.pop_ready() {
            self.fail_attempt(&id, Failure::NotStarted(why.to_string()), ctx);
        }
    }
}
