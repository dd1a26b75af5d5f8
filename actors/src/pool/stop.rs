//! Why a pool stops a worker, or how a worker's exit is told: one name per cause, the same
//! in logs, `worker_exited` events and the `workerpool_worker_restarts_total` labels.

/// Why a worker stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// It died under a task (or its handler panicked).
    Crashed,
    /// Its task ran past its timeout.
    Timeout,
    /// A caller cancelled its task.
    Cancelled,
    /// It used more memory than `memory_limit_mb`.
    MemoryLimitExceeded,
    /// It used more GPU memory than `gpu_memory_mb`.
    GpuMemoryLimitExceeded,
    /// A GPU it was placed on was drained (gone from the sample, or answering errors).
    GpuDrained,
    /// It wrote a stdout line past `max_output_line_mb`.
    OutputTooLarge,
    /// It did not answer a health ping in time.
    Unresponsive,
    /// Its task ran far past its timeout and the attempt's timer did not fire.
    Stuck,
    /// Restarted by hand: a fresh worker replaces it.
    Restart,
    /// It could not be spawned, or exited before it was ready.
    FailedToStart,
    /// It did not answer its first ping within `start_timeout_ms`.
    StartupTimeout,
    /// It ran `max_tasks_per_worker` tasks.
    Recycled,
    /// The pool is shutting down.
    Shutdown,
    /// It gave its slot to a type that could not start a worker.
    Yielded,
    /// Scaled down by hand.
    ScaledDown,
    /// Scaled down by the scaling monitor: idle past `idle_timeout_ms`.
    Idle,
    /// It exited while idle, unasked.
    Exited,
    /// It stopped with no reason recorded.
    Stopped,
}

impl StopReason {
    /// The reasons that count as restarts (not [`StopReason::is_planned`]), for the metrics'
    /// zero series.
    pub(crate) const UNPLANNED: [StopReason; 13] = [
        StopReason::Crashed,
        StopReason::Timeout,
        StopReason::Cancelled,
        StopReason::MemoryLimitExceeded,
        StopReason::GpuMemoryLimitExceeded,
        StopReason::OutputTooLarge,
        StopReason::Unresponsive,
        StopReason::Stuck,
        StopReason::Restart,
        StopReason::FailedToStart,
        StopReason::StartupTimeout,
        StopReason::Exited,
        StopReason::Stopped,
    ];

    /// The reason as events, logs and metric labels name it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StopReason::Crashed => "crashed",
            StopReason::Timeout => "timeout",
            StopReason::Cancelled => "cancelled",
            StopReason::MemoryLimitExceeded => "memory_limit_exceeded",
            StopReason::GpuMemoryLimitExceeded => "gpu_memory_limit_exceeded",
            StopReason::GpuDrained => "gpu_drained",
            StopReason::OutputTooLarge => "output_too_large",
            StopReason::Unresponsive => "unresponsive",
            StopReason::Stuck => "stuck",
            StopReason::Restart => "restart",
            StopReason::FailedToStart => "failed_to_start",
            StopReason::StartupTimeout => "startup_timeout",
            StopReason::Recycled => "recycled",
            StopReason::Shutdown => "shutdown",
            StopReason::Yielded => "yielded",
            StopReason::ScaledDown => "scaled_down",
            StopReason::Idle => "idle",
            StopReason::Exited => "exited",
            StopReason::Stopped => "stopped",
        }
    }

    /// Whether the stop is part of normal operation; any other exit counts as a restart.
    pub(crate) fn is_planned(self) -> bool {
        matches!(
            self,
            StopReason::Shutdown
                | StopReason::ScaledDown
                | StopReason::Idle
                | StopReason::Yielded
                | StopReason::Recycled
                | StopReason::GpuDrained
        )
    }

    /// Whether the worker is killed with no grace to take more: a worker over its memory
    /// limit keeps growing while it waits, and a drained GPU may hang whoever uses it.
    pub(crate) fn kills_at_once(self) -> bool {
        matches!(
            self,
            StopReason::MemoryLimitExceeded | StopReason::GpuMemoryLimitExceeded | StopReason::GpuDrained
        )
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::StopReason::{self, *};

    const ALL: [StopReason; 19] = [
        Crashed,
        Timeout,
        Cancelled,
        MemoryLimitExceeded,
        GpuMemoryLimitExceeded,
        GpuDrained,
        OutputTooLarge,
        Unresponsive,
        Stuck,
        Restart,
        FailedToStart,
        StartupTimeout,
        Recycled,
        Shutdown,
        Yielded,
        ScaledDown,
        Idle,
        Exited,
        Stopped,
    ];

    #[test]
    fn names_are_the_published_labels() {
        let names: Vec<&str> = ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "crashed",
                "timeout",
                "cancelled",
                "memory_limit_exceeded",
                "gpu_memory_limit_exceeded",
                "gpu_drained",
                "output_too_large",
                "unresponsive",
                "stuck",
                "restart",
                "failed_to_start",
                "startup_timeout",
                "recycled",
                "shutdown",
                "yielded",
                "scaled_down",
                "idle",
                "exited",
                "stopped",
            ]
        );
        assert_eq!(MemoryLimitExceeded.to_string(), "memory_limit_exceeded");
    }

    #[test]
    fn planned_stops_are_not_restarts() {
        let planned: Vec<&str> = ALL.iter().filter(|r| r.is_planned()).map(|r| r.as_str()).collect();
        // A drained GPU's workers are stopped by the pool's choice, not lost.
        assert_eq!(planned, ["gpu_drained", "recycled", "shutdown", "yielded", "scaled_down", "idle"]);
        let unplanned: Vec<StopReason> = ALL.into_iter().filter(|r| !r.is_planned()).collect();
        assert_eq!(unplanned, StopReason::UNPLANNED);
    }

    #[test]
    fn memory_limits_and_drained_gpus_kill_at_once() {
        let at_once: Vec<StopReason> = ALL.into_iter().filter(|r| r.kills_at_once()).collect();
        assert_eq!(at_once, [MemoryLimitExceeded, GpuMemoryLimitExceeded, GpuDrained]);
    }
}
