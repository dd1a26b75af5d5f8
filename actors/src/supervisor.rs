//! `Supervisor`: the root of the tree. It starts one `TypePool` per type, lends worker slots
//! between types, expires old task records, and shuts the pools down in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::config::PoolConfig;
use crate::executor::HandlerFn as TaskHandlerFn;
use crate::intake::Intake;
use crate::messages::{
    Drain, Poke, ReleaseIdle, Shutdown, ShutdownReport, SlotFreed, SlotWanted, StopMonitor,
};
use crate::monitor::health::HealthMonitor;
use crate::monitor::probe::{GpuSource, ResourceProbe};
use crate::monitor::resource::ResourceMonitor;
use crate::monitor::scaling::ScalingMonitor;
use crate::policy::limits::MemoryLimits;
use crate::pool::{Pools, SlotNews, TypePool};
use crate::shared::Shared;

/// How long past the grace period a shutdown waits for the pools at most: the longest stop of
/// a worker, and a margin.
const DRAIN_BOUND: Duration = crate::worker::STOP_BOUND.saturating_add(Duration::from_secs(1));

/// What an application plugs into a tree: handlers and the resource sources.
pub(crate) struct Plugins {
    pub(crate) handlers: HashMap<String, TaskHandlerFn>,
    pub(crate) probe: Box<dyn ResourceProbe>,
    pub(crate) gpu: Box<dyn GpuSource>,
    pub(crate) intakes: BTreeMap<String, Arc<Intake>>,
}

/// The root actor.
pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    pools: Pools,
    resource_monitor: Option<Addr<ResourceMonitor>>,
    health_monitor: Option<Addr<HealthMonitor>>,
    scaling_monitor: Option<Addr<ScalingMonitor>>,
    graceful: Duration,
    expire_every: Duration,
}

impl Supervisor {
    /// Starts the supervisor and its pools on the current arbiter.
    pub(crate) fn start_tree(
        cfg: &PoolConfig,
        plugins: Plugins,
        shared: Arc<Shared>,
    ) -> (Addr<Supervisor>, Pools) {
        let Plugins { mut handlers, probe, gpu, intakes } = plugins;
        let mut started = Pools::new();
        let addr = Supervisor::create(|ctx| {
            let me = ctx.address();
            // GPU types are not kept warm where no GPU is usable: they take no tasks there.
            let gpu_ok = shared.gpu_status().available;
            let shape: Vec<(usize, usize, bool)> = cfg
                .types
                .values()
                .map(|t| (t.min_workers, t.max_concurrent, gpu_ok || !t.gpu_required))
                .collect();
            let warm = crate::policy::warm_workers(cfg.min_workers, &shape, cfg.max_workers);
            for ((name, t), warm) in cfg.types.iter().zip(warm) {
                let intake = intakes.get(name).cloned().unwrap_or_default();
                let pool = TypePool::new(
                    name,
                    t.clone(),
                    handlers.remove(name),
                    shared.clone(),
                    SlotNews { wanted: me.clone().recipient(), freed: me.clone().recipient() },
                    warm,
                    intake,
                );
                started.insert(name.clone(), pool.start());
            }
            let every = Duration::from_millis(cfg.resource_monitor_interval_ms);
            let limits = cfg
                .types
                .iter()
                .map(|(n, t)| {
                    let gpu_memory_mb = t.gpu_memory_mb.filter(|_| t.gpus() > 0);
                    (n.clone(), MemoryLimits { memory_mb: t.memory_limit_mb, gpu_memory_mb })
                })
                .collect();
            let monitor =
                ResourceMonitor::new(shared.clone(), started.clone(), probe, gpu, every, limits).start();
            let health = HealthMonitor::new(
                shared.clone(),
                started.clone(),
                Duration::from_millis(cfg.health_check_interval_ms),
            )
            .start();
            let scaling =
                ScalingMonitor::new(started.clone(), Duration::from_millis(cfg.scaling_interval_ms)).start();
            Supervisor {
                shared,
                pools: started.clone(),
                resource_monitor: Some(monitor),
                health_monitor: Some(health),
                scaling_monitor: Some(scaling),
                graceful: Duration::from_millis(cfg.graceful_shutdown_timeout_ms),
                expire_every: Duration::from_millis((cfg.record_ttl_ms / 10).clamp(100, 60_000)),
            }
        });
        (addr, started)
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.expire_every, |act, _| {
            let n = act.shared.store.expire();
            if n > 0 {
                log::debug!("expired {n} finished task records");
            }
        });
    }
}

impl Handler<SlotWanted> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: SlotWanted, _: &mut Context<Self>) {
        // Every pool with an idle worker above its minimum and no ready work gives one back.
        for pool in self.pools.values() {
            pool.do_send(ReleaseIdle);
        }
    }
}

impl Handler<SlotFreed> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: SlotFreed, _: &mut Context<Self>) {
        // Types starved for a slot, and types waiting for GPU room (a slot given back may
        // have ended a GPU reservation).
        let mut waiting = self.shared.lender.starved_types();
        waiting.extend(self.shared.gpus.waiting_types());
        waiting.sort();
        waiting.dedup();
        for name in waiting {
            if let Some(pool) = self.pools.get(&*name) {
                pool.do_send(Poke);
            }
        }
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<ShutdownReport>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        // Monitors stop first, so nothing acts on the pools while they drain.
        if let Some(monitor) = self.resource_monitor.take() {
            monitor.do_send(StopMonitor);
        }
        if let Some(monitor) = self.health_monitor.take() {
            monitor.do_send(StopMonitor);
        }
        if let Some(monitor) = self.scaling_monitor.take() {
            monitor.do_send(StopMonitor);
        }
        let timeout = self.graceful;
        // Send every drain before awaiting any, so the pools drain side by side.
        let drains: Vec<_> = self.pools.values().map(|p| p.send(Drain { timeout })).collect();
        Box::pin(async move {
            let mut total = ShutdownReport::default();
            // Workers are killed when the grace period ends and their exit is seen by waiting
            // on them, so every drain ends soon after it; this bound holds whatever happens.
            let bound = tokio::time::sleep(timeout + DRAIN_BOUND);
            tokio::pin!(bound);
            for drain in drains {
                tokio::select! {
                    report = drain => if let Ok(report) = report {
                        total.add(&report);
                    },
                    () = &mut bound => {
                        log::warn!("shutdown: a pool did not finish draining within {} ms of the grace period", DRAIN_BOUND.as_millis());
                        break;
                    }
                }
            }
            total
        })
    }
}
