//! The queues of every type, from any instance: a queue's waiting tasks, the counts per type
//! (for health and stats, which never wait for Redis), dead letters and the stale results
//! counted by every instance.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use redis::AsyncCommands;

use super::Remote;
use super::records::record_from_hash;
use crate::error::Error;
use crate::messages::{QueueInfo, QueuedTask};
use crate::task::{TaskId, TaskRecord, now_ms};

/// The longest that health and stats wait for Redis to count the queues.
const QUICK_READ: Duration = Duration::from_millis(150);

impl Remote {
    /// The waiting tasks of a type at the positions `range` of the queue order: the ready
    /// ones in order, then the delayed ones by due time.
    pub(crate) async fn queue(&self, task_type: &str, range: Range<usize>) -> Result<QueueInfo, Error> {
        let (ready, delayed): (usize, usize) = self.observe(
            redis::pipe()
                .zcard(self.keys.queue(task_type))
                .zcard(self.keys.delayed(task_type))
                .query_async(&mut self.gated()?)
                .await,
        )?;
        let (in_ready, in_delayed) = split_range(&range, ready, delayed);
        let (head, later): (Vec<String>, Vec<String>) = if in_ready.is_empty() && in_delayed.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.observe(
                redis::pipe()
                    .zrange(self.keys.queue(task_type), bounds(&in_ready).0, bounds(&in_ready).1)
                    .zrange(self.keys.delayed(task_type), bounds(&in_delayed).0, bounds(&in_delayed).1)
                    .query_async(&mut self.gated()?)
                    .await,
            )?
        };
        let listed: Vec<(String, &'static str)> = head
            .iter()
            .take(in_ready.len())
            .map(|m| (m.rsplit(':').next().unwrap_or_default().to_string(), "ready"))
            .chain(later.into_iter().take(in_delayed.len()).map(|id| (id, "waiting")))
            .collect();
        let mut pipe = redis::pipe();
        for (id, _) in &listed {
            pipe.cmd("HMGET").arg(self.keys.task(id)).arg("priority").arg("attempts").arg("created_at");
        }
        let fields: Vec<(Option<i32>, Option<u32>, Option<u64>)> = if listed.is_empty() {
            Vec::new()
        } else {
            self.observe(pipe.query_async(&mut self.gated()?).await)?
        };
        let now = now_ms();
        let tasks: Vec<QueuedTask> = listed
            .into_iter()
            .zip(fields)
            .map(|((id, state), (priority, attempts, created))| QueuedTask {
                id,
                priority: priority.unwrap_or(0),
                state,
                attempts: attempts.unwrap_or(0),
                waited_ms: created.map_or(0, |c| now.saturating_sub(c)),
            })
            .collect();
        let oldest_wait_ms =
            tasks.iter().filter(|t| t.state == "ready").map(|t| t.waited_ms).max().unwrap_or(0);
        Ok(QueueInfo { length: ready + delayed, ready, oldest_wait_ms, offset: range.start, tasks })
    }

    /// Waiting tasks per type (ready plus delayed).
    /// Health and stats read them, and never wait for Redis: what Redis does not count within
    /// [`QUICK_READ`] (or at all, while it is down) is the last count.
    pub(crate) async fn queued_counts(&self) -> Result<BTreeMap<String, usize>, Error> {
        let mut pipe = redis::pipe();
        for name in self.limits.keys() {
            pipe.zcard(self.keys.queue(name)).zcard(self.keys.delayed(name));
        }
        let read = async { self.observe::<Vec<usize>>(pipe.query_async(&mut self.gated()?).await) };
        let last = || self.counted.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let counts = match tokio::time::timeout(QUICK_READ, read).await {
            Ok(Ok(counts)) => counts,
            Ok(Err(e)) if last().is_empty() => return Err(e),
            _ => return Ok(last()),
        };
        let counts: BTreeMap<String, usize> =
            self.limits.keys().cloned().zip(counts.chunks(2).map(|c| c.iter().sum())).collect();
        counts.clone_into(&mut self.counted.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(counts)
    }

    /// The dead-letter list of a type, oldest first.
    pub(crate) async fn dead_letters(&self, task_type: &str) -> Result<Vec<TaskRecord>, Error> {
        let ids: Vec<String> = self.observe(self.gated()?.lrange(self.keys.dead(task_type), 0, 999).await)?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.task(id));
        }
        let hashes: Vec<HashMap<String, String>> = if ids.is_empty() {
            Vec::new()
        } else {
            self.observe(pipe.query_async(&mut self.gated()?).await)?
        };
        Ok(ids
            .into_iter()
            .zip(hashes)
            .filter_map(|(id, h)| record_from_hash(&TaskId::from(id), &h))
            .collect())
    }

    /// Result records dropped because their attempt had lost its lease, over all instances.
    pub(crate) async fn stale_results_total(&self) -> Result<u64, Error> {
        let n: Option<u64> = self.observe(self.gated()?.hget(self.keys.stats(), "stale_results").await)?;
        Ok(n.unwrap_or(0))
    }
}

/// The positions of `range` (in the whole queue order) in the ready list, which has `ready`
/// tasks, and in the delayed list of `delayed` tasks after it.
fn split_range(range: &Range<usize>, ready: usize, delayed: usize) -> (Range<usize>, Range<usize>) {
    let in_ready = range.start.min(ready)..range.end.min(ready);
    let clamp = |at: usize| at.saturating_sub(ready).min(delayed);
    (in_ready, clamp(range.start)..clamp(range.end))
}

/// `ZRANGE` bounds (inclusive) of a range of positions; `1 0`, which lists nothing, for an
/// empty one (`0 -1` would list the whole set).
fn bounds(range: &Range<usize>) -> (isize, isize) {
    if range.is_empty() {
        return (1, 0);
    }
    let at = |n: usize| isize::try_from(n).unwrap_or(isize::MAX);
    (at(range.start), at(range.end - 1))
}

#[cfg(test)]
mod tests {
    use super::{bounds, split_range};

    #[test]
    fn an_empty_range_lists_nothing() {
        assert_eq!(bounds(&(0..0)), (1, 0));
        assert_eq!(bounds(&(5..5)), (1, 0));
        assert_eq!(bounds(&(0..10)), (0, 9));
        assert_eq!(bounds(&(usize::MAX - 1..usize::MAX)), (isize::MAX, isize::MAX));
    }

    #[test]
    fn a_range_spans_the_ready_list_then_the_delayed_one() {
        assert_eq!(split_range(&(0..50), 10, 100), (0..10, 0..40));
        assert_eq!(split_range(&(0..50), 10, 5), (0..10, 0..5));
        assert_eq!(split_range(&(5..8), 10, 5), (5..8, 0..0));
        assert_eq!(split_range(&(10..20), 10, 100), (10..10, 0..10));
        assert_eq!(split_range(&(25..30), 10, 100), (10..10, 15..20));
        assert_eq!(split_range(&(0..0), 10, 100), (0..0, 0..0));
        assert_eq!(split_range(&(3..9), 0, 100), (0..0, 3..9));
        assert!(split_range(&(usize::MAX - 1..usize::MAX), 10, 100).1.is_empty());
    }
}
