//! `ScalingMonitor`: every `scaling_interval_ms`, has each pool apply the pure scaling policy
//! (`crate::policy::scaling_decision`): up when the queue is deep or tasks wait long, down
//! when workers sit idle past `idle_timeout_ms`, within `min_workers`, `max_concurrent`,
//! `max_workers`, the CPU threshold and the memory the machine has.

use std::time::Duration;

use actix::prelude::*;

use crate::messages::{AutoScale, StopMonitor};
use crate::pool::Pools;

/// The timer actor.
pub(crate) struct ScalingMonitor {
    pools: Pools,
    every: Duration,
}

impl ScalingMonitor {
    pub(crate) fn new(pools: Pools, every: Duration) -> ScalingMonitor {
        ScalingMonitor { pools, every }
    }
}

impl Actor for ScalingMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |act, _| {
            for pool in act.pools.values() {
                pool.do_send(AutoScale);
            }
        });
    }
}

impl Handler<StopMonitor> for ScalingMonitor {
    type Result = ();

    fn handle(&mut self, _: StopMonitor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
