//! Scaling a pool: by hand (`Scale`) within `max_concurrent`, `max_workers` and the warm
//! floor, and by the scaling monitor (`AutoScale`) through `policy::scaling_decision`; both ask
//! `policy::admission` whether workers may start.

use std::time::Duration;

use actix::Context;

use super::TypePool;
use super::stop::StopReason;
use super::workers::WorkerState;
use crate::error::{Error, ErrorKind};
use crate::events::EventKind;
use crate::messages::{ScaleAction, WorkerId};
use crate::policy::admission::{self, Admission, AdmissionInput, Asker};
use crate::policy::{ScalingDecision, ScalingInput, scaling_decision};

impl TypePool {
    /// Scales the type by hand: up by starting workers at once (all or none may start), down
    /// by retiring idle workers first and busy ones once their task is done.
    pub(super) fn scale(&mut self, action: ScaleAction, ctx: &mut Context<Self>) -> Result<usize, Error> {
        if self.draining.is_some() {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        match action {
            ScaleAction::Up(count) => self.scale_up(count, ctx),
            ScaleAction::Down(count) => self.scale_down(count),
        }
    }

    fn scale_up(&mut self, count: usize, ctx: &mut Context<Self>) -> Result<usize, Error> {
        let live = self.live_workers();
        let input =
            self.admission_input(Asker::Manual, count, live, self.workers.count(WorkerState::Starting));
        let mut wait = None;
        let admission = admission::admit(
            &input,
            || {
                wait = self.start_wait();
                wait.is_some()
            },
            |live| self.shared.can_start(&self.cfg, live),
        );
        match admission {
            Admission::Start(_) => {}
            Admission::Draining => {
                return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
            }
            Admission::Backoff => {
                let why = wait.unwrap_or_default();
                return Err(Error::new(ErrorKind::Unavailable, format!("cannot add workers: {why}")));
            }
            Admission::Blocked(why) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot add workers to {}: {why}", self.name),
                ));
            }
            Admission::Full { .. } => {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "cannot add {} workers to {}: max_concurrent is {} and {} are alive",
                        count,
                        self.name,
                        self.cfg.max_concurrent,
                        self.workers.len()
                    ),
                ));
            }
            Admission::NoSlots { free } => {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "cannot add {} workers: max_workers is {} and {free} slots are free",
                        count,
                        self.shared.lender.max_workers()
                    ),
                ));
            }
        }
        let started = self.start_workers(count, ctx);
        self.scaled(true, live + started, "manual");
        Ok(live + started)
    }

    fn scale_down(&mut self, count: usize) -> Result<usize, Error> {
        let live = self.live_workers();
        let floor = self.min_workers();
        if count > live.saturating_sub(floor) {
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "cannot remove {} workers from {}: {live} are alive and min_workers is {floor}",
                    count, self.name
                ),
            ));
        }
        // Idle workers go first; busy ones finish their task and are then retired.
        let mut victims: Vec<WorkerId> = self.workers.idle().iter().rev().take(count).cloned().collect();
        if victims.len() < count {
            let extra = self
                .workers
                .iter()
                .filter(|(id, w)| w.state != WorkerState::Stopping && !w.retire && !victims.contains(id))
                .map(|(id, _)| id.clone())
                .take(count - victims.len())
                .collect::<Vec<_>>();
            victims.extend(extra);
        }
        for id in &victims {
            if let Some(slot) = self.workers.get_mut(id).filter(|w| w.state.is_busy()) {
                // Let the running task finish: retire the worker when it is free.
                slot.retire = true;
                continue;
            }
            self.stop_worker(id, false, StopReason::ScaledDown);
        }
        self.scaled(false, live - count, "manual");
        Ok(live - count)
    }

    /// What the admission rule sees of this type for `asker`, wanting `wanted` workers with
    /// `live` alive and `starting` of them starting.
    pub(super) fn admission_input(
        &self,
        asker: Asker,
        wanted: usize,
        live: usize,
        starting: usize,
    ) -> AdmissionInput {
        AdmissionInput {
            asker,
            wanted,
            draining: self.draining.is_some(),
            start_failures: self.starts.failures(),
            starting,
            live,
            workers: self.workers.len(),
            max_concurrent: self.cfg.max_concurrent,
            free_slots: self.shared.lender.free(),
            gpu_required: self.cfg.gpu_required,
        }
    }

    /// Whether the scaling monitor may start a worker now, with `live` workers staying.
    fn scaling_may_start(&self, live: usize, starting: usize) -> bool {
        let input = self.admission_input(Asker::Scaling, 1, live, starting);
        let admission =
            admission::admit(&input, || self.start_waiting(), |live| self.shared.can_start(&self.cfg, live));
        matches!(admission, Admission::Start(_))
    }

    fn scaling_input(&self) -> ScalingInput {
        let live = self.workers.values().filter(|w| w.state != WorkerState::Stopping && !w.retire).count();
        let oldest = self.oldest_ready_wait();
        let starting = self.workers.count(WorkerState::Starting);
        ScalingInput {
            live,
            starting,
            idle_for: self
                .workers
                .idle()
                .iter()
                .filter_map(|id| self.workers.get(id))
                .map(|w| w.idle_since.elapsed())
                .collect(),
            ready: self.queue.ready(),
            oldest_wait: oldest,
            min_workers: admission::floor(
                self.cfg.min_workers,
                self.min_workers(),
                self.shared.lender.others_starved(&self.name),
            ),
            max_workers: self.cfg.max_concurrent,
            can_start: self.scaling_may_start(live, starting),
            idle_timeout: Duration::from_millis(self.cfg.idle_timeout_ms),
        }
    }

    /// Applies the scaling policy.
    pub(super) fn autoscale(&mut self, ctx: &mut Context<Self>) {
        let input = self.scaling_input();
        match scaling_decision(&input) {
            ScalingDecision::Hold => {}
            ScalingDecision::Up(n, reason) => {
                let started = self.start_workers(n, ctx);
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
