//! Whether workers of a type may start now: one rule for every way a pool starts workers
//! (the ready queue's demand, the replacement of a restarted worker, a manual scale-up, the
//! scaling monitor), with the checks each of them makes spelled out in one place.
//!
//! The checks are draining, the wait after failed starts (see [`super::starts`]), the
//! type's `max_concurrent`, the tree-wide `max_workers` slots, and the machine: the GPU a
//! type needs, the CPU threshold and free memory (see [`machine`]). A start that passes still
//! takes a tree-wide slot before it spawns, which another type may have taken meanwhile.
//!
//! Slot lending (which type gives a warm worker back to a starved one) is decided here too:
//! [`floor`], [`should_yield`] and [`releases_idle`].

use crate::config::TypeConfig;
use crate::resources::ResourceSnapshot;

/// Who asks to start workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asker {
    /// Ready tasks (or the warm floor, or a probe after failed starts) call for workers.
    Demand,
    /// A worker restarted by hand exited and is replaced.
    Replace,
    /// A caller scales the type up by hand.
    Manual,
    /// The scaling monitor asks whether it may scale up.
    Scaling,
}

/// What the rule sees of a type when workers would start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AdmissionInput {
    /// Who asks.
    pub(crate) asker: Asker,
    /// Workers asked for.
    pub(crate) wanted: usize,
    /// Whether the pool is shutting down.
    pub(crate) draining: bool,
    /// Failed starts in a row: after one, demand tries a single worker at a time.
    pub(crate) start_failures: u32,
    /// Workers still starting.
    pub(crate) starting: usize,
    /// Workers alive and not stopping, which the CPU threshold looks at.
    pub(crate) live: usize,
    /// Workers holding a slot of the type, stopping ones included (`max_concurrent` counts them).
    pub(crate) workers: usize,
    /// The type's `max_concurrent`.
    pub(crate) max_concurrent: usize,
    /// Tree-wide slots free (`max_workers` less those taken).
    pub(crate) free_slots: usize,
    /// Whether the type needs a GPU: a manual start checks the machine only then.
    pub(crate) gpu_required: bool,
}

/// The rule's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Start this many workers, each in a tree-wide slot if one is still free.
    Start(usize),
    /// The pool is shutting down.
    Draining,
    /// Wait: the wait after failed starts is not over, or one try is already under way.
    Backoff,
    /// `max_concurrent` leaves room for this many, fewer than asked (often none).
    Full { room: usize },
    /// `max_workers` leaves this many slots free, too few.
    NoSlots { free: usize },
    /// The machine holds workers back: why.
    Blocked(String),
}

/// Decides whether `input.asker` may start workers now. Two figures are asked for only when
/// the rule gets to them, so that the usual refusals (no room) read neither the clock nor
/// shared state: `waiting`, whether the wait after failed starts is not over, and `machine`,
/// whether the machine lets a worker start with the given live workers (see [`machine`]).
///
/// - Demand: not draining; room under `max_concurrent`; the start wait over, and after
///   failed starts one worker at a time; the machine. Capped at the room.
/// - Replace: not draining; the start wait over; room for one. The machine is not asked: the
///   new worker takes the place of one that ran.
/// - Manual: not draining; the start wait over; for a GPU type only, the machine as for a
///   first worker (a usable GPU and free memory; the CPU threshold never holds it back);
///   room for all; slots for all. All or nothing.
/// - Scaling: a free slot; not draining; the start wait over; the machine. The scaling
///   decision caps the count itself.
pub(crate) fn admit(
    input: &AdmissionInput,
    waiting: impl FnOnce() -> bool,
    machine: impl FnOnce(usize) -> Result<(), String>,
) -> Admission {
    let room = input.max_concurrent.saturating_sub(input.workers);
    match input.asker {
        Asker::Demand => {
            if input.draining {
                return Admission::Draining;
            }
            let want = input.wanted.min(room);
            if want == 0 {
                return Admission::Full { room };
            }
            if waiting() {
                return Admission::Backoff;
            }
            let want =
                if input.start_failures > 0 { want.min(1).saturating_sub(input.starting) } else { want };
            if want == 0 {
                return Admission::Backoff;
            }
            match machine(input.live) {
                Ok(()) => Admission::Start(want),
                Err(why) => Admission::Blocked(why),
            }
        }
        Asker::Replace => {
            if input.draining {
                Admission::Draining
            } else if waiting() {
                Admission::Backoff
            } else if room == 0 {
                Admission::Full { room }
            } else {
                Admission::Start(input.wanted.min(room))
            }
        }
        Asker::Manual => {
            if input.draining {
                return Admission::Draining;
            }
            if waiting() {
                return Admission::Backoff;
            }
            if input.gpu_required
                && let Err(why) = machine(0)
            {
                return Admission::Blocked(why);
            }
            if input.wanted > room {
                return Admission::Full { room };
            }
            if input.wanted > input.free_slots {
                return Admission::NoSlots { free: input.free_slots };
            }
            Admission::Start(input.wanted)
        }
        Asker::Scaling => {
            if input.free_slots == 0 {
                return Admission::NoSlots { free: 0 };
            }
            if input.draining {
                return Admission::Draining;
            }
            if waiting() {
                return Admission::Backoff;
            }
            match machine(input.live) {
                Ok(()) => Admission::Start(input.wanted),
                Err(why) => Admission::Blocked(why),
            }
        }
    }
}

/// Whether the machine lets another worker of type `cfg` start, with `live` workers of the
/// type alive: the GPU it needs usable; system CPU at or below its `cpu_threshold` (a type
/// with no live worker may always start its first, so that it cannot starve on a machine
/// other work keeps busy); memory for its `memory_limit_mb` available. Before the first
/// sample only the GPU is checked.
pub(crate) fn machine(r: &ResourceSnapshot, cfg: &TypeConfig, live: usize) -> Result<(), String> {
    if cfg.gpu_required && !r.gpu.available {
        let why = r.gpu.reason.clone().unwrap_or_else(|| "no usable GPU".to_string());
        return Err(format!("the type needs a GPU: {why}"));
    }
    if r.sampled_at == 0 {
        return Ok(());
    }
    if live > 0 && r.system.cpu_percent > cfg.cpu_threshold {
        return Err(format!(
            "system CPU {:.0}% is above the type's cpu_threshold {}%",
            r.system.cpu_percent, cfg.cpu_threshold
        ));
    }
    let need = cfg.memory_limit_mb.saturating_mul(1 << 20);
    if r.system.memory_available_bytes < need {
        return Err(format!(
            "{} MiB of memory available, a worker may use memory_limit_mb {} MiB",
            r.system.memory_available_bytes >> 20,
            cfg.memory_limit_mb
        ));
    }
    Ok(())
}

/// The workers a type keeps even when idle: its `warm` count, or only its own `min_workers`
/// while another type is starved for a slot (warm workers past the type's own minimum give
/// way to real work elsewhere).
#[inline]
pub(crate) fn floor(min_workers: usize, warm: usize, others_starved: bool) -> usize {
    if others_starved { min_workers } else { warm }
}

/// Whether, while another type is starved for a slot, a worker that just finished a task
/// gives its slot away: the type holds more than its own `min_workers`, and has no ready task
/// or more than one worker. (The caller asks only while another type is starved, so that the
/// usual finish of a task counts no workers.)
#[inline]
pub(crate) fn should_yield(live: usize, min_workers: usize, ready: usize) -> bool {
    live > min_workers && (ready == 0 || live > 1)
}

/// Whether a type asked for a slot by a starved one gives back an idle worker: it holds more
/// than its own `min_workers` and has no ready task.
#[inline]
pub(crate) fn releases_idle(live: usize, min_workers: usize, ready: usize) -> bool {
    live > min_workers && ready == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::GpuStatus;

    fn input(asker: Asker, wanted: usize) -> AdmissionInput {
        AdmissionInput {
            asker,
            wanted,
            draining: false,
            start_failures: 0,
            starting: 0,
            live: 1,
            workers: 1,
            max_concurrent: 4,
            free_slots: 10,
            gpu_required: false,
        }
    }

    fn fine(_: usize) -> Result<(), String> {
        Ok(())
    }

    fn busy(_: usize) -> Result<(), String> {
        Err("busy".to_string())
    }

    #[test]
    fn demand_is_capped_by_room_and_one_try_after_failures() {
        assert_eq!(admit(&input(Asker::Demand, 9), || false, fine), Admission::Start(3));
        let full = AdmissionInput { workers: 4, ..input(Asker::Demand, 2) };
        assert_eq!(admit(&full, || false, fine), Admission::Full { room: 0 });
        let after_failures = AdmissionInput { start_failures: 2, ..input(Asker::Demand, 3) };
        assert_eq!(admit(&after_failures, || false, fine), Admission::Start(1));
        let trying = AdmissionInput { starting: 1, ..after_failures };
        assert_eq!(admit(&trying, || false, fine), Admission::Backoff);
        assert_eq!(admit(&input(Asker::Demand, 1), || true, fine), Admission::Backoff);
        let draining = AdmissionInput { draining: true, ..input(Asker::Demand, 1) };
        assert_eq!(admit(&draining, || false, fine), Admission::Draining);
        assert_eq!(admit(&input(Asker::Demand, 1), || false, busy), Admission::Blocked("busy".to_string()));
    }

    #[test]
    fn the_machine_is_asked_last_and_with_the_right_count() {
        let mut asked = None;
        let full = AdmissionInput { workers: 4, ..input(Asker::Demand, 1) };
        let waiting = || -> bool { panic!("the start wait is not asked while there is no room") };
        admit(&full, waiting, |live| {
            asked = Some(live);
            Ok(())
        });
        assert_eq!(asked, None);
        let manual = AdmissionInput { gpu_required: true, live: 3, ..input(Asker::Manual, 1) };
        admit(
            &manual,
            || false,
            |live| {
                asked = Some(live);
                Ok(())
            },
        );
        assert_eq!(asked, Some(0));
        // A manual start of a type that needs no GPU does not look at the machine.
        assert_eq!(admit(&input(Asker::Manual, 1), || false, busy), Admission::Start(1));
    }

    #[test]
    fn replace_skips_the_machine_and_the_one_try_rule() {
        let r = AdmissionInput { start_failures: 3, starting: 1, ..input(Asker::Replace, 1) };
        assert_eq!(admit(&r, || false, busy), Admission::Start(1));
        let full = AdmissionInput { workers: 4, ..r };
        assert_eq!(admit(&full, || false, fine), Admission::Full { room: 0 });
        assert_eq!(admit(&r, || true, fine), Admission::Backoff);
    }

    #[test]
    fn manual_is_all_or_nothing() {
        assert_eq!(admit(&input(Asker::Manual, 3), || false, busy), Admission::Start(3));
        assert_eq!(admit(&input(Asker::Manual, 4), || false, fine), Admission::Full { room: 3 });
        let few = AdmissionInput { free_slots: 2, ..input(Asker::Manual, 3) };
        assert_eq!(admit(&few, || false, fine), Admission::NoSlots { free: 2 });
        let gpu = AdmissionInput { gpu_required: true, ..input(Asker::Manual, 1) };
        assert_eq!(admit(&gpu, || false, busy), Admission::Blocked("busy".to_string()));
    }

    #[test]
    fn scaling_needs_a_free_slot_first() {
        let none = AdmissionInput { free_slots: 0, draining: true, ..input(Asker::Scaling, 1) };
        assert_eq!(admit(&none, || false, fine), Admission::NoSlots { free: 0 });
        assert_eq!(admit(&input(Asker::Scaling, 1), || false, fine), Admission::Start(1));
        assert_eq!(admit(&input(Asker::Scaling, 1), || false, busy), Admission::Blocked("busy".to_string()));
    }

    #[test]
    fn machine_checks_gpu_cpu_and_memory() {
        let cfg = TypeConfig { cpu_threshold: 80.0, memory_limit_mb: 512, ..TypeConfig::defaults_for("t") };
        let mut r = ResourceSnapshot::default();
        // Before the first sample anything may start.
        assert_eq!(machine(&r, &cfg, 5), Ok(()));
        r.sampled_at = 1;
        r.system.cpu_percent = 95.0;
        r.system.memory_available_bytes = 1 << 30;
        assert!(machine(&r, &cfg, 1).unwrap_err().contains("cpu_threshold 80%"));
        // The first worker of a type is never held back by CPU.
        assert_eq!(machine(&r, &cfg, 0), Ok(()));
        r.system.memory_available_bytes = 100 << 20;
        assert_eq!(
            machine(&r, &cfg, 0),
            Err("100 MiB of memory available, a worker may use memory_limit_mb 512 MiB".to_string())
        );
        let gpu = TypeConfig { gpu_required: true, ..cfg };
        r.gpu = GpuStatus { available: false, reason: None, simulated: false };
        assert_eq!(machine(&r, &gpu, 0), Err("the type needs a GPU: no usable GPU".to_string()));
    }

    #[test]
    fn lending_rules() {
        assert_eq!(floor(1, 3, false), 3);
        assert_eq!(floor(1, 3, true), 1);
        assert!(should_yield(2, 0, 3));
        assert!(!should_yield(1, 0, 3));
        assert!(should_yield(1, 0, 0));
        assert!(!should_yield(1, 1, 0));
        assert!(releases_idle(2, 1, 0));
        assert!(!releases_idle(2, 1, 1));
        assert!(!releases_idle(1, 1, 0));
    }
}
