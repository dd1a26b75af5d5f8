//! `ResourceMonitor`: every `resource_monitor_interval_ms`, samples the CPU and memory of the
//! system and of every worker process, and the GPUs; publishes the snapshot (the contract's
//! `/resources`) and the resource gauges; tells each pool what its workers used (one
//! [`UsageSampled`] per pool per sample), for the accounting of their running attempts;
//! and enforces: a worker over its memory or GPU memory limit (`policy::limits`) is killed
//! ([`MemoryExceeded`]), a worker on a drained GPU is stopped ([`GpuDrained`]).
//!
//! Sampling blocks (it reads `/proc` and calls NVML), so it runs on a blocking thread; a tick
//! that finds the previous sample still running is skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::probe::{GpuSample, GpuSource, ProcessUsage, ResourceProbe, SystemUsage};
use crate::messages::{
    GetWorkers, GpuDrained, MemoryExceeded, Poke, StopMonitor, UsageSampled, WorkerId, WorkerInfo,
};
use crate::policy::limits::{self, MemoryLimits};
use crate::pool::Pools;
use crate::resources::{GpuStatus, ResourceSnapshot, WorkerUsage};
use crate::shared::Shared;
use crate::task::now_ms;
use crate::usage::WorkerSample;

type Probes = Arc<Mutex<(Box<dyn ResourceProbe>, Box<dyn GpuSource>)>>;

/// The timer actor.
pub(crate) struct ResourceMonitor {
    shared: Arc<Shared>,
    pools: Pools,
    probes: Probes,
    every: Duration,
    sampling: bool,
    /// The memory limits per type.
    limits: HashMap<String, MemoryLimits>,
}

impl ResourceMonitor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        pools: Pools,
        probe: Box<dyn ResourceProbe>,
        gpu: Box<dyn GpuSource>,
        every: Duration,
        limits: HashMap<String, MemoryLimits>,
    ) -> ResourceMonitor {
        ResourceMonitor {
            shared,
            pools,
            probes: Arc::new(Mutex::new((probe, gpu))),
            every,
            sampling: false,
            limits,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.sampling {
            return;
        }
        self.sampling = true;
        let asks: Vec<_> = self.pools.values().map(|p| p.send(GetWorkers)).collect();
        let probes = self.probes.clone();
        let work = async move {
            let mut workers: Vec<WorkerInfo> = Vec::new();
            for ask in asks {
                workers.extend(ask.await.unwrap_or_default());
            }
            let pids: Vec<u32> = workers.iter().filter_map(|w| w.pid).collect();
            // Before any figure is read: a pool counts the sample only in attempts that had
            // started by then.
            let taken = tokio::time::Instant::now();
            let sampled = actix_rt::task::spawn_blocking(move || {
                let mut guard = probes.lock().unwrap_or_else(|e| e.into_inner());
                let (probe, gpu) = &mut *guard;
                let (system, procs) = probe.sample(&pids);
                (system, procs, gpu.sample())
            })
            .await;
            (workers, taken, sampled.ok())
        };
        ctx.spawn(work.into_actor(self).map(|(workers, taken, sampled), act, _| {
            act.sampling = false;
            if let Some((system, procs, gpu)) = sampled {
                act.account(&workers, taken, &procs, &gpu);
                act.publish(&workers, system, &procs, gpu);
                act.enforce(&workers);
            }
        }));
    }

    fn publish(
        &self,
        workers: &[WorkerInfo],
        system: SystemUsage,
        procs: &HashMap<u32, ProcessUsage>,
        gpu: GpuSample,
    ) {
        let placed: Vec<(&str, u32)> =
            workers.iter().filter(|w| !w.gpus.is_empty()).filter_map(|w| Some((&*w.id, w.pid?))).collect();
        let gpu = self.shared.gpus.observe(gpu, &placed);
        let usage: Vec<WorkerUsage> = workers
            .iter()
            .filter_map(|w| {
                let pid = w.pid?;
                let p = procs.get(&pid)?;
                Some(WorkerUsage {
                    worker_id: w.id.clone(),
                    task_type: w.task_type.clone(),
                    pid,
                    cpu_percent: p.cpu_percent,
                    memory_bytes: p.memory_bytes,
                    peak_memory_bytes: p.peak_memory_bytes.max(p.memory_bytes),
                    gpu_memory_bytes: gpu.process_total(pid),
                    gpu_memory_per_gpu: gpu.process_memory.get(&pid).cloned().unwrap_or_default(),
                    gpus: w.gpus.clone(),
                })
            })
            .collect();
        let m = &self.shared.metrics;
        m.worker_memory.reset();
        m.worker_cpu.reset();
        m.worker_gpu_memory.reset();
        m.worker_gpu_device_memory.reset();
        for w in &usage {
            let labels = [w.worker_id.as_str(), w.task_type.as_str()];
            m.worker_memory.with_label_values(&labels).set(w.memory_bytes as i64);
            m.worker_cpu.with_label_values(&labels).set(f64::from(w.cpu_percent));
            if let Some(bytes) = w.gpu_memory_bytes.filter(|_| !w.gpus.is_empty()) {
                let gauge = m.worker_gpu_memory.with_label_values(&[&w.worker_id, &w.task_type]);
                gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
                for (uuid, &bytes) in &w.gpu_memory_per_gpu {
                    let gauge =
                        m.worker_gpu_device_memory.with_label_values(&[&w.worker_id, &w.task_type, uuid]);
                    gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
                }
            }
        }
        m.gpu_utilization.reset();
        m.gpu_memory_used.reset();
        m.gpu_memory_total.reset();
        m.gpu_memory_reserved.reset();
        for g in &gpu.devices {
            m.gpu_utilization
                .with_label_values(&[&g.index.to_string()])
                .set(f64::from(g.utilization_percent));
            let as_gauge = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
            m.gpu_memory_used.with_label_values(&[&g.uuid]).set(as_gauge(g.memory_used_bytes));
            m.gpu_memory_total.with_label_values(&[&g.uuid]).set(as_gauge(g.memory_total_bytes));
            m.gpu_memory_reserved.with_label_values(&[&g.uuid]).set(as_gauge(g.memory_reserved_bytes));
        }
        let snapshot = ResourceSnapshot {
            sampled_at: now_ms(),
            system,
            workers: usage,
            gpu: GpuStatus { available: gpu.available, reason: gpu.reason, simulated: gpu.simulated },
            gpus: gpu.devices,
        };
        self.shared.set_resources(snapshot);
    }
}

impl ResourceMonitor {
    /// Sends each pool the figures of its sampled worker processes.
    fn account(
        &self,
        workers: &[WorkerInfo],
        taken: tokio::time::Instant,
        procs: &HashMap<u32, ProcessUsage>,
        gpu: &GpuSample,
    ) {
        let mut by_type: HashMap<&str, Vec<(WorkerId, WorkerSample)>> = HashMap::new();
        for w in workers {
            let Some((pid, p)) = w.pid.and_then(|pid| procs.get(&pid).map(|p| (pid, p))) else { continue };
            let sample = WorkerSample {
                cpu_time_ms: p.cpu_time_ms,
                memory_bytes: p.memory_bytes,
                peak_memory_bytes: p.peak_memory_bytes,
                // Known for a worker placed on GPUs (one NVML does not list holds nothing);
                // unknown for any other.
                gpu_memory_bytes: (gpu.available && !w.gpus.is_empty())
                    .then(|| gpu.process_total(pid).unwrap_or(0)),
            };
            by_type.entry(&w.task_type).or_default().push((WorkerId::from(w.id.as_str()), sample));
        }
        for (task_type, workers) in by_type {
            if let Some(pool) = self.pools.get(task_type) {
                pool.do_send(UsageSampled { taken, workers });
            }
        }
    }

    /// Kills workers whose memory or GPU memory passed their limit (see
    /// `policy::limits::exceeded`), stops the workers of drained GPUs, and lets pools
    /// waiting for CPU, memory or GPU room look again.
    fn enforce(&self, workers: &[WorkerInfo]) {
        for w in self.shared.resources().workers {
            let Some(limits) = self.limits.get(&w.task_type) else { continue };
            if let Some(over) = limits::exceeded(&w, limits)
                && let Some(pool) = self.pools.get(&w.task_type)
            {
                pool.do_send(MemoryExceeded { worker: w.worker_id.clone(), over });
            }
        }
        let drained = self.shared.gpus.drained();
        for w in workers.iter().filter(|_| !drained.is_empty()) {
            let Some((gpu, why)) = w.gpus.iter().find_map(|g| drained.get_key_value(g)) else { continue };
            if let Some(pool) = self.pools.get(&w.task_type) {
                pool.do_send(GpuDrained { worker: w.id.clone(), gpu: gpu.clone(), why: why.clone() });
            }
        }
        for pool in self.pools.values() {
            pool.do_send(Poke);
        }
    }
}

impl Handler<StopMonitor> for ResourceMonitor {
    type Result = ();

    fn handle(&mut self, _: StopMonitor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Actor for ResourceMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(self.every, |act, ctx| act.tick(ctx));
    }
}
