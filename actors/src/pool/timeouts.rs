//! Attempt timeouts and the pool's alarms: every running attempt has a deadline in one
//! ordered map, and a single alarm is armed for the earliest. Adding or removing a deadline
//! is a map operation; the alarm is re-armed only when an earlier deadline arrives. The
//! queue's delays are woken the same way, by an alarm for the earliest of them.

use std::collections::BTreeMap;

use actix::{AsyncContext, Context, SpawnHandle};
use tokio::time::Instant;

use super::TypePool;
use crate::task::TaskId;

/// The key of an attempt's timeout: when, and a sequence number that makes it unique.
pub(super) type Deadline = (Instant, u64);

/// The attempt number of the deadline that bounds a ghost (a cancelled task a worker runs
/// anyway, see `WorkerState::Ghost`): no real attempt has it.
pub(super) const GHOST_ATTEMPT: u32 = 0;

/// One timer of the pool, armed for the earliest of several instants.
#[derive(Debug, Default)]
pub(super) struct Alarm(Option<(Instant, SpawnHandle)>);

impl Alarm {
    /// Arms the alarm to `fire` at `at`, unless it is armed for that or earlier.
    pub(super) fn arm(
        &mut self,
        at: Instant,
        ctx: &mut Context<TypePool>,
        fire: impl FnOnce(&mut TypePool, &mut Context<TypePool>) + 'static,
    ) {
        if let Some((armed, handle)) = self.0 {
            if armed <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(at.saturating_duration_since(Instant::now()), fire);
        self.0 = Some((at, handle));
    }

    /// The alarm went off: nothing is armed until the next [`Alarm::arm`].
    pub(super) fn fired(&mut self) {
        self.0 = None;
    }
}

/// The deadlines of running attempts, earliest first, and the alarm armed for them.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    /// Each deadline's task and attempt number.
    due: BTreeMap<Deadline, (TaskId, u32)>,
    seq: u64,
    alarm: Alarm,
}

impl Deadlines {
    /// Adds the deadline of `attempt` of task `id`, due `at`; returns its key.
    #[inline]
    pub(super) fn insert(&mut self, at: Instant, id: TaskId, attempt: u32) -> Deadline {
        self.seq += 1;
        let key = (at, self.seq);
        self.due.insert(key, (id, attempt));
        key
    }

    /// Drops a deadline (its attempt ended first).
    #[inline]
    pub(super) fn remove(&mut self, key: &Deadline) {
        self.due.remove(key);
    }

    /// When the earliest deadline is due.
    fn earliest(&self) -> Option<Instant> {
        self.due.first_key_value().map(|(&(at, _), _)| at)
    }

    /// Takes the earliest deadline if it is due by `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(TaskId, u32)> {
        let entry = self.due.first_entry()?;
        (entry.key().0 <= now).then(|| entry.remove())
    }
}

impl TypePool {
    /// Registers the timeout of an attempt, due `at`; returns its key.
    pub(super) fn set_deadline(
        &mut self,
        id: &TaskId,
        attempt: u32,
        at: Instant,
        ctx: &mut Context<Self>,
    ) -> Deadline {
        let key = self.deadlines.insert(at, id.clone(), attempt);
        self.arm(ctx);
        key
    }

    /// Arms the alarm for the earliest deadline.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(at) = self.deadlines.earliest() {
            self.deadlines.alarm.arm(at, ctx, |act, ctx| act.on_alarm(ctx));
        }
    }

    /// Times out every attempt whose deadline has passed, then re-arms.
    fn on_alarm(&mut self, ctx: &mut Context<Self>) {
        self.deadlines.alarm.fired();
        let now = Instant::now();
        while let Some((id, attempt)) = self.deadlines.pop_due(now) {
            self.on_timeout(id, attempt, ctx);
        }
        self.arm(ctx);
    }

    /// Arms the alarm for the earliest delay of the queue.
    pub(super) fn arm_delays(&mut self, ctx: &mut Context<Self>) {
        if let Some(at) = self.queue.next_due() {
            self.delay_alarm.arm(at, ctx, |act, ctx| act.on_delays(ctx));
        }
    }

    /// Makes the tasks whose delay ended ready, hands them out, then re-arms.
    fn on_delays(&mut self, ctx: &mut Context<Self>) {
        self.delay_alarm.fired();
        if self.queue.wake_due(Instant::now()) > 0 {
            self.dispatch(ctx);
        }
        self.arm_delays(ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Deadlines;
    use crate::task::TaskId;

    fn id(s: &str) -> TaskId {
        TaskId::from(s)
    }

    #[test]
    fn due_deadlines_come_out_earliest_first() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.insert(t0 + Duration::from_secs(2), id("late"), 1);
        d.insert(t0 + Duration::from_secs(1), id("early"), 3);
        assert_eq!(d.earliest(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(d.pop_due(t0), None);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(d.pop_due(now), Some((id("early"), 3)));
        assert_eq!(d.pop_due(now), Some((id("late"), 1)));
        assert_eq!(d.pop_due(now), None);
        assert_eq!(d.earliest(), None);
    }

    #[test]
    fn deadlines_at_the_same_instant_stay_apart() {
        let at = Instant::now();
        let mut d = Deadlines::default();
        let first = d.insert(at, id("a"), 1);
        let second = d.insert(at, id("b"), 1);
        assert_ne!(first, second);
        // An attempt that ended first takes only its own deadline with it.
        d.remove(&first);
        assert_eq!(d.pop_due(at), Some((id("b"), 1)));
        assert_eq!(d.pop_due(at), None);
    }
}
