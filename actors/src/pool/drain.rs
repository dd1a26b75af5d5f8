//! The drain of a pool at shutdown (see `supervisor.rs` for the order): waiting tasks fail
//! at once with reason `shutdown` (or go back to a durable queue), idle workers stop, running
//! tasks have until the grace period ends, then they fail and every worker is killed; the
//! report goes out once the last worker's exit is seen.

use std::time::Duration;

use actix::{AsyncContext, Context, ResponseFuture};
use tokio::sync::oneshot;

use super::stop::StopReason;
use super::{DrainState, TypePool};
use crate::backend::memory::queue::Place;
use crate::messages::{ShutdownReport, WorkerId};
use crate::policy::retry::Failure;
use crate::task::TaskId;

impl TypePool {
    /// Starts the drain, with `timeout` for the running tasks; a second drain is answered at
    /// once with an empty report.
    pub(super) fn drain(
        &mut self,
        timeout: Duration,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<ShutdownReport> {
        let (tx, rx) = oneshot::channel();
        if self.draining.is_none() {
            self.draining = Some(DrainState { reply: Some(tx), report: ShutdownReport::default() });
            let waiting: Vec<TaskId> = self
                .queue
                .iter()
                .filter(|(_, p)| !matches!(p.place(), Place::Held(_)))
                .map(|(id, _)| id.clone())
                .collect();
            for id in &waiting {
                self.fail_attempt(id, Failure::Shutdown, ctx);
            }
            if let Some(d) = &mut self.draining {
                d.report.failed_waiting = waiting.len();
            }
            let idle: Vec<WorkerId> =
                self.workers.iter().filter(|(_, w)| !w.state.is_busy()).map(|(id, _)| id.clone()).collect();
            for id in idle {
                self.stop_worker(&id, false, StopReason::Shutdown);
            }
            ctx.run_later(timeout, |act, ctx| {
                let running: Vec<TaskId> = act.queue.iter().map(|(id, _)| id.clone()).collect();
                if let Some(d) = &mut act.draining {
                    d.report.failed_running = running.len();
                }
                for id in &running {
                    act.fail_attempt(id, Failure::Shutdown, ctx);
                }
                act.stop_all_workers(true);
                act.check_drained(ctx);
            });
            self.check_drained(ctx);
        } else {
            // A second drain request waits for nothing: the first one owns the reply.
            let _ = tx.send(ShutdownReport::default());
        }
        Box::pin(async move { rx.await.unwrap_or_default() })
    }

    /// Ends a task that cannot run because the pool is draining: failed with reason
    /// `shutdown`, or back to a durable queue.
    pub(super) fn fail_for_shutdown(&mut self, id: &TaskId, ctx: Option<&mut Context<Self>>) {
        if let Some(d) = &mut self.draining {
            d.report.failed_running += 1;
        }
        self.settle(id, Failure::Shutdown, ctx);
    }

    pub(super) fn check_drained(&mut self, ctx: &mut Context<Self>) {
        if self.draining.is_none() || !self.workers.is_empty() {
            return;
        }
        // No worker is left to run what is still live: it ends now, so every waiter hears.
        let live: Vec<TaskId> = self.queue.iter().map(|(id, _)| id.clone()).collect();
        for id in &live {
            self.fail_for_shutdown(id, Some(&mut *ctx));
        }
        if let Some(d) = &mut self.draining
            && let Some(reply) = d.reply.take()
        {
            let _ = reply.send(d.report.clone());
        }
    }

    pub(super) fn stop_all_workers(&mut self, kill: bool) {
        let ids: Vec<WorkerId> = self.workers.ids();
        for id in ids {
            self.stop_worker(&id, kill, StopReason::Shutdown);
        }
    }
}
