//! Scaling a pool: by hand (`Scale`) within `max_concurrent`, `max_workers` and the warm
//! floor, and by the scaling monitor (`AutoScale`) through `policy::scaling_decision`; both ask
//! `policy::admission` whether workers may start. A manual scale-up whose workers do not all
//! fit on the GPUs now owes the rest, which wait for room (`policy::manual`).

use std::time::Duration;

use actix::Context;

use super::TypePool;
use super::stop::StopReason;
use super::workers::WorkerState;
use crate::error::{Error, ErrorKind};
use crate::events::EventKind;
use crate::messages::{ScaleAction, Scaled, WorkerId};
use crate::policy::admission::{self, Admission, AdmissionInput, Asker};
use crate::policy::manual;
use crate::policy::{ScalingDecision, ScalingInput, scaling_decision};

impl TypePool {
    /// Scales the type by hand: up by starting workers at once (all or none may start, but
    /// those the GPUs have no room for now wait for it), down by not starting those still
    /// waiting first, then retiring idle workers and busy ones once their task is done.
    pub(super) fn scale(&mut self, action: ScaleAction, ctx: &mut Context<Self>) -> Result<Scaled, Error> {
        if self.draining.is_some() {
            return Err(Error::new(ErrorKind::ShuttingDown, "the pool is shutting down"));
        }
        match action {
            ScaleAction::Up(count) => self.scale_up(count, ctx),
            ScaleAction::Down(count) => self.scale_down(count),
        }
    }

    /// Workers still owed to a manual scale-up.
    pub(super) fn scale_owed(&self) -> usize {
        manual::owed(self.scale_target, self.live_workers())
    }

    fn scale_up(&mut self, count: usize, ctx: &mut Context<Self>) -> Result<Scaled, Error> {
        let live = self.live_workers();
        // Those still owed count as asked for already, against every limit.
        let owed = self.scale_owed();
        let asked = owed + count;
        let input =
            self.admission_input(Asker::Manual, asked, live, self.workers.count(WorkerState::Starting));
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
                        "cannot add {} workers to {}: max_concurrent is {} and {} are alive{}",
                        count,
                        self.name,
                        self.cfg.max_concurrent,
                        self.workers.len(),
                        if owed > 0 { format!(" or waiting for GPU room ({owed})") } else { String::new() }
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
        if let Some(why) = self.shared.gpus.never_fits(&self.cfg) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("cannot add workers to {}: {why}", self.name),
            ));
        }
        // Workers that could never all run at once would wait for ever (and keep their
        // type's wait on show): the scale-up is refused instead.
        if let Some(most) = self.shared.gpus.most_at_once(&self.cfg, live + asked)
            && live + asked > most
        {
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "cannot add {count} workers to {}: this machine's GPUs can hold at most {most} of its \
                     workers at once, and {live} are alive{}",
                    self.name,
                    if owed > 0 { format!(" ({owed} more waiting for GPU room)") } else { String::new() }
                ),
            ));
        }
        let started = self.start_workers(asked, ctx);
        self.scale_target = manual::target_after_up(live, asked, started);
        if started > 0 {
            self.scaled(true, live + started, "manual");
        }
        let waiting = asked - started;
        let gpu_wait = (waiting > 0).then(|| self.shared.gpus.wait_reason(&self.name)).flatten();
        if let Some(why) = &gpu_wait {
            log::info!("{}: {waiting} worker(s) of a manual scale-up wait: {why}", self.name);
        }
        Ok(Scaled { workers: live + asked, started, waiting, gpu_wait })
    }

    fn scale_down(&mut self, count: usize) -> Result<Scaled, Error> {
        let live = self.live_workers();
        let floor = self.min_workers();
        let owed = self.scale_owed();
        if count > (live + owed).saturating_sub(floor) {
            let waiting =
                if owed > 0 { format!(" ({owed} more waiting for GPU room)") } else { String::new() };
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "cannot remove {} workers from {}: {live} are alive{waiting} and min_workers is {floor}",
                    count, self.name
                ),
            ));
        }
        let (unstarted, count) = manual::split_down(count, owed);
        let waiting = owed - unstarted;
        self.scale_target = (waiting > 0).then_some(live + waiting);
        if waiting == 0 && owed > 0 {
            // Nothing is owed any more: the wait ends unless demand takes it up again.
            self.end_gpu_wait();
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
        if count > 0 {
            self.scaled(false, live - count, "manual");
        }
        let gpu_wait = (waiting > 0).then(|| self.shared.gpus.wait_reason(&self.name)).flatten();
        Ok(Scaled { workers: live - count + waiting, started: 0, waiting, gpu_wait })
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
            // Workers a manual scale-up still waits to complete are not retired as idle
            // (they would be started again at once).
            min_workers: admission::floor(
                self.cfg.min_workers,
                self.min_workers(),
                self.shared.lender.others_starved(&self.name),
            )
            .max(self.scale_target.unwrap_or(0).min(self.live_workers())),
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
