//! What the monitors ask of a pool: health checks (pings, stuck tasks) and autoscaling.

use std::time::Duration;

use actix::{AsyncContext, Context, Handler};
use tokio::time::Instant;

use super::stop::StopReason;
use super::workers::WorkerState;
use super::{Held, TypePool};
use crate::events::EventKind;
use crate::messages::{AutoScale, HealthCheck, Ping, WorkerId};
use crate::policy::retry::Failure;
use crate::task::TaskId;

/// How far past its timeout a task may run before the health check calls it stuck. The
/// attempt's own timer fires first; this only catches a timer that did not.
const STUCK_GRACE: Duration = Duration::from_secs(5);

impl TypePool {
    /// Replaces idle workers whose last ping went unanswered past `ping_timeout`.
    pub(super) fn check_pings(&mut self, ping_timeout: Duration, ctx: &mut Context<Self>) {
        let silent: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| {
                w.state == WorkerState::Idle && w.ping.is_some_and(|(_, at)| at.elapsed() >= ping_timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in silent {
            let detail = format!("no pong within {} ms", ping_timeout.as_millis());
            log::warn!("worker {id} is unresponsive ({detail}): replacing it");
            self.shared.events.emit(|| EventKind::WorkerHealth {
                worker_id: id.to_string(),
                task_type: self.name.to_string(),
                healthy: false,
                detail,
            });
            self.stop_worker(&id, true, StopReason::Unresponsive);
        }
        self.dispatch(ctx);
    }

    /// Kills workers whose task ran far past its timeout.
    fn check_stuck(&mut self, ctx: &mut Context<Self>) {
        let stuck: Vec<(WorkerId, TaskId, Duration)> = self
            .queue
            .iter()
            .filter_map(|(id, p)| match p.held() {
                Some(Held::Running { worker, started, .. })
                    if started.elapsed() > p.task.timeout + STUCK_GRACE =>
                {
                    Some((worker.clone(), id.clone(), p.task.timeout))
                }
                _ => None,
            })
            .collect();
        for (worker, task, timeout) in stuck {
            self.shared.events.emit(|| EventKind::WorkerHealth {
                worker_id: worker.to_string(),
                task_type: self.name.to_string(),
                healthy: false,
                detail: format!("task {task} is stuck past its timeout"),
            });
            self.stop_worker(&worker, true, StopReason::Stuck);
            self.fail_attempt(&task, Failure::Timeout(timeout), ctx);
        }
    }

    /// A pong arrived: the worker is alive.
    pub(super) fn on_pong(&mut self, worker: &WorkerId, n: u64) {
        let Some(slot) = self.workers.get_mut(worker) else { return };
        if let Some((sent, at)) = slot.ping
            && sent == n
        {
            slot.ping = None;
            let detail = format!("pong in {} µs", at.elapsed().as_micros());
            self.shared.events.emit(|| EventKind::WorkerHealth {
                worker_id: worker.to_string(),
                task_type: self.name.to_string(),
                healthy: true,
                detail,
            });
        }
    }
}

impl Handler<HealthCheck> for TypePool {
    type Result = ();

    fn handle(&mut self, msg: HealthCheck, ctx: &mut Context<Self>) {
        self.check_pings(msg.ping_timeout, ctx);
        self.check_stuck(ctx);
        let idle: Vec<WorkerId> = self.workers.idle().to_vec();
        for id in idle {
            let n = self.next_ping;
            if let Some(slot) = self.workers.get_mut(&id)
                && slot.ping.is_none()
            {
                self.next_ping += 1;
                slot.ping = Some((n, Instant::now()));
                slot.addr.do_send(Ping(n));
            }
        }
        // Look again once the pongs are due, so a silent worker goes within one timeout.
        let timeout = msg.ping_timeout;
        ctx.run_later(timeout, move |act, ctx| act.check_pings(timeout, ctx));
    }
}

impl Handler<AutoScale> for TypePool {
    type Result = ();

    fn handle(&mut self, _: AutoScale, ctx: &mut Context<Self>) {
        if self.draining.is_none() {
            self.autoscale(ctx);
        }
    }
}
