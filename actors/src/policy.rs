//! Pure decisions, kept apart from the actors that carry them out: retry backoff and queue
//! order.

use std::cmp::Ordering;
use std::time::Duration;

/// The delay before retry number `attempt` (1 = the first retry): `base · 2^(attempt-1)`,
/// capped at one hour.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use workerpool_actors::retry_backoff;
/// assert_eq!(retry_backoff(1000, 1), Duration::from_millis(1000));
/// assert_eq!(retry_backoff(1000, 3), Duration::from_millis(4000));
/// ```
pub fn retry_backoff(base_ms: u64, attempt: u32) -> Duration {
    let factor = 1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(base_ms.saturating_mul(factor).min(3_600_000))
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
    fn queue_order_is_priority_then_fifo() {
        let mut heap = BinaryHeap::new();
        for (seq, priority) in [(0, 0), (1, 5), (2, 0), (3, 5), (4, -1)] {
            heap.push(QueueKey { priority, seq, item: seq });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|k| k.item)).collect();
        assert_eq!(order, vec![1, 3, 0, 2, 4]);
    }
}
