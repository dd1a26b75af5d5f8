//! The memory backend's queue of one task type: every live task of the type (ready, delayed,
//! or held by the executor), the ready order and the delays.
//!
//! A task is in one [`Place`]: `Ready` (in the ready order), `Delayed` until an instant (a
//! `delay` option or a retry's backoff), or `Held` by the executor, which says how it holds
//! it (`H`: sent to a worker, running on one). The executor takes the next ready task
//! ([`TaskQueue::take`]), moves it between its own holds ([`TaskQueue::hold`]), gives it back
//! ([`TaskQueue::put_back`], [`TaskQueue::delay`]) or ends it ([`TaskQueue::remove`]). The
//! queue keeps the counts exact on every move, so asking how many are ready or waiting costs
//! nothing. It has no timers: [`TaskQueue::next_due`] says when the earliest delay ends and
//! [`TaskQueue::wake_due`] makes the due ones ready; the owner arms one alarm for them.
//!
//! **Architecture Invariant:** a task is in the ready order only while its place is `Ready`
//! (entries left behind by a task that ended are skipped when popped), and in the delays only
//! while its place is `Delayed` with that key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde_json::Value;
use tokio::time::Instant;

use super::ready::ReadyQueue;
use crate::messages::Waiter;
use crate::task::TaskId;

/// How the executor holds a task.
pub(crate) trait Hold {
    /// Whether the task runs now (rather than waiting in a worker's pipe, say): a running
    /// task is not counted as waiting.
    fn running(&self) -> bool;
}

/// The key of a delay: when it ends, and a sequence number that makes it unique.
pub(crate) type Due = (Instant, u64);

/// Where a live task is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Place<H> {
    /// In the ready order.
    Ready,
    /// Not ready before its delay or backoff ends.
    Delayed(Due),
    /// Taken by the executor.
    Held(H),
}

/// A task as the queue keeps it: its data, its options, its attempts and who waits for it.
pub(crate) struct Pending {
    pub(crate) data: Arc<Value>,
    pub(crate) priority: i32,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    /// The attempt running or last run: 0 before the first (or attempts already spent
    /// elsewhere, as it enters); the next one is `attempt + 1`.
    pub(crate) attempt: u32,
    /// Who hears the task's end.
    pub(crate) waiters: Vec<Waiter>,
}

/// A live task, where it is.
pub(crate) struct Entry<H> {
    pub(crate) task: Pending,
    seq: u64,
    place: Place<H>,
    ready_since: Instant,
}

impl<H> Entry<H> {
    /// Where the task is.
    #[inline]
    pub(crate) fn place(&self) -> &Place<H> {
        &self.place
    }

    /// How the executor holds the task, if it does.
    #[inline]
    pub(crate) fn held(&self) -> Option<&H> {
        match &self.place {
            Place::Held(h) => Some(h),
            _ => None,
        }
    }

    /// Where it stands in the ready order: sorting by this key lists tasks in the order
    /// they are taken (higher priority first, then first come; see `policy::QueueKey`).
    pub(crate) fn order_key(&self) -> (i64, u64) {
        (-i64::from(self.task.priority), self.seq)
    }

    /// When it last became ready (or entered the queue).
    pub(crate) fn ready_since(&self) -> Instant {
        self.ready_since
    }
}

/// The live tasks of one type.
pub(crate) struct TaskQueue<H> {
    tasks: FxHashMap<TaskId, Entry<H>>,
    order: Order,
}

/// The ready order, the delays and the counts, apart from the tasks so that a task's entry
/// and its order change together.
struct Order {
    ready: ReadyQueue<TaskId>,
    delays: BTreeMap<Due, TaskId>,
    delay_seq: u64,
    /// Tasks held and running (see [`Hold::running`]).
    running: usize,
}

impl Order {
    fn add_delay(&mut self, at: Instant, id: &TaskId) -> Due {
        self.delay_seq += 1;
        let key = (at, self.delay_seq);
        self.delays.insert(key, id.clone());
        key
    }

    /// Takes a task out of the counts and entries of `place` (it leaves that place).
    #[inline]
    fn leave<H: Hold>(&mut self, id: &TaskId, place: &Place<H>) {
        match place {
            // Its heap entry stays behind and is skipped when popped.
            Place::Ready => self.ready.left(),
            Place::Delayed(key) => {
                if self.delays.get(key) == Some(id) {
                    self.delays.remove(key);
                }
            }
            Place::Held(h) => self.running -= usize::from(h.running()),
        }
    }
}

impl<H: Hold> Default for TaskQueue<H> {
    fn default() -> Self {
        let order = Order { ready: ReadyQueue::new(), delays: BTreeMap::new(), delay_seq: 0, running: 0 };
        TaskQueue { tasks: FxHashMap::default(), order }
    }
}

impl<H: Hold> TaskQueue<H> {
    /// Adds a task, ready as of `now`, or delayed until `now + delay`. The caller has checked
    /// that `id` is not live.
    pub(crate) fn insert(&mut self, id: TaskId, task: Pending, delay: Option<Duration>, now: Instant) {
        let seq = self.order.ready.next_seq();
        let place = match delay {
            Some(d) => Place::Delayed(self.order.add_delay(now + d, &id)),
            None => {
                self.order.ready.push(task.priority, seq, id.clone());
                Place::Ready
            }
        };
        self.tasks.insert(id, Entry { task, seq, place, ready_since: now });
    }

    /// Whether `id` is live here.
    #[inline]
    pub(crate) fn contains(&self, id: &TaskId) -> bool {
        self.tasks.contains_key(id)
    }

    #[inline]
    pub(crate) fn get(&self, id: &TaskId) -> Option<&Entry<H>> {
        self.tasks.get(id)
    }

    /// The live tasks, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TaskId, &Entry<H>)> {
        self.tasks.iter()
    }

    /// Adds a waiter to a live task; hands it back when the task is not live.
    pub(crate) fn add_waiter(&mut self, id: &TaskId, waiter: Waiter) -> Result<(), Waiter> {
        match self.tasks.get_mut(id) {
            Some(e) => {
                e.task.waiters.push(waiter);
                Ok(())
            }
            None => Err(waiter),
        }
    }

    /// Live tasks.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks ready to run.
    #[inline]
    pub(crate) fn ready(&self) -> usize {
        self.order.ready.ready()
    }

    /// Tasks not running: ready, delayed, or held without running.
    #[inline]
    pub(crate) fn waiting(&self) -> usize {
        self.tasks.len() - self.order.running
    }

    /// Takes the next ready task for a new attempt: it is held as `hold`, and its attempt
    /// count goes up by one.
    #[inline]
    pub(crate) fn take(&mut self, hold: H) -> Option<TaskId> {
        let running = hold.running();
        let mut hold = Some(hold);
        let tasks = &mut self.tasks;
        // The entry that is still ready is held as it is popped: one lookup per task.
        let id = self.order.ready.pop(|id, seq| match tasks.get_mut(id) {
            Some(e) if matches!(e.place, Place::Ready) && e.seq == seq => {
                if let Some(h) = hold.take() {
                    e.task.attempt += 1;
                    e.place = Place::Held(h);
                }
                true
            }
            _ => false,
        })?;
        self.order.ready.left();
        self.order.running += usize::from(running);
        Some(id)
    }

    /// Changes how a held task is held; answers false (and changes nothing) when it is not
    /// held.
    #[inline]
    pub(crate) fn hold(&mut self, id: &TaskId, hold: H) -> bool {
        let Some(entry) = self.tasks.get_mut(id) else { return false };
        let Place::Held(old) = &entry.place else { return false };
        self.order.running = self.order.running - usize::from(old.running()) + usize::from(hold.running());
        entry.place = Place::Held(hold);
        true
    }

    /// Gives a held task back to the ready order as of `now`, in its place among those of its
    /// priority. `refund` gives back the attempt it was taken for (it never ran, or not by
    /// its fault). Answers false (and changes nothing) when the task is not held.
    pub(crate) fn put_back(&mut self, id: &TaskId, refund: bool, now: Instant) -> bool {
        let Some(entry) = self.tasks.get_mut(id) else { return false };
        if !matches!(entry.place, Place::Held(_)) {
            return false;
        }
        if refund {
            entry.task.attempt = entry.task.attempt.saturating_sub(1);
        }
        self.order.leave(id, &entry.place);
        self.order.ready.push(entry.task.priority, entry.seq, id.clone());
        entry.place = Place::Ready;
        entry.ready_since = now;
        true
    }

    /// Delays a held task until `at` (a retry's backoff); it becomes ready then. Answers
    /// false (and changes nothing) when the task is not held.
    pub(crate) fn delay(&mut self, id: &TaskId, at: Instant) -> bool {
        let Some(entry) = self.tasks.get_mut(id) else { return false };
        if !matches!(entry.place, Place::Held(_)) {
            return false;
        }
        self.order.leave(id, &entry.place);
        entry.place = Place::Delayed(self.order.add_delay(at, id));
        true
    }

    /// Ends a task here: it leaves the queue, with its waiters.
    #[inline]
    pub(crate) fn remove(&mut self, id: &TaskId) -> Option<Entry<H>> {
        let entry = self.tasks.remove(id)?;
        self.order.leave(id, &entry.place);
        Some(entry)
    }

    /// When the earliest delay ends.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.order.delays.first_key_value().map(|(&(at, _), _)| at)
    }

    /// Makes every task whose delay ended by `now` ready; answers how many.
    pub(crate) fn wake_due(&mut self, now: Instant) -> usize {
        let mut woken = 0;
        while let Some(first) = self.order.delays.first_entry() {
            if first.key().0 > now {
                break;
            }
            let (key, id) = first.remove_entry();
            if let Some(e) = self.tasks.get_mut(&id)
                && matches!(e.place, Place::Delayed(k) if k == key)
            {
                e.place = Place::Ready;
                e.ready_since = now;
                self.order.ready.push(e.task.priority, e.seq, id);
                woken += 1;
            }
        }
        woken
    }

    /// The ready tasks, in the order they would be taken.
    pub(crate) fn ready_ids(&self) -> Vec<TaskId> {
        let mut ready: Vec<(&TaskId, &Entry<H>)> =
            self.tasks.iter().filter(|(_, e)| matches!(e.place, Place::Ready)).collect();
        ready.sort_by_key(|(_, e)| e.order_key());
        ready.into_iter().map(|(id, _)| id.clone()).collect()
    }

    /// How long the task ready the longest has waited, as of `now` (zero when none is).
    pub(crate) fn oldest_ready_wait(&self, now: Instant) -> Duration {
        self.tasks
            .values()
            .filter(|e| matches!(e.place, Place::Ready))
            .map(|e| now.saturating_duration_since(e.ready_since))
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
