//! The memory backend's dead letters of one task type: tasks that ended `dead` or
//! `timed_out`, oldest first, with what it takes to run them again; bounded, the oldest
//! dropped first.

use std::collections::VecDeque;

use super::queue::Pending;
use crate::task::TaskId;

/// A dead-lettered task: enough to run it again.
pub(crate) struct DeadLetter {
    pub(crate) id: TaskId,
    pub(crate) task: Pending,
}

impl DeadLetter {
    /// The task `id` as it ended, kept to run again (without its waiters, who heard the end).
    pub(crate) fn of(id: TaskId, task: Pending) -> DeadLetter {
        DeadLetter { id, task: Pending { waiters: Vec::new(), ..task } }
    }

    /// The task again, from its first attempt.
    pub(crate) fn again(self) -> (TaskId, Pending) {
        (self.id, Pending { attempt: 0, ..self.task })
    }
}

/// The dead letters of one type, oldest first.
#[derive(Default)]
pub(crate) struct DeadLetters {
    list: VecDeque<DeadLetter>,
}

impl DeadLetters {
    /// Adds a dead letter (in place of an older one of the same task), dropping the oldest
    /// past `max`.
    pub(crate) fn push(&mut self, letter: DeadLetter, max: usize) {
        self.take(&letter.id);
        self.list.push_back(letter);
        while self.list.len() > max {
            self.list.pop_front();
        }
    }

    /// Takes the dead letter of `id` out of the list, if it is there.
    pub(crate) fn take(&mut self, id: &TaskId) -> Option<DeadLetter> {
        let pos = self.list.iter().position(|d| d.id == *id)?;
        self.list.remove(pos)
    }

    /// The ids, oldest first.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &TaskId> {
        self.list.iter().map(|d| &d.id)
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::Value;

    use super::*;

    fn letter(id: &str) -> DeadLetter {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let task = Pending {
            data: Arc::new(Value::from(id)),
            priority: 3,
            timeout: Duration::from_secs(7),
            max_retries: 1,
            attempt: 2,
            waiters: vec![crate::messages::Waiter::Record(tx)],
        };
        DeadLetter::of(TaskId::from(id), task)
    }

    #[test]
    fn the_oldest_go_first_past_the_bound() {
        let mut dead = DeadLetters::default();
        for id in ["a", "b", "c"] {
            dead.push(letter(id), 2);
        }
        let ids: Vec<&str> = dead.ids().map(|id| id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(dead.len(), 2);
        // A task dead-lettered again is listed once, as the newest.
        dead.push(letter("b"), 2);
        let ids: Vec<&str> = dead.ids().map(|id| id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
    }

    #[test]
    fn a_dead_letter_taken_runs_again_from_its_first_attempt() {
        let mut dead = DeadLetters::default();
        dead.push(letter("a"), 10);
        assert!(dead.take(&TaskId::from("b")).is_none());
        let (id, task) = dead.take(&TaskId::from("a")).map(DeadLetter::again).expect("listed");
        assert_eq!(id.as_str(), "a");
        assert_eq!((task.attempt, task.priority, task.max_retries, task.waiters.len()), (0, 3, 1, 0));
        assert_eq!((task.timeout, task.data.as_str()), (Duration::from_secs(7), Some("a")));
        assert_eq!(dead.len(), 0);
    }
}
