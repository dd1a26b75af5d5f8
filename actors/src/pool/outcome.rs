//! How attempts end: results, failures, retries with backoff, dead letters and the drain.

use super::*;

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
                    slot.state = WState::Stopping;
                    slot.stop_reason = Some("failed_to_start");
                    born = slot.born;
                }
                self.start_failed(e, Some(born), ctx);
                self.on_exit(&worker, None, None, ctx);
            }
            Report::Pong(n) => {
                log::trace!("worker {worker} pong {n}");
                self.on_pong(&worker, n);
                let Some(slot) = self.workers.get_mut(&worker) else { return };
                if slot.state == WState::Starting {
                    slot.state = WState::Idle;
                    slot.idle_since = Instant::now();
                    if let Some(t) = slot.startup_timer.take() {
                        ctx.cancel_future(t);
                    }
                    self.start_succeeded(ctx);
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
                if self.ends_ghost(&id, &worker) {
                    self.worker_free(&worker, ctx);
                    return;
                }
                if !self.runs_on(&id, &worker) {
                    log::warn!("worker {worker} answered for task {id}, which it does not run");
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
                    self.stop_worker(&worker, true, "crashed");
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
                let starting = slot.filter(|w| w.state == WState::Starting).map(|w| w.born);
                self.stop_worker(&worker, true, "output_too_large");
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

    /// Whether this answer ends a cancelled task the worker ran anyway; clears it if so.
    fn ends_ghost(&mut self, id: &TaskId, worker: &WorkerId) -> bool {
        let Some(slot) = self.workers.get_mut(worker) else { return false };
        if slot.ghost.is_none() || slot.task.as_ref() != Some(id) {
            return false;
        }
        if let Some(deadline) = slot.ghost.take() {
            self.deadlines.remove(&deadline);
        }
        true
    }

    /// Answers a waiter now, or at the end of the batch being handled (see `DrainIntake`).
    fn answer(&mut self, waiter: Waiter, record: Arc<TaskRecord>) {
        if self.batching {
            self.answers.push((waiter, record));
        } else {
            waiter.send(record);
        }
    }

    /// Ends a task that cannot run because the pool is draining: failed, reason `shutdown`.
    pub(super) fn fail_for_shutdown(&mut self, id: &TaskId) {
        if let Some(d) = &mut self.draining {
            d.report.failed_running += 1;
        }
        // With shared queues the bridge re-queues it, and announces it so.
        let announce = !self.shared.requeues_at_shutdown;
        self.fail_now(id, "shutdown", announce);
    }

    /// Ends a task that no worker ran to its end, at once: failed with `why`, counted, and
    /// (with `announce`) announced after its record is written.
    pub(super) fn fail_now(&mut self, id: &TaskId, why: &str, announce: bool) {
        self.failed += 1;
        self.metrics.outcome(TaskStatus::Failed.as_str());
        self.finish(id, TaskStatus::Failed, Err(why.to_string()));
        if !announce {
            return;
        }
        self.shared.events.emit(|| EventKind::TaskFailed {
            task_id: id.to_string(),
            task_type: self.name.to_string(),
            worker_id: None,
            error: why.to_string(),
            status: TaskStatus::Failed,
        });
    }

    pub(super) fn runs_on(&self, id: &TaskId, worker: &WorkerId) -> bool {
        self.tasks
            .get(id)
            .is_some_and(|p| matches!(&p.state, State::Running { worker: w, .. } if w == worker))
    }

    pub(super) fn complete(&mut self, id: &TaskId, worker: &WorkerId, result: Value) {
        let Some(p) = self.tasks.get(id) else { return };
        let mut ms = 0;
        let now = Instant::now();
        if let State::Running { deadline, started, .. } = p.state {
            self.deadlines.remove(&deadline);
            let took = now.saturating_duration_since(started);
            self.metrics.duration.observe(took.as_secs_f64());
            self.note_duration(took);
            ms = took.as_millis() as u64;
            self.busy_ms_total += ms;
        }
        self.completed += 1;
        self.metrics.completed.inc();
        self.finish_at(id, TaskStatus::Completed, Ok(result), now);
        // After the record is written, so a listener that reads it sees the result.
        self.shared.events.emit(|| EventKind::TaskCompleted {
            task_id: id.to_string(),
            task_type: self.name.to_string(),
            worker_id: worker.to_string(),
            duration_ms: ms,
        });
    }

    pub(super) fn on_timeout(&mut self, id: TaskId, attempt: u32, ctx: &mut Context<Self>) {
        let Some(p) = self.tasks.get(&id) else {
            // A cancelled task a worker ran anyway, past its timeout: replace that worker.
            let ghost = self.workers.iter().find(|(_, w)| w.ghost.is_some() && w.task.as_ref() == Some(&id));
            if let Some((worker, _)) = ghost {
                let worker = worker.clone();
                self.stop_worker(&worker, true, "timeout");
                self.dispatch(ctx);
            }
            return;
        };
        let State::Running { worker, .. } = &p.state else { return };
        if p.attempt != attempt {
            return;
        }
        let worker = worker.clone();
        // A timed-out attempt counts as long as its timeout: no task is sent ahead behind one.
        let timeout = p.timeout;
        self.note_duration(timeout);
        self.stop_worker(&worker, true, "timeout");
        self.fail_attempt(&id, Failure::Timeout, ctx);
        // Tasks it had been sent went back to the queue: another worker may take them.
        self.dispatch(ctx);
    }

    /// An attempt ended without a result: retry with backoff while attempts remain.
    pub(super) fn fail_attempt(&mut self, id: &TaskId, failure: Failure, ctx: &mut Context<Self>) {
        let Some(p) = self.tasks.get_mut(id) else { return };
        let (worker, running_timer) = match &p.state {
            State::Running { worker, deadline, .. } => (Some(worker.clone()), Some(*deadline)),
            State::Waiting(handle) => {
                ctx.cancel_future(*handle);
                (None, None)
            }
            State::Queued => (None, None),
            // It stays in the worker's `queued`: the worker will still run it (see `worker_free`).
            State::Sent { worker } => (Some(worker.clone()), None),
        };
        if let Some(deadline) = running_timer {
            self.deadlines.remove(&deadline);
        }
        // With shared queues the bridge re-queues what the drain stops, and announces it so.
        let requeued = matches!(failure, Failure::Shutdown) && self.shared.requeues_at_shutdown;
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
            Failure::OutputTooLarge(detail) => {
                (format!("output_too_large: {detail}"), false, TaskStatus::Failed)
            }
            Failure::MemoryLimit(detail) => {
                let retry = self.cfg.retry_on_memory_limit;
                (
                    format!("memory_limit_exceeded: {detail}"),
                    retry,
                    if retry { TaskStatus::Dead } else { TaskStatus::Failed },
                )
            }
        };
        let retry = retryable && p.attempt <= p.max_retries && self.draining.is_none();
        let status = if retry { TaskStatus::Queued } else { final_status };
        let event_error = (self.shared.events.active() && !requeued).then(|| message.clone());
        self.metrics.outcome(if retry { "retried" } else { status.as_str() });
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
            self.finish(id, status, Err(message));
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

    /// Ends a task: writes its record, answers its waiters, dead-letters it if out of attempts.
    pub(super) fn finish(&mut self, id: &TaskId, status: TaskStatus, outcome: Result<Value, String>) {
        self.finish_at(id, status, outcome, Instant::now());
    }

    /// As [`TypePool::finish`], for a task that ended `now`.
    pub(super) fn finish_at(
        &mut self,
        id: &TaskId,
        status: TaskStatus,
        outcome: Result<Value, String>,
        now: Instant,
    ) {
        let Some(p) = self.tasks.remove(id) else { return };
        if status != TaskStatus::Cancelled {
            self.recent.push_back((now, status != TaskStatus::Completed));
            if self.recent.len() > 2 * MAX_RECENT {
                self.prune_windows();
            }
        }
        if matches!(p.state, State::Queued) {
            // Its heap entry stays behind and is skipped when popped.
            self.ready -= 1;
        }
        let record = self.shared.store.update_at(
            id,
            now,
            |r| {
                r.status = status;
                r.finished_at = Some(ms_at(now));
                match outcome {
                    Ok(v) => {
                        r.result = Some(v);
                        r.error = None;
                    }
                    Err(e) => r.error = Some(e),
                }
            },
            // Shared with whoever waits; each copies it on its own thread.
            |r| (!p.waiters.is_empty()).then(|| r.clone()),
        );
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
        if let Some(Some(record)) = record {
            let mut waiters = p.waiters;
            let last = waiters.pop();
            for w in waiters {
                self.answer(w, record.clone());
            }
            if let Some(w) = last {
                self.answer(w, record);
            }
        }
        if let Some(d) = &mut self.draining
            && status == TaskStatus::Completed
        {
            d.report.finished_in_grace += 1;
        }
    }

    // ===== shutdown =====

    pub(super) fn check_drained(&mut self) {
        if self.draining.is_none() || !self.workers.is_empty() {
            return;
        }
        // No worker is left to run what is still live: it ends now, so every waiter hears.
        let live: Vec<TaskId> = self.tasks.keys().cloned().collect();
        for id in &live {
            self.fail_for_shutdown(id);
        }
        if let Some(d) = &mut self.draining
            && let Some(reply) = d.reply.take()
        {
            let _ = reply.send(d.report.clone());
        }
    }

    pub(super) fn stop_all_workers(&mut self, kill: bool) {
        let ids: Vec<WorkerId> = self.workers.keys().cloned().collect();
        for id in ids {
            self.stop_worker(&id, kill, "shutdown");
        }
    }
}
