//! The task records of one tree, readable by id from any thread.
//!
//! Pools write; handles read. Finished records are kept for `record_ttl_ms` and at most
//! `max_records` of them (the oldest go first, a generation at a time: see [`TaskStore`]);
//! records of unfinished tasks are never dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use rustc_hash::FxHashMap;

use crate::task::{TaskId, TaskRecord};

/// Records are shared behind an `Arc`, so a table entry stays small (24 bytes) and a finished
/// record is handed to its waiters without a copy on the pool's thread (each waiter copies it
/// on its own).
type Table = FxHashMap<TaskId, Arc<TaskRecord>>;

/// Generations the finished records are split into (fewer when `max_records` is smaller):
/// enough that dropping one (a thirty-second of the records) holds the pools up for well
/// under a millisecond.
const GENERATIONS: usize = 32;
/// Shortest time one generation takes in, whatever the time to live.
const MIN_SPAN: Duration = Duration::from_millis(10);

/// Records of tasks that finished in one stretch: they are dropped together, so that keeping
/// a hundred thousand records costs no work per finished task beyond its one insert.
struct Generation {
    opened: Instant,
    newest: Instant,
    records: Table,
}

#[derive(Default)]
struct Inner {
    /// Records of unfinished tasks: never dropped, and small, so the pools' many writes to
    /// them stay in cache.
    live: Table,
    /// Finished records by generation, oldest first; a newer copy of a record (a re-queued
    /// dead task that ended again) sits in a newer generation and shadows the older one.
    finished: VecDeque<Generation>,
    /// Records in `finished`.
    kept: usize,
}

impl Inner {
    /// The newest copy of a record, finished or not.
    fn find(&self, id: &TaskId) -> Option<&Arc<TaskRecord>> {
        self.live.get(id).or_else(|| self.finished.iter().rev().find_map(|g| g.records.get(id)))
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.finished.pop_front() {
            self.kept -= old.records.len();
        }
    }
}

/// Shared task records.
///
/// Finished records are kept for at least `record_ttl_ms` (and at most a thirty-second more,
/// plus the expiry interval), and at most `max_records` of them (and at least all but a
/// sixteenth): they are kept in generations, each taking in up to a thirty-second of
/// `max_records` for up to a thirty-second of the time to live; the oldest generation goes
/// when the newest needs its room, or when its newest record is older than the time to live.
/// Records of unfinished tasks are never dropped.
#[derive(Clone)]
pub(crate) struct TaskStore {
    inner: Arc<Mutex<Inner>>,
    ttl: Duration,
    /// Most records one generation takes in (0: no finished record is kept).
    per_generation: usize,
    max_finished: usize,
    /// Longest time one generation takes in.
    span: Duration,
}

impl std::fmt::Debug for TaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskStore").field("ttl", &self.ttl).field("max_finished", &self.max_finished).finish()
    }
}

impl TaskStore {
    pub(crate) fn new(ttl: Duration, max_finished: usize) -> TaskStore {
        TaskStore {
            inner: Arc::default(),
            ttl,
            per_generation: max_finished / max_finished.clamp(1, GENERATIONS),
            max_finished,
            span: (ttl / GENERATIONS as u32).max(MIN_SPAN),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a record half-written (every write is one
        // insert or one field update), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, id: &TaskId) -> Option<TaskRecord> {
        // Copied after the lock is released.
        let record = self.lock().find(id).cloned();
        record.map(Arc::unwrap_or_clone)
    }

    pub(crate) fn insert(&self, record: TaskRecord) {
        let mut inner = self.lock();
        let id = record.id.clone();
        if record.status.is_final() {
            inner.live.remove(&id);
            self.keep_finished(&mut inner, id, Arc::new(record), Instant::now());
        } else {
            inner.live.insert(id, Arc::new(record));
        }
    }

    /// Changes a record in place.
    pub(crate) fn update(&self, id: &TaskId, f: impl FnOnce(&mut TaskRecord)) {
        self.update_then(id, f, |_| ());
    }

    /// Changes a record in place, then reads from it (under the same lock). A record that
    /// someone else still holds (a waiter's) is copied before the change.
    pub(crate) fn update_then<T>(
        &self,
        id: &TaskId,
        f: impl FnOnce(&mut TaskRecord),
        read: impl FnOnce(&Arc<TaskRecord>) -> T,
    ) -> Option<T> {
        self.update_at(id, Instant::now(), f, read)
    }

    /// As [`TaskStore::update_then`], for a change made at `at` (saves a clock read).
    pub(crate) fn update_at<T>(
        &self,
        id: &TaskId,
        at: Instant,
        f: impl FnOnce(&mut TaskRecord),
        read: impl FnOnce(&Arc<TaskRecord>) -> T,
    ) -> Option<T> {
        let mut inner = self.lock();
        if let Some(record) = inner.live.get_mut(id) {
            f(Arc::make_mut(record));
            let out = read(record);
            if record.status.is_final()
                && let Some((id, record)) = inner.live.remove_entry(id)
            {
                self.keep_finished(&mut inner, id, record, at);
            }
            return Some(out);
        }
        // A finished record (rare): changed where it is, unless it is live again.
        let record = inner.finished.iter_mut().rev().find_map(|g| g.records.get_mut(id))?;
        f(Arc::make_mut(record));
        let out = read(record);
        if !record.status.is_final() {
            let record = record.clone();
            inner.live.insert(id.clone(), record);
        }
        Some(out)
    }

    /// Changes a live record a last time and lets it go from this store: its task left this
    /// instance for a durable backend (a retry or a re-queue there), which keeps its record.
    pub(crate) fn hand_over<T>(
        &self,
        id: &TaskId,
        f: impl FnOnce(&mut TaskRecord),
        read: impl FnOnce(&Arc<TaskRecord>) -> T,
    ) -> Option<T> {
        let mut record = self.lock().live.remove(id)?;
        f(Arc::make_mut(&mut record));
        Some(read(&record))
    }

    /// Files a finished record in the newest generation, opening a new one when that is full
    /// or has taken in records for its whole span (the oldest then go if the new one needs
    /// their room).
    fn keep_finished(&self, inner: &mut Inner, id: TaskId, record: Arc<TaskRecord>, at: Instant) {
        if self.per_generation == 0 {
            return;
        }
        let open = inner.finished.back().is_none_or(|g| {
            g.records.len() >= self.per_generation || at.saturating_duration_since(g.opened) >= self.span
        });
        if open {
            while !inner.finished.is_empty() && inner.kept + self.per_generation > self.max_finished {
                inner.drop_oldest();
            }
            inner.finished.push_back(Generation { opened: at, newest: at, records: Table::default() });
        }
        if let Some(g) = inner.finished.back_mut() {
            g.newest = g.newest.max(at);
            if g.records.insert(id, record).is_none() {
                inner.kept += 1;
            }
        }
    }

    /// Drops the generations whose newest record is older than the time to live; returns how
    /// many records went.
    pub(crate) fn expire(&self) -> usize {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut n = 0;
        while inner.finished.front().is_some_and(|g| now.saturating_duration_since(g.newest) >= self.ttl) {
            n += inner.finished.front().map_or(0, |g| g.records.len());
            inner.drop_oldest();
        }
        n
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let inner = self.lock();
        inner.live.len() + inner.kept
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

    fn live(id: &str) -> TaskRecord {
        TaskRecord::new(TaskId::from(id), "t", 0, 0)
    }

    fn status(store: &TaskStore, id: &str) -> Option<TaskStatus> {
        store.get(&TaskId::from(id)).map(|r| r.status)
    }

    #[test]
    fn keeps_at_most_max_finished_and_never_live_ones() {
        let store = TaskStore::new(Duration::from_secs(60), 2);
        store.insert(live("live"));
        for id in ["a", "b", "c"] {
            store.insert(finished(id));
        }
        assert!(store.get(&TaskId::from("a")).is_none());
        assert!(store.get(&TaskId::from("c")).is_some());
        assert!(store.get(&TaskId::from("live")).is_some());
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn a_full_store_keeps_the_newest_records_and_all_but_a_sixteenth_of_its_room() {
        let store = TaskStore::new(Duration::from_secs(60), 320);
        for n in 0..5_000 {
            store.insert(live(&n.to_string()));
            store.update(&TaskId::from(n.to_string().as_str()), |r| r.status = TaskStatus::Completed);
            let kept = store.len();
            assert!(kept <= 320, "{kept} records kept after {n}");
            assert!(n < 320 || kept >= 300, "only {kept} records kept after {n}");
        }
        // The newest are there, the oldest gone.
        assert_eq!(status(&store, "4999"), Some(TaskStatus::Completed));
        assert_eq!(status(&store, "4700"), Some(TaskStatus::Completed));
        assert_eq!(status(&store, "4600"), None);
        assert_eq!(status(&store, "0"), None);
    }

    #[test]
    fn a_record_that_finishes_is_kept_and_one_that_is_live_again_is_never_dropped() {
        let store = TaskStore::new(Duration::from_secs(60), 2);
        store.insert(live("x"));
        store.update(&TaskId::from("x"), |r| r.status = TaskStatus::Dead);
        // Re-queued: live again under the same id, and it outlives any number of others.
        store.update(&TaskId::from("x"), |r| r.status = TaskStatus::Queued);
        for n in 0..10 {
            store.insert(finished(&n.to_string()));
        }
        assert_eq!(status(&store, "x"), Some(TaskStatus::Queued));
        // A fresh record for a dead task (the pools' re-queue) shadows the finished one too.
        store.insert(finished("y"));
        store.insert(live("y"));
        assert_eq!(status(&store, "y"), Some(TaskStatus::Queued));
        store.update(&TaskId::from("y"), |r| r.status = TaskStatus::Failed);
        assert_eq!(status(&store, "y"), Some(TaskStatus::Failed));
    }

    #[test]
    fn a_record_handed_out_is_not_changed_by_later_writes() {
        let store = TaskStore::new(Duration::from_secs(60), 10);
        store.insert(live("a"));
        let handed = store
            .update_then(&TaskId::from("a"), |r| r.status = TaskStatus::Completed, Arc::clone)
            .expect("the record is there");
        store.update(&TaskId::from("a"), |r| r.error = Some("later".into()));
        assert_eq!(handed.error, None);
        assert_eq!(store.get(&TaskId::from("a")).and_then(|r| r.error).as_deref(), Some("later"));
    }

    #[test]
    fn expires_after_ttl() {
        let store = TaskStore::new(Duration::ZERO, 10);
        store.insert(finished("a"));
        store.insert(live("b"));
        assert_eq!(store.expire(), 1);
        assert!(store.get(&TaskId::from("a")).is_none());
        store.update(&TaskId::from("b"), |r| r.status = TaskStatus::Failed);
        assert_eq!(store.expire(), 1);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn records_younger_than_the_ttl_stay() {
        let store = TaskStore::new(Duration::from_secs(60), 10);
        store.insert(finished("a"));
        assert_eq!(store.expire(), 0);
        assert!(store.get(&TaskId::from("a")).is_some());
    }

    #[test]
    fn no_room_keeps_no_finished_record() {
        let store = TaskStore::new(Duration::from_secs(60), 0);
        store.insert(live("a"));
        store.update(&TaskId::from("a"), |r| r.status = TaskStatus::Completed);
        assert!(store.get(&TaskId::from("a")).is_none());
        assert_eq!(store.len(), 0);
    }
}
