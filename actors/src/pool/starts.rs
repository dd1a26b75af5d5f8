//! Workers that fail to start: the pool's side of [`StartBackoff`] (see `policy::starts`).

use actix::{AsyncContext, Context};
use tokio::time::Instant;

use super::TypePool;
use crate::events::EventKind;
use crate::shared::StartFailures;
use crate::worker::runnable;

impl TypePool {
    /// Whether a process type's program can be run. One that cannot gives up at once
    /// (logged once, marked unavailable) instead of spawning workers that fail; checked at
    /// start and, while it gives up, instead of each try.
    pub(super) fn check_command(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(command) = self.command.clone().filter(|_| self.handler.is_none()) else { return true };
        let Err(why) = runnable(&command) else { return true };
        if !self.starts.gave_up() {
            log::error!("{}: {why}; the type takes no tasks until its command can run", self.name);
        }
        self.start_failed(why, None, ctx);
        false
    }

    /// A worker started at `started` failed to start (`None`: its program cannot be run at
    /// all): wait before the next try, and fail the waiting tasks once the type gives up.
    pub(super) fn start_failed(&mut self, error: String, started: Option<Instant>, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let already_gave_up = self.starts.gave_up();
        let unusable = started.is_none();
        let f = match started {
            None => self.starts.unusable(now, error.clone()),
            Some(started) => self.starts.failed(now, started, error.clone()),
        };
        let reason = self.starts.reason(&self.name).unwrap_or_else(|| error.clone());
        if already_gave_up || unusable {
            log::debug!("{reason}");
        } else {
            log::warn!("{reason}");
        }
        self.shared.events.emit(|| EventKind::StartBackoff {
            task_type: self.name.to_string(),
            failures: f.failures,
            retry_in_ms: f.retry_in.as_millis() as u64,
            gave_up: f.give_up,
            error: error.clone(),
        });
        let published = StartFailures { failures: f.failures, gave_up: f.give_up, reason: reason.clone() };
        self.shared.set_start_failures(&self.name, Some(published));
        if f.give_up {
            self.fail_ready(&reason, ctx);
        }
        if let Some(timer) = self.start_timer.take() {
            ctx.cancel_future(timer);
        }
        self.start_timer = Some(ctx.run_later(f.retry_in, |act, ctx| {
            act.start_timer = None;
            act.dispatch(ctx);
        }));
    }

    /// A worker became ready: the type starts workers again.
    pub(super) fn start_succeeded(&mut self, ctx: &mut Context<Self>) {
        if self.starts.failures() == 0 {
            return;
        }
        if self.starts.gave_up() {
            log::info!("{}: workers start again", self.name);
        }
        self.shared.set_start_failures(&self.name, None);
        self.starts.ready();
        if let Some(timer) = self.start_timer.take() {
            ctx.cancel_future(timer);
        }
    }

    /// Whether no worker may start now because of failed starts: the wait is not over.
    pub(super) fn start_waiting(&self) -> bool {
        self.starts.wait(Instant::now()).is_some()
    }

    /// Why no worker may start now, while [`TypePool::start_waiting`].
    pub(super) fn start_wait(&self) -> Option<String> {
        let now = Instant::now();
        self.starts.wait(now).and_then(|_| self.starts.status(&self.name, now))
    }

    /// Whether a type whose workers failed to start should try one now, without demand: that
    /// is how it finds out that they can start again (with shared queues it takes no tasks
    /// meanwhile).
    pub(super) fn wants_probe(&self) -> bool {
        self.starts.failures() > 0 && self.workers.is_empty() && !self.start_waiting()
    }
}
