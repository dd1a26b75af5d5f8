//! What the resource monitor tells a pool to enforce: a worker over a memory limit
//! ([`MemoryExceeded`]: killed, its task failed with the limit's reason) and a worker on a
//! drained GPU ([`GpuDrained`]: stopped, its task back in the queue without spending an
//! attempt, so that it runs on a worker placed elsewhere).

use actix::{Context, Handler};

use super::stop::StopReason;
use super::workers::WorkerState;
use super::{Held, TypePool};
use crate::events::EventKind;
use crate::messages::{GpuDrained, MemoryExceeded, WorkerId};
use crate::policy::limits::MemoryKind;
use crate::policy::retry::Failure;

impl TypePool {
    /// The live worker `id` names, unless it is already stopping.
    fn live_worker(&self, id: &str) -> Option<WorkerId> {
        let (id, slot) = self.workers.iter().find(|(w, _)| ***w == *id)?;
        (slot.state != WorkerState::Stopping).then(|| id.clone())
    }

    /// Puts the task worker `id` runs back at the head of the queue without spending its
    /// attempt (it did nothing wrong); answers its id if there was one.
    pub(super) fn give_back_running(&mut self, id: &WorkerId) -> Option<crate::task::TaskId> {
        let slot = self.workers.get(id)?;
        let task = slot.task.clone().filter(|_| slot.state == WorkerState::Busy)?;
        let Some(&Held::Running { ref worker, deadline, .. }) = self.queue.get(&task).and_then(|p| p.held())
        else {
            return None;
        };
        if worker != id {
            return None;
        }
        self.deadlines.remove(&deadline);
        self.refund(&task).then_some(task)
    }
}

impl Handler<MemoryExceeded> for TypePool {
    type Result = ();

    fn handle(&mut self, msg: MemoryExceeded, ctx: &mut Context<Self>) {
        let Some(id) = self.live_worker(&msg.worker) else { return };
        let task = self.workers.get(&id).and_then(|s| s.task.clone());
        let (what, stop) = match msg.over.kind {
            MemoryKind::Resident => ("", StopReason::MemoryLimitExceeded),
            MemoryKind::Gpu => (" of GPU memory", StopReason::GpuMemoryLimitExceeded),
        };
        let on = msg.over.gpu.as_ref().map(|g| format!(" on GPU {g}")).unwrap_or_default();
        let detail = format!(
            "worker {id} used {} MiB{what}, over the limit of {} MiB{on}",
            msg.over.used_bytes >> 20,
            msg.over.limit_mb
        );
        self.worker_error(&id, detail.clone());
        self.stop_worker(&id, true, stop);
        // Not a cancelled task it ran anyway (a ghost): that id may be another task's now.
        if let Some(task) = task.filter(|t| self.runs_on(t, &id)) {
            let failure = match msg.over.kind {
                MemoryKind::Resident => Failure::MemoryLimit(detail),
                MemoryKind::Gpu => Failure::GpuMemoryLimit(detail),
            };
            self.fail_attempt(&task, failure, ctx);
        }
        self.dispatch(ctx);
    }
}

impl Handler<GpuDrained> for TypePool {
    type Result = ();

    fn handle(&mut self, msg: GpuDrained, ctx: &mut Context<Self>) {
        let Some(id) = self.live_worker(&msg.worker) else { return };
        self.worker_error(&id, format!("its GPU {} is drained: {}", msg.gpu, msg.why));
        if self.draining.is_some() {
            // Shutting down: its attempt ends with the drain of the pool, and nothing replaces it.
            self.stop_worker(&id, true, StopReason::GpuDrained);
            return;
        }
        if let Some(task) = self.give_back_running(&id) {
            self.shared.events.emit(|| EventKind::TaskRequeued {
                task_id: task.to_string(),
                task_type: self.name.to_string(),
                worker_id: Some(id.to_string()),
                reason: StopReason::GpuDrained.to_string(),
            });
        }
        if let Some(slot) = self.workers.get_mut(&id) {
            // Its replacement is placed on a GPU that is not drained, or waits for one (not
            // if it was being scaled down anyway).
            slot.replace = !slot.retire;
        }
        self.stop_worker(&id, true, StopReason::GpuDrained);
        self.dispatch(ctx);
    }
}
