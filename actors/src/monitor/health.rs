//! `HealthMonitor`: every `health_check_interval_ms`, asks each pool to ping its idle workers
//! and replace those that stay silent or whose task is stuck, and emits a `pool_status`
//! event with the pool's figures. The pool's verdict itself is `crate::health`.

use std::time::Duration;

use actix::prelude::*;

use crate::events::EventKind;
use crate::messages::{GetTypeStats, HealthCheck, StopMonitor};
use crate::pool::Pools;
use crate::shared::Shared;

/// The timer actor.
pub(crate) struct HealthMonitor {
    shared: std::sync::Arc<Shared>,
    pools: Pools,
    every: Duration,
}

impl HealthMonitor {
    pub(crate) fn new(shared: std::sync::Arc<Shared>, pools: Pools, every: Duration) -> HealthMonitor {
        HealthMonitor { shared, pools, every }
    }

    /// How long a worker may take to answer a ping: half the interval, within 250 ms–5 s
    /// (a busy machine can take that long to schedule a healthy worker).
    pub(crate) fn ping_timeout(every: Duration) -> Duration {
        (every / 2).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let ping_timeout = Self::ping_timeout(self.every);
        for pool in self.pools.values() {
            pool.do_send(HealthCheck { ping_timeout });
        }
        if !self.shared.events.active() {
            return;
        }
        let asks: Vec<_> = self.pools.values().map(|p| p.send(GetTypeStats)).collect();
        let shared = self.shared.clone();
        ctx.spawn(
            async move {
                let (mut total, mut busy, mut queued) = (0, 0, 0);
                for ask in asks {
                    if let Ok(t) = ask.await {
                        total += t.total;
                        busy += t.busy;
                        queued += t.queued;
                    }
                }
                shared.events.emit(|| EventKind::PoolStatus { total, busy, queued });
            }
            .into_actor(self),
        );
    }
}

impl Actor for HealthMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<StopMonitor> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, _: StopMonitor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_timeout_is_half_the_interval_within_bounds() {
        assert_eq!(HealthMonitor::ping_timeout(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(HealthMonitor::ping_timeout(Duration::from_millis(1000)), Duration::from_millis(500));
        assert_eq!(HealthMonitor::ping_timeout(Duration::from_millis(40)), Duration::from_millis(250));
    }
}
