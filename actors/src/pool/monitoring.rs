//! What the monitors ask of a pool: health checks (pings, stuck tasks) and autoscaling.

use super::*;
use crate::policy::{ScalingDecision, ScalingInput, scaling_decision};

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
            .tasks
            .iter()
            .filter_map(|(id, p)| match &p.state {
                State::Running { worker, started, .. } if started.elapsed() > p.timeout + STUCK_GRACE => {
                    Some((worker.clone(), id.clone(), p.timeout))
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

    fn scaling_input(&self) -> ScalingInput {
        let live = self.workers.values().filter(|w| w.state != WorkerState::Stopping && !w.retire).count();
        let oldest = self.oldest_ready_wait();
        let free_slot = self.shared.slots_used() < self.shared.max_workers;
        ScalingInput {
            live,
            starting: self.workers.count(WorkerState::Starting),
            idle_for: self
                .workers
                .idle()
                .iter()
                .filter_map(|id| self.workers.get(id))
                .map(|w| w.idle_since.elapsed())
                .collect(),
            ready: self.queue.ready(),
            oldest_wait: oldest,
            min_workers: if self.shared.others_starved(&self.name) {
                self.cfg.min_workers
            } else {
                self.min_workers()
            },
            max_workers: self.cfg.max_concurrent,
            can_start: free_slot
                && self.draining.is_none()
                && !self.start_waiting()
                && self.shared.can_start(&self.cfg, live).is_ok(),
            idle_timeout: Duration::from_millis(self.cfg.idle_timeout_ms),
        }
    }

    /// Applies the scaling policy.
    fn autoscale(&mut self, ctx: &mut Context<Self>) {
        let input = self.scaling_input();
        match scaling_decision(&input) {
            ScalingDecision::Hold => {}
            ScalingDecision::Up(n, reason) => {
                let mut started = 0;
                for _ in 0..n {
                    if !self.shared.try_take_slot() {
                        break;
                    }
                    self.start_worker(ctx);
                    started += 1;
                }
                if started > 0 {
                    self.scaled(true, input.live + started, reason);
                }
            }
            ScalingDecision::Down(n, reason) => {
                // The longest idle go first: they sit at the bottom of the idle stack.
                let victims: Vec<WorkerId> = self.workers.idle().iter().take(n).cloned().collect();
                // The policy only scales down workers idle past the idle timeout.
                for id in &victims {
                    self.stop_worker(id, false, StopReason::Idle);
                }
                self.scaled(false, input.live - victims.len(), reason);
            }
        }
    }

    /// Records a scaling step: an event and a metric.
    pub(super) fn scaled(&self, up: bool, workers: usize, reason: &str) {
        let direction = if up { "up" } else { "down" };
        self.shared.metrics.scale_events.with_label_values(&[&self.name, direction]).inc();
        log::info!("{} scaled {direction} to {workers} workers ({reason})", self.name);
        let (task_type, reason) = (self.name.to_string(), reason.to_string());
        self.shared.events.emit(|| {
            if up {
                EventKind::ScaleUp { task_type, workers, reason }
            } else {
                EventKind::ScaleDown { task_type, workers, reason }
            }
        });
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
