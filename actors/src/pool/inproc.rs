//! In-process handler slots: the pool runs the handler itself. A handler that is ready at once
//! is answered without a spawn or a message; one that is not runs as a future of the pool,
//! abortable on timeout or cancel. A panic is caught and treated as a crash.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context};
use futures_util::FutureExt as _;
use futures_util::future::{AbortHandle, Abortable};
use serde_json::Value;

use super::TypePool;
use crate::executor::{HandlerFn, TaskContext, TaskError};
use crate::messages::{Report, WorkerId, WorkerReport};
use crate::task::TaskId;

/// Reports of handlers that finished inside `assign`, handled by the dispatch loop (not
/// recursively, so a deep queue of instant tasks does not deepen the stack).
pub(super) type Immediate = VecDeque<WorkerReport>;

impl TypePool {
    /// Runs one attempt of an in-process task on slot `worker`.
    pub(super) fn run_inproc(
        &mut self,
        handler: HandlerFn,
        worker: &WorkerId,
        id: TaskId,
        data: Arc<Value>,
        attempt: u32,
        ctx: &mut Context<Self>,
    ) {
        // Progress goes to a buffer of the slot, read before the attempt's outcome (so a
        // handler that finishes at once still reports in order) and on a nudge while it runs.
        let Some(buffer) = self.workers.get(worker).map(|slot| slot.progress.clone()) else { return };
        let pool = ctx.address();
        let (progress_worker, progress_id) = (worker.clone(), id.clone());
        let task = TaskContext {
            id: id.clone(),
            task_type: self.name.clone(),
            data,
            attempt,
            progress: Box::new(move |progress, stage| {
                buffer.lock().unwrap_or_else(|e| e.into_inner()).push((progress_id.clone(), progress, stage));
                pool.do_send(WorkerReport { worker: progress_worker.clone(), report: Report::ProgressReady });
            }),
        };
        // The handler itself may panic before it returns its future: that is a crash too.
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(task))) {
            Ok(future) => future,
            Err(payload) => {
                self.immediate.push_back(WorkerReport {
                    worker: worker.clone(),
                    report: handler_report(id, Err(payload)),
                });
                return;
            }
        };
        let mut run = AssertUnwindSafe(future).catch_unwind();
        if let Some(res) = (&mut run).now_or_never() {
            self.immediate
                .push_back(WorkerReport { worker: worker.clone(), report: handler_report(id, res) });
            return;
        }
        let (abort, registration) = AbortHandle::new_pair();
        let w = worker.clone();
        ctx.spawn(actix::fut::wrap_future(Abortable::new(run, registration)).map(
            move |res, act: &mut TypePool, ctx| {
                // An aborted attempt was already ended by whoever aborted it.
                if let Ok(res) = res {
                    act.on_report(WorkerReport { worker: w, report: handler_report(id, res) }, ctx);
                }
            },
        ));
        if let Some(slot) = self.workers.get_mut(worker) {
            slot.abort = Some(abort);
        }
    }
}

/// Progress an in-process handler reported and the pool has not read yet.
pub(super) type ProgressBuffer = Arc<std::sync::Mutex<Vec<(TaskId, u8, Option<String>)>>>;

impl TypePool {
    /// Reads the progress an in-process slot buffered.
    pub(super) fn drain_progress(&mut self, worker: &WorkerId) -> Vec<(TaskId, u8, Option<String>)> {
        match self.workers.get(worker) {
            Some(slot) => std::mem::take(&mut *slot.progress.lock().unwrap_or_else(|e| e.into_inner())),
            None => Vec::new(),
        }
    }
}

/// What a handler's end tells the pool: its outcome, or a crash if it panicked.
fn handler_report(id: TaskId, res: std::thread::Result<Result<Value, TaskError>>) -> Report {
    match res {
        Ok(outcome) => Report::Done { id, outcome },
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Report::Crashed { id, message: format!("the handler panicked: {text}") }
        }
    }
}
