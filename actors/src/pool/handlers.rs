//! The messages a `TypePool` handles (see `messages.rs`).

use actix::{Context, Handler, MessageResult, ResponseFuture};

use super::stop::StopReason;
use super::workers::WorkerState;
use super::{Held, TypePool};
use crate::backend::memory::queue::{Entry, Place};
use crate::error::{Error, ErrorKind, SubmitError};
use crate::messages::{
    CancelTask, Drain, DrainIntake, Enqueue, Execute, GetDeadLetters, GetQueue, GetTypeStats, GetWorkers,
    Poke, QueueInfo, QueuedTask, ReleaseIdle, Requeue, RestartWorker, Scale, ShutdownReport, UsageSampled,
    Waiter, Watch, WorkerInfo, WorkerReport,
};
use crate::policy::admission;
use crate::policy::retry::Failure;
use crate::task::{TaskId, TaskRecord};

/// Most calls (and answers) whose room the pool keeps between two batches of its intake.
const MAX_BATCH_KEPT: usize = 4096;

impl Handler<Enqueue> for TypePool {
    type Result = Result<TaskId, SubmitError>;

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) -> Self::Result {
        self.enqueue(msg, ctx).map_err(|(e, _)| e)
    }
}

impl Handler<DrainIntake> for TypePool {
    type Result = ();

    fn handle(&mut self, _: DrainIntake, ctx: &mut Context<Self>) {
        // Answers of tasks that end within this batch go out together at its end: the
        // callers' thread is then woken once per batch rather than once per task.
        // Both buffers keep their capacity from batch to batch (up to a bound): a burst
        // allocates nothing.
        self.batching = true;
        let mut calls = std::mem::take(&mut self.calls);
        self.intake.take_into(&mut calls);
        for call in calls.drain(..) {
            self.handle(call, ctx);
        }
        calls.shrink_to(MAX_BATCH_KEPT);
        self.calls = calls;
        self.batching = false;
        for (waiter, record, verdict) in self.answers.drain(..) {
            waiter.send(record, verdict);
        }
        self.answers.shrink_to(MAX_BATCH_KEPT);
    }
}

impl Handler<Execute> for TypePool {
    type Result = ();

    fn handle(&mut self, msg: Execute, ctx: &mut Context<Self>) {
        // The reply channel becomes the task's waiter; a refusal answers on it at once.
        let enqueue = Enqueue {
            id: msg.id,
            request: msg.request,
            waiter: Some(Waiter::Execute(msg.reply)),
            prior_attempts: msg.prior_attempts,
        };
        if let Err((e, Some(waiter))) = self.enqueue(enqueue, ctx) {
            waiter.refuse(e);
        }
    }
}

impl Handler<UsageSampled> for TypePool {
    type Result = ();

    fn handle(&mut self, msg: UsageSampled, _: &mut Context<Self>) {
        self.fold_usage(msg);
    }
}

impl Handler<Watch> for TypePool {
    type Result = bool;

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> bool {
        self.queue.add_waiter(&msg.0, Waiter::Record(msg.1)).is_ok()
    }
}

impl Handler<CancelTask> for TypePool {
    type Result = Result<TaskRecord, Error>;

    fn handle(&mut self, msg: CancelTask, ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.0;
        let Some(p) = self.queue.get(&id) else {
            return match self.shared.store.get(&id) {
                Some(r) => {
                    Err(Error::new(ErrorKind::Finished, format!("task {id} already ended ({})", r.status)))
                }
                None => Err(Error::unknown_task(&id)),
            };
        };
        if let Some(Held::Running { worker, .. }) = p.held() {
            let worker = worker.clone();
            self.stop_worker(&worker, true, StopReason::Cancelled);
        }
        self.fail_attempt(&id, Failure::Cancelled, ctx);
        self.dispatch(ctx);
        self.shared.store.get(&id).ok_or_else(|| Error::unknown_task(&id))
    }
}

impl Handler<GetTypeStats> for TypePool {
    type Result = MessageResult<GetTypeStats>;

    fn handle(&mut self, _: GetTypeStats, _: &mut Context<Self>) -> Self::Result {
        let stats = self.stats();
        self.shared.metrics.set_gauges(&self.name, &stats);
        MessageResult(stats)
    }
}

impl Handler<GetQueue> for TypePool {
    type Result = MessageResult<GetQueue>;

    fn handle(&mut self, msg: GetQueue, _: &mut Context<Self>) -> Self::Result {
        let mut waiting: Vec<(&TaskId, &Entry<Held>)> =
            self.queue.iter().filter(|(_, p)| !matches!(p.held(), Some(Held::Running { .. }))).collect();
        // Queue order: ready before waiting, then priority, then first come.
        waiting.sort_by_key(|(_, p)| (!matches!(p.place(), Place::Ready), p.order_key()));
        let oldest = self.oldest_ready_wait().as_millis() as u64;
        let tasks = waiting
            .iter()
            .skip(msg.range.start)
            .take(msg.range.len())
            .map(|(id, p)| QueuedTask {
                id: id.to_string(),
                priority: p.task.priority,
                state: match p.place() {
                    Place::Ready => "ready",
                    Place::Held(Held::Sent { .. }) => "sent",
                    _ => "waiting",
                },
                attempts: p.task.attempt,
                waited_ms: p.ready_since().elapsed().as_millis() as u64,
            })
            .collect();
        MessageResult(QueueInfo {
            length: waiting.len(),
            offset: msg.range.start,
            ready: self.queue.ready(),
            oldest_wait_ms: oldest,
            tasks,
        })
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
                gpus: w.gpus().to_vec(),
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        MessageResult(list)
    }
}

impl Handler<GetDeadLetters> for TypePool {
    type Result = MessageResult<GetDeadLetters>;

    fn handle(&mut self, _: GetDeadLetters, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.dead.ids().filter_map(|id| self.shared.store.get(id)).collect())
    }
}

impl Handler<Requeue> for TypePool {
    type Result = Result<TaskId, Error>;

    fn handle(&mut self, msg: Requeue, ctx: &mut Context<Self>) -> Self::Result {
        self.requeue_dead(msg.0, ctx)
    }
}

impl Handler<Scale> for TypePool {
    type Result = Result<crate::messages::Scaled, Error>;

    fn handle(&mut self, msg: Scale, ctx: &mut Context<Self>) -> Self::Result {
        self.scale(msg.0, ctx)
    }
}

impl Handler<RestartWorker> for TypePool {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: RestartWorker, ctx: &mut Context<Self>) -> Self::Result {
        if self.draining.is_some() {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        let Some((id, slot)) = self.workers.iter().find(|(id, _)| ***id == *msg.0) else {
            return Err(Error::new(
                ErrorKind::UnknownWorker,
                format!("no worker {} in {}", msg.0, self.name),
            ));
        };
        let id = id.clone();
        if slot.state == WorkerState::Stopping {
            // Already going; no replacement beyond what its stop asked for.
            return Ok(());
        }
        // The task did nothing wrong: it goes back to the queue without spending an attempt.
        self.give_back_running(&id);
        if let Some(slot) = self.workers.get_mut(&id) {
            slot.replace = true;
        }
        self.stop_worker(&id, true, StopReason::Restart);
        self.dispatch(ctx);
        Ok(())
    }
}

impl Handler<Drain> for TypePool {
    type Result = ResponseFuture<ShutdownReport>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.drain(msg.timeout, ctx)
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
        if admission::releases_idle(self.live_workers(), self.cfg.min_workers, self.queue.ready())
            && let Some(id) = self.workers.idle().first().cloned()
        {
            self.stop_worker(&id, false, StopReason::Yielded);
        }
    }
}

impl Handler<WorkerReport> for TypePool {
    type Result = ();

    fn handle(&mut self, msg: WorkerReport, ctx: &mut Context<Self>) {
        self.on_report(msg, ctx);
    }
}
