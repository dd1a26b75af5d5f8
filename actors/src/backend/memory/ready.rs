//! The ready order of a type's queue: tasks that may run now, highest priority first, then
//! first come first served (see [`QueueKey`]).
//!
//! A task that leaves the ready state other than by being popped (cancelled, failed) leaves
//! its heap entry behind; [`ReadyQueue::pop`] skips such stale entries, and the ready count
//! is kept apart from the heap's length so it stays exact.

use std::collections::BinaryHeap;

use crate::policy::QueueKey;

/// A heap of queue keys with the count of tasks really ready.
#[derive(Debug)]
pub(crate) struct ReadyQueue<T> {
    heap: BinaryHeap<QueueKey<T>>,
    /// Tasks in the ready state; the heap may hold more (stale) entries.
    ready: usize,
    /// The last sequence number handed out.
    seq: u64,
}

impl<T: Eq> ReadyQueue<T> {
    pub(crate) fn new() -> ReadyQueue<T> {
        ReadyQueue { heap: BinaryHeap::new(), ready: 0, seq: 0 }
    }

    /// A fresh sequence number: a new task's place among those of the same priority.
    #[inline]
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Puts a task in the queue; it counts as ready until [`ReadyQueue::left`].
    #[inline]
    pub(crate) fn push(&mut self, priority: i32, seq: u64, item: T) {
        self.heap.push(QueueKey { priority, seq, item });
        self.ready += 1;
    }

    /// Pops the next entry that `live` says is still ready (given the item and the sequence
    /// number it was queued with), dropping the stale ones before it. The ready count drops
    /// only when the caller says the task [`left`](ReadyQueue::left) the ready state.
    #[inline]
    pub(crate) fn pop(&mut self, mut live: impl FnMut(&T, u64) -> bool) -> Option<T> {
        while let Some(key) = self.heap.pop() {
            if live(&key.item, key.seq) {
                return Some(key.item);
            }
        }
        None
    }

    /// A ready task left the ready state (assigned, sent ahead or ended).
    #[inline]
    pub(crate) fn left(&mut self) {
        self.ready -= 1;
    }

    /// Tasks ready to run.
    #[inline]
    pub(crate) fn ready(&self) -> usize {
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ReadyQueue;

    #[test]
    fn pops_by_priority_then_first_come() {
        let mut q = ReadyQueue::new();
        for (item, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 5)] {
            let seq = q.next_seq();
            q.push(priority, seq, item);
        }
        assert_eq!(q.ready(), 4);
        let order: Vec<&str> = std::iter::from_fn(|| q.pop(|_, _| true)).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
        // Popping is not leaving: the caller says when a task left the ready state.
        assert_eq!(q.ready(), 4);
    }

    #[test]
    fn stale_entries_are_skipped() {
        let mut q = ReadyQueue::new();
        let mut live = HashSet::new();
        for item in ["a", "b", "c"] {
            let seq = q.next_seq();
            q.push(0, seq, item);
            live.insert((item, seq));
        }
        // `a` is cancelled; `b` went back to the queue with a new sequence number.
        live.remove(&("a", 1));
        q.left();
        live.remove(&("b", 2));
        let seq = q.next_seq();
        q.push(9, seq, "b");
        live.insert(("b", seq));
        q.left();
        assert_eq!(q.ready(), 2);
        let mut next = || q.pop(|item, seq| live.contains(&(*item, seq)));
        assert_eq!(next(), Some("b"));
        assert_eq!(next(), Some("c"));
        assert_eq!(next(), None);
    }

    #[test]
    fn sequence_numbers_grow() {
        let mut q = ReadyQueue::<()>::new();
        assert_eq!((q.next_seq(), q.next_seq()), (1, 2));
    }
}
