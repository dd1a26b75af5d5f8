//! The executor's side of the shared queues: taking tasks with a lease (`TAKE`), renewing the
//! leases this instance holds (`RENEW`) and sending back what is leased here but not held
//! (`RECONCILE`). Reaping the leases that ran out anywhere is [`reap`](super::reap).
//!
//! An instance holds `(id, attempt)` pairs from the moment `TAKE` answers until the attempt's
//! end is written ([`finish`](super::finish)). Taken tasks are held before the take gate
//! opens again, and a reconcile holds the gate alone, so it never mistakes a task on its way
//! here for a lost one.

use std::sync::atomic::Ordering;

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::Remote;
use crate::error::Error;
use crate::task::{TaskId, now_ms};

/// A task taken from the shared queue, with its lease.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) id: TaskId,
    pub(crate) data: Value,
    pub(crate) priority: i32,
    pub(crate) max_retries: u32,
    pub(crate) timeout: u64,
    pub(crate) attempt: u32,
    pub(crate) created_at: u64,
}

/// The values `TAKE` answers per task, after its first one.
const TAKEN_FIELDS: usize = 7;

/// `TAKE`'s reply: the tasks taken and, when none was, in how many ms the next delayed one is
/// due. `defaults` are the type's retries and timeout, for fields a producer left out.
fn parse_take(reply: Vec<String>, now: u64, defaults: (u32, u64)) -> (Vec<Taken>, Option<u64>) {
    let (max_retries, timeout) = defaults;
    let mut reply = reply.into_iter();
    let next_due = reply.next().and_then(|n| n.parse::<f64>().ok()).map(|t| t as u64);
    let fields: Vec<String> = reply.collect();
    let taken = fields
        .chunks_exact(TAKEN_FIELDS)
        .map(|f| {
            let (id, data) = (&f[0], &f[1]);
            Taken {
                data: serde_json::from_str(data).unwrap_or_else(|e| {
                    log::warn!("task {id}: its data is not JSON ({e}); the worker gets it as a string");
                    Value::String(data.clone())
                }),
                id: TaskId::from(id.clone()),
                priority: f[2].parse().unwrap_or(0),
                max_retries: f[3].parse().unwrap_or(max_retries),
                timeout: f[4].parse().ok().filter(|t| *t > 0).unwrap_or(timeout),
                attempt: f[5].parse().unwrap_or(1),
                created_at: f[6].parse().unwrap_or(now),
            }
        })
        .collect();
    (taken, next_due)
}

/// What `RENEW` says of a task whose lease it did not simply extend.
#[derive(Debug, PartialEq, Eq)]
enum Renewal {
    /// Taken again by this instance at a newer attempt (a `TAKE` whose reply was lost, or is
    /// on its way): still leased here.
    TakenAgain { attempt: u32 },
    /// Cancelled, ended, or another instance's now; its status (`gone` when it is not there).
    Lost { status: String },
}

impl Renewal {
    /// From the status `RENEW` answers with the task's id.
    fn from_reply(status: String) -> Renewal {
        match status.strip_prefix("attempt:").and_then(|n| n.parse::<u32>().ok()) {
            Some(attempt) => Renewal::TakenAgain { attempt },
            None => Renewal::Lost { status },
        }
    }
}

impl Remote {
    /// Takes up to `n` ready tasks of a type, each with a lease, and holds them; a task that
    /// already runs here at an earlier attempt (its lease ran out while Redis was away) is held
    /// at the new attempt and not answered again. With none ready, answers in how many ms the
    /// next delayed one is due.
    pub(crate) async fn take(&self, task_type: &str, n: usize) -> Result<(Vec<Taken>, Option<u64>), Error> {
        let _gate = self.take_gate.read().await;
        self.taking.fetch_add(1, Ordering::AcqRel);
        let took = self.take_leased(task_type, n).await.map(|(taken, next_due)| (self.hold(taken), next_due));
        self.taking.fetch_sub(1, Ordering::AcqRel);
        took
    }

    async fn take_leased(&self, task_type: &str, n: usize) -> Result<(Vec<Taken>, Option<u64>), Error> {
        let now = now_ms();
        let reply: Vec<String> = self.observe(
            self.scripts
                .take
                .key(self.keys.queue(task_type))
                .key(self.keys.delayed(task_type))
                .key(self.keys.leases())
                .arg(n)
                .arg(now)
                .arg(self.cfg.lease_ms)
                .arg(&self.cfg.instance_id)
                .arg(self.keys.task_prefix())
                .invoke_async(&mut self.gated()?)
                .await,
        )?;
        let limits = self.limits_of(task_type);
        Ok(parse_take(reply, now, (limits.max_retries, limits.timeout_ms)))
    }

    /// Holds the tasks just taken; answers those that do not run here yet.
    fn hold(&self, taken: Vec<Taken>) -> Vec<Taken> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        taken
            .into_iter()
            .filter(|task| match held.insert(task.id.clone(), task.attempt) {
                // Taken again while an earlier attempt still runs here (its lease ran out
                // while Redis was away): that run now carries this attempt.
                Some(_) => {
                    log::info!("task {} still runs here; it goes on as attempt {}", task.id, task.attempt);
                    false
                }
                None => true,
            })
            .collect()
    }

    /// Extends the leases of the tasks this instance holds; returns those it lost, with the
    /// attempt held and the task's status.
    pub(crate) async fn renew(&self) -> Result<Vec<(TaskId, u32, String)>, Error> {
        let held: Vec<(TaskId, u32)> = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, a)| (id.clone(), *a))
            .collect();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut lost = Vec::new();
        for chunk in held.chunks(500) {
            let mut call = self.scripts.renew.key(self.keys.leases());
            call.arg(self.cfg.lease_ms).arg(self.keys.base()).arg(&self.cfg.instance_id);
            for (id, attempt) in chunk {
                call.arg(id.as_str()).arg(*attempt);
            }
            let gone: Vec<(String, String)> = self.observe(call.invoke_async(&mut self.gated()?).await)?;
            let attempts: FxHashMap<&str, u32> = chunk.iter().map(|(id, a)| (id.as_str(), *a)).collect();
            for (id, status) in gone {
                let attempt = attempts.get(id.as_str()).copied().unwrap_or(0);
                let id = TaskId::from(id);
                match Renewal::from_reply(status) {
                    // The run going on carries the newer attempt.
                    Renewal::TakenAgain { attempt: newer } => {
                        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(a) = held.get_mut(&id).filter(|a| **a == attempt) {
                            *a = newer;
                        }
                    }
                    Renewal::Lost { status } => lost.push((id, attempt, status)),
                }
            }
        }
        Ok(lost)
    }

    /// Sends tasks leased to this instance that it does not hold (a lost reply, a restart
    /// under the same name) back to their queue without spending an attempt.
    pub(crate) async fn reconcile(&self) -> Result<u64, Error> {
        let _gate = self.take_gate.write().await;
        let held: Vec<TaskId> = self.held.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        let mut call = self.scripts.reconcile.key(self.keys.leases());
        call.arg(self.keys.base()).arg(&self.cfg.instance_id);
        for id in &held {
            call.arg(id.as_str());
        }
        self.observe(call.invoke_async(&mut self.gated()?).await)
    }

    /// The attempt of `id` this instance holds, if it holds it.
    pub(crate) fn held_attempt(&self, id: &TaskId) -> Option<u32> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied()
    }

    /// Whether this instance holds `id`.
    pub(crate) fn holds(&self, id: &TaskId) -> bool {
        self.held_attempt(id).is_some()
    }

    /// How many tasks this instance holds.
    pub(crate) fn held_count(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Stops holding `id`, if it still holds that attempt.
    pub(crate) fn release_held(&self, id: &TaskId, attempt: u32) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(id) == Some(&attempt) {
            held.remove(id);
        }
    }

    /// Whether a take is on its way or a task is held: its end is not written yet.
    pub(super) fn holds_any(&self) -> bool {
        self.taking.load(Ordering::Acquire) > 0 || self.held_count() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn a_take_reply_reads_as_its_tasks_with_defaults_for_what_is_missing() {
        let reply = strings(&[
            "",
            "a",
            r#"{"x":1}"#,
            "5",
            "2",
            "900",
            "1",
            "10",
            "b",
            "not json",
            "0",
            "",
            "",
            "2",
            "20",
        ]);
        let (taken, next_due) = parse_take(reply, 99, (3, 60_000));
        assert_eq!(next_due, None);
        assert_eq!(taken.len(), 2);
        let (a, b) = (&taken[0], &taken[1]);
        assert_eq!(
            (a.id.as_str(), a.priority, a.max_retries, a.timeout, a.attempt, a.created_at),
            ("a", 5, 2, 900, 1, 10)
        );
        assert_eq!(a.data, serde_json::json!({"x": 1}));
        // A producer that left retries and timeout out gets the type's; odd data is a string.
        assert_eq!((b.max_retries, b.timeout, b.attempt), (3, 60_000, 2));
        assert_eq!(b.data, Value::String("not json".into()));
    }

    #[test]
    fn an_empty_take_says_when_the_next_delayed_task_is_due() {
        assert_eq!(parse_take(strings(&["250"]), 0, (3, 1)).1, Some(250));
        assert!(parse_take(strings(&["250"]), 0, (3, 1)).0.is_empty());
        assert_eq!(parse_take(strings(&[""]), 0, (3, 1)).1, None);
        assert_eq!(parse_take(Vec::new(), 0, (3, 1)).1, None);
    }

    #[test]
    fn a_renewal_is_taken_again_only_with_a_newer_attempt_number() {
        assert_eq!(Renewal::from_reply("attempt:3".into()), Renewal::TakenAgain { attempt: 3 });
        for status in ["cancelled", "running", "gone", "attempt:x"] {
            assert_eq!(Renewal::from_reply(status.into()), Renewal::Lost { status: status.into() });
        }
    }
}
