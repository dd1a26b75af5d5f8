//! Attempt timeouts: every running attempt has a deadline in one ordered map, and a single
//! alarm is armed for the earliest. Adding or removing a deadline is a map operation; the
//! alarm is re-armed only when an earlier deadline arrives.

use actix::{AsyncContext, Context};
use tokio::time::Instant;

use super::TypePool;
use crate::task::TaskId;

/// The key of an attempt's timeout: when, and a sequence number that makes it unique.
pub(super) type Deadline = (Instant, u64);

impl TypePool {
    /// Registers the timeout of an attempt, due `at`; returns its key.
    pub(super) fn set_deadline(
        &mut self,
        id: &TaskId,
        attempt: u32,
        at: Instant,
        ctx: &mut Context<Self>,
    ) -> Deadline {
        self.deadline_seq += 1;
        let key = (at, self.deadline_seq);
        self.deadlines.insert(key, (id.clone(), attempt));
        self.arm(ctx);
        key
    }

    /// Arms the alarm for the earliest deadline unless it is armed for that or earlier.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some((&(at, _), _)) = self.deadlines.first_key_value() else { return };
        if let Some((armed, handle)) = self.alarm {
            if armed <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle =
            ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| act.on_alarm(ctx));
        self.alarm = Some((at, handle));
    }

    /// Times out every attempt whose deadline has passed, then re-arms.
    fn on_alarm(&mut self, ctx: &mut Context<Self>) {
        self.alarm = None;
        let now = Instant::now();
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (id, attempt) = entry.remove();
            self.on_timeout(id, attempt, ctx);
        }
        self.arm(ctx);
    }
}
