//! Resource accounting of attempts: the resource monitor's samples folded into the running
//! attempt of each worker, and the figures written when an attempt ends (the pure folding is
//! `usage::UsageMeter`).

use tokio::time::Instant;

use super::workers::WorkerState;
use super::{Held, TypePool};
use crate::messages::UsageSampled;
use crate::task::{TaskId, TaskResources};
use crate::usage::SeenAs;

impl TypePool {
    /// Folds one sample of this pool's workers into their slots.
    pub(super) fn fold_usage(&mut self, msg: UsageSampled) {
        let UsageSampled { taken, workers } = msg;
        for (worker, sample) in workers {
            let Some(slot) = self.workers.get_mut(&worker) else { continue };
            let seen = match slot.state {
                WorkerState::Busy => SeenAs::Busy,
                WorkerState::Idle if slot.idle_since <= taken => SeenAs::Idle,
                _ => SeenAs::Other,
            };
            slot.usage.fold(&sample, taken, seen);
        }
    }

    /// The figures of the attempt of `id`, ended at `now`, counted in the metrics; `None`
    /// when the task is not running (it was waiting or sent ahead).
    pub(super) fn end_usage(&mut self, id: &TaskId, now: Instant) -> Option<TaskResources> {
        let held = self.queue.get(id).and_then(|p| p.held());
        let Some(Held::Running { worker, started, .. }) = held else { return None };
        let wall_ms = now.saturating_duration_since(*started).as_millis() as u64;
        // An in-process attempt has no process to sample: its wall time (and GPUs) is all
        // there is; and without GPUs its slot need not be looked up. A worker whose exit was
        // handled first took its samples with it.
        let (sampled, placed) = (self.handler.is_none(), self.cfg.gpus() > 0);
        let slot = if sampled || placed { self.workers.get_mut(worker) } else { None };
        let resources = match slot {
            Some(slot) if sampled => {
                let gpus = slot.gpus().to_vec();
                slot.usage.finish(wall_ms, gpus)
            }
            Some(slot) => TaskResources { wall_ms, gpus: slot.gpus().to_vec(), ..TaskResources::default() },
            None => TaskResources { wall_ms, ..TaskResources::default() },
        };
        if let Some(peak) = resources.peak_rss_bytes {
            self.metrics.peak_rss.observe(peak as f64);
        }
        if !resources.gpus.is_empty() {
            self.metrics.gpu_seconds.inc_by(resources.gpu_seconds());
        }
        Some(resources)
    }
}
