//! The task records of one tree, readable by id from any thread.
//!
//! Pools write; handles read. Finished records are kept for `record_ttl_ms` and at most
//! `max_records` of them (the oldest go first); records of unfinished tasks are never dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::task::{TaskId, TaskRecord};

#[derive(Debug, Default)]
struct Inner {
    /// Boxed, so the table itself stays small (24-byte entries) and cache-friendly when it
    /// holds a hundred thousand records.
    records: FxHashMap<TaskId, Box<TaskRecord>>,
    /// Finished tasks in the order they finished, for expiry.
    finished: VecDeque<(Instant, TaskId)>,
}

/// Shared task records.
#[derive(Clone, Debug)]
pub(crate) struct TaskStore {
    inner: Arc<Mutex<Inner>>,
    ttl: Duration,
    max_finished: usize,
}

impl TaskStore {
    pub(crate) fn new(ttl: Duration, max_finished: usize) -> TaskStore {
        TaskStore { inner: Arc::default(), ttl, max_finished }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a record half-written (every write is one
        // insert or one field update), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, id: &TaskId) -> Option<TaskRecord> {
        self.lock().records.get(id).map(|r| TaskRecord::clone(r))
    }

    pub(crate) fn insert(&self, record: TaskRecord) {
        let mut inner = self.lock();
        let finished = record.status.is_final();
        let id = record.id.clone();
        inner.records.insert(id.clone(), Box::new(record));
        if finished {
            self.note_finished(&mut inner, id, Instant::now());
        }
    }

    /// Changes a record in place.
    pub(crate) fn update(&self, id: &TaskId, f: impl FnOnce(&mut TaskRecord)) {
        self.update_then(id, f, |_| ());
    }

    /// Changes a record in place, then reads from it (under the same lock).
    pub(crate) fn update_then<T>(
        &self,
        id: &TaskId,
        f: impl FnOnce(&mut TaskRecord),
        read: impl FnOnce(&TaskRecord) -> T,
    ) -> Option<T> {
        self.update_at(id, Instant::now(), f, read)
    }

    /// As [`TaskStore::update_then`], for a change made at `at` (saves a clock read).
    pub(crate) fn update_at<T>(
        &self,
        id: &TaskId,
        at: Instant,
        f: impl FnOnce(&mut TaskRecord),
        read: impl FnOnce(&TaskRecord) -> T,
    ) -> Option<T> {
        let mut inner = self.lock();
        let record = inner.records.get_mut(id)?;
        let was_final = record.status.is_final();
        f(record);
        let now_final = record.status.is_final();
        let out = read(record);
        if now_final && !was_final {
            self.note_finished(&mut inner, id.clone(), at);
        }
        Some(out)
    }

    fn note_finished(&self, inner: &mut Inner, id: TaskId, at: Instant) {
        inner.finished.push_back((at, id));
        while inner.finished.len() > self.max_finished {
            if let Some((_, old)) = inner.finished.pop_front() {
                Self::forget_if_final(inner, &old);
            }
        }
    }

    fn forget_if_final(inner: &mut Inner, id: &TaskId) {
        // A re-queued dead task is live again under the same id: put it back (rare; the usual
        // case costs one look-up).
        if let Some((id, record)) = inner.records.remove_entry(id)
            && !record.status.is_final()
        {
            inner.records.insert(id, record);
        }
    }

    /// Drops finished records older than the time to live; returns how many went.
    pub(crate) fn expire(&self) -> usize {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut n = 0;
        while let Some((at, _)) = inner.finished.front() {
            if now.duration_since(*at) < self.ttl {
                break;
            }
            if let Some((_, id)) = inner.finished.pop_front() {
                Self::forget_if_final(&mut inner, &id);
                n += 1;
            }
        }
        n
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskStatus;

    fn finished(id: &str) -> TaskRecord {
        let mut r = TaskRecord::new(TaskId::from(id), "t", 0, 0);
        r.status = TaskStatus::Completed;
        r
    }

    #[test]
    fn keeps_at_most_max_finished_and_never_live_ones() {
        let store = TaskStore::new(Duration::from_secs(60), 2);
        store.insert(TaskRecord::new(TaskId::from("live"), "t", 0, 0));
        for id in ["a", "b", "c"] {
            store.insert(finished(id));
        }
        assert!(store.get(&TaskId::from("a")).is_none());
        assert!(store.get(&TaskId::from("c")).is_some());
        assert!(store.get(&TaskId::from("live")).is_some());
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn expires_after_ttl() {
        let store = TaskStore::new(Duration::ZERO, 10);
        store.insert(finished("a"));
        store.insert(TaskRecord::new(TaskId::from("b"), "t", 0, 0));
        assert_eq!(store.expire(), 1);
        assert!(store.get(&TaskId::from("a")).is_none());
        store.update(&TaskId::from("b"), |r| r.status = TaskStatus::Failed);
        assert_eq!(store.expire(), 1);
        assert_eq!(store.len(), 0);
    }
}
