//! Pure decisions, kept apart from the actors that carry them out (public, so that tools such
//! as the benchmarks can run them on their own): retry backoff, queue order, scaling, warm
//! workers, the verdict on a failed attempt (`retry`), when a type may try to start a worker
//! again (`starts`), whether workers may start now (`admission`), which GPUs the pool
//! uses and a starting worker gets (`gpu`), and whether a worker passed a memory limit
//! (`limits`).

use std::cmp::Ordering;
use std::time::Duration;

pub(crate) mod admission;
pub(crate) mod gpu;
pub(crate) mod limits;
pub(crate) mod manual;
pub(crate) mod retry;
pub(crate) mod starts;

/// The delay before retry number `attempt` (1 = the first retry): `base · 2^(attempt-1)`,
/// capped at one hour.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use workerpool_actors::policy::retry_backoff;
/// assert_eq!(retry_backoff(1000, 1), Duration::from_millis(1000));
/// assert_eq!(retry_backoff(1000, 3), Duration::from_millis(4000));
/// ```
pub fn retry_backoff(base_ms: u64, attempt: u32) -> Duration {
    let factor = 1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(base_ms.saturating_mul(factor).min(3_600_000))
}

/// How many workers each type keeps warm: its own `min_workers`, then the pool-wide
/// `min_total` spread one at a time over the usable types in order, never past a type's
/// `max_concurrent` nor, in all, past `max_workers`.
///
/// `types` holds `(min_workers, max_concurrent, usable)` per type.
///
/// # Examples
/// ```
/// use workerpool_actors::policy::warm_workers;
/// // Two warm workers over three types, the second of which needs a missing GPU.
/// assert_eq!(warm_workers(2, &[(0, 3, true), (0, 1, false), (0, 8, true)], 4), vec![1, 0, 1]);
/// assert_eq!(warm_workers(5, &[(1, 2, true), (0, 1, true)], 3), vec![2, 1]);
/// ```
pub fn warm_workers(min_total: usize, types: &[(usize, usize, bool)], max_workers: usize) -> Vec<usize> {
    let mut warm: Vec<usize> = types.iter().map(|&(min, max, _)| min.min(max)).collect();
    let mut total: usize = warm.iter().sum();
    loop {
        let mut added = false;
        for (i, &(_, max, usable)) in types.iter().enumerate() {
            if total >= min_total || total >= max_workers {
                return warm;
            }
            if usable && warm[i] < max {
                warm[i] += 1;
                total += 1;
                added = true;
            }
        }
        if !added {
            return warm;
        }
    }
}

/// What the scaling monitor sees of one type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScalingInput {
    /// Workers alive and not stopping (starting ones included).
    pub live: usize,
    /// Workers still starting.
    pub starting: usize,
    /// How long each idle worker has been idle.
    pub idle_for: Vec<Duration>,
    /// Tasks ready to run.
    pub ready: usize,
    /// How long the oldest ready task has waited.
    pub oldest_wait: Duration,
    /// Workers kept even when idle.
    pub min_workers: usize,
    /// Most workers of the type.
    pub max_workers: usize,
    /// Whether a worker may start now (CPU threshold, memory, free slots).
    pub can_start: bool,
    /// An idle worker above the minimum is retired after this long.
    pub idle_timeout: Duration,
}

/// What the scaling monitor does to one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScalingDecision {
    /// Nothing.
    Hold,
    /// Start this many workers.
    Up(usize, &'static str),
    /// Retire this many of the longest-idle workers.
    Down(usize, &'static str),
}

/// Scales up when ready tasks outnumber idle and starting workers (the queue is deep) or
/// the oldest has waited past a second; scales down workers idle past the idle timeout;
/// never below `min_workers`, above `max_workers`, or up when a worker may not start.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use workerpool_actors::policy::{ScalingDecision, ScalingInput, scaling_decision};
/// let busy = ScalingInput { live: 1, ready: 5, max_workers: 3, can_start: true, ..Default::default() };
/// assert_eq!(scaling_decision(&busy), ScalingDecision::Up(2, "queue"));
/// let idle = ScalingInput {
///     live: 3, idle_for: vec![Duration::from_secs(9); 3], min_workers: 1, max_workers: 3,
///     idle_timeout: Duration::from_secs(5), ..Default::default()
/// };
/// assert_eq!(scaling_decision(&idle), ScalingDecision::Down(2, "idle"));
/// ```
pub fn scaling_decision(input: &ScalingInput) -> ScalingDecision {
    let idle = input.idle_for.len();
    let unmet = input.ready.saturating_sub(idle + input.starting);
    let room = input.max_workers.saturating_sub(input.live);
    if unmet > 0 && room > 0 && input.can_start {
        let reason = if input.oldest_wait > Duration::from_secs(1) { "wait" } else { "queue" };
        return ScalingDecision::Up(unmet.min(room), reason);
    }
    if input.live < input.min_workers && room > 0 && input.can_start {
        return ScalingDecision::Up((input.min_workers - input.live).min(room), "min_workers");
    }
    if input.ready == 0 {
        let expired = input.idle_for.iter().filter(|d| **d >= input.idle_timeout).count();
        let spare = input.live.saturating_sub(input.min_workers);
        let down = expired.min(spare);
        if down > 0 {
            return ScalingDecision::Down(down, "idle");
        }
    }
    ScalingDecision::Hold
}

/// A place in a type's queue: higher priority first, then first come first served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueKey<T> {
    pub(crate) priority: i32,
    pub(crate) seq: u64,
    pub(crate) item: T,
}

impl<T: Eq> Ord for QueueKey<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // `BinaryHeap` pops the greatest: the higher priority, then the lower sequence number.
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl<T: Eq> PartialOrd for QueueKey<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BinaryHeap;

    use super::*;

    #[test]
    fn backoff_doubles_and_saturates() {
        assert_eq!(retry_backoff(10, 0), Duration::from_millis(10));
        assert_eq!(retry_backoff(10, 2), Duration::from_millis(20));
        assert_eq!(retry_backoff(u64::MAX, 5), Duration::from_secs(3600));
        assert_eq!(retry_backoff(1000, 200), Duration::from_secs(3600));
    }

    #[test]
    fn scaling_respects_every_limit() {
        let base = ScalingInput {
            max_workers: 4,
            can_start: true,
            idle_timeout: Duration::from_secs(1),
            ..ScalingInput::default()
        };
        // Deep queue, but the CPU threshold is passed: hold.
        let blocked = ScalingInput { ready: 3, can_start: false, ..base.clone() };
        assert_eq!(scaling_decision(&blocked), ScalingDecision::Hold);
        // Capped by max_workers.
        let deep = ScalingInput { live: 3, ready: 10, ..base.clone() };
        assert_eq!(scaling_decision(&deep), ScalingDecision::Up(1, "queue"));
        // Long waits say so.
        let slow = ScalingInput { ready: 1, oldest_wait: Duration::from_secs(3), ..base.clone() };
        assert_eq!(scaling_decision(&slow), ScalingDecision::Up(1, "wait"));
        // Starting workers count as supply.
        let coming = ScalingInput { live: 2, starting: 2, ready: 2, ..base.clone() };
        assert_eq!(scaling_decision(&coming), ScalingDecision::Hold);
        // Idle workers go, but never below min_workers, and not while work is ready.
        let idle = ScalingInput {
            live: 3,
            min_workers: 2,
            idle_for: vec![Duration::from_secs(2); 3],
            ..base.clone()
        };
        assert_eq!(scaling_decision(&idle), ScalingDecision::Down(1, "idle"));
        let fresh = ScalingInput { live: 3, idle_for: vec![Duration::from_millis(10); 3], ..base.clone() };
        assert_eq!(scaling_decision(&fresh), ScalingDecision::Hold);
        let below = ScalingInput { live: 0, min_workers: 2, ..base };
        assert_eq!(scaling_decision(&below), ScalingDecision::Up(2, "min_workers"));
    }

    #[test]
    fn warm_workers_spread_and_cap() {
        assert_eq!(warm_workers(0, &[(1, 3, true)], 4), vec![1]);
        assert_eq!(warm_workers(10, &[(0, 1, true), (0, 2, true)], 10), vec![1, 2]);
        assert_eq!(warm_workers(3, &[(0, 5, false)], 10), vec![0]);
    }

    #[test]
    fn queue_order_is_priority_then_fifo() {
        let mut heap = BinaryHeap::new();
        for (seq, priority) in [(0, 0), (1, 5), (2, 0), (3, 5), (4, -1)] {
            heap.push(QueueKey { priority, seq, item: seq });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|k| k.item)).collect();
        assert_eq!(order, vec![1, 3, 0, 2, 4]);
    }
}
