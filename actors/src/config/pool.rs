//! Pool-wide settings: [`PoolConfig`], whose `Default` is the contract's table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    gpu::{GpuPlacement, SimulatedGpu},
    redis::RedisConfig,
    types::{DEFAULT_TYPES, TypeConfig},
};

/// Pool-wide settings and the table of types.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolConfig {
    /// Most worker processes (and handler slots) alive at once over all types.
    pub max_workers: usize,
    /// Workers the pool as a whole keeps warm; read by the scaling monitor (per-type warm
    /// workers are `TypeConfig::min_workers`, started with the pool).
    pub min_workers: usize,
    /// Interval of the health monitor.
    pub health_check_interval_ms: u64,
    /// Interval of the scaling monitor.
    pub scaling_interval_ms: u64,
    /// Interval of the resource monitor.
    pub resource_monitor_interval_ms: u64,
    /// How long running tasks may finish after a shutdown request.
    pub graceful_shutdown_timeout_ms: u64,
    /// How long finished task records are kept for look-up (at least; they go within a
    /// thirty-second of it plus one expiry round, every tenth of it between 0.1 s and 60 s).
    pub record_ttl_ms: u64,
    /// Most finished task records kept (the oldest go first, a thirty-second of them at a
    /// time). With shared queues the records
    /// live in Redis, and each instance keeps at most 1,000 finished ones in memory.
    pub max_records: usize,
    /// Most entries in each type's dead-letter list (the oldest go first).
    pub max_dead_letters: usize,
    /// The GPUs the pool uses, each by NVML index (`"0"`) or UUID (`"GPU-…"`, `"MIG-…"`);
    /// `None`: those the server's own `CUDA_VISIBLE_DEVICES` names, or else all.
    pub gpu_devices: Option<Vec<String>>,
    /// How a starting worker's GPUs are chosen: the most room first (`spread`, the default)
    /// or the fullest that still fits (`pack`).
    pub gpu_placement: GpuPlacement,
    /// GPUs that do not exist: when not empty they replace NVML, and workers are placed on
    /// them and report what they hold through files (see the crate's GPU docs).
    pub simulated_gpus: Vec<SimulatedGpu>,
    /// The task types, by name.
    pub types: BTreeMap<String, TypeConfig>,
    /// The shared queue in Redis; without a URL the pool is fully in-process.
    pub redis: RedisConfig,
}

// ===== impl PoolConfig =====

impl Default for PoolConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig {
            max_workers: cpus,
            min_workers: 2,
            health_check_interval_ms: 30_000,
            scaling_interval_ms: 60_000,
            resource_monitor_interval_ms: 10_000,
            graceful_shutdown_timeout_ms: 30_000,
            record_ttl_ms: 3_600_000,
            max_records: 100_000,
            max_dead_letters: 1_000,
            gpu_devices: None,
            gpu_placement: GpuPlacement::Spread,
            simulated_gpus: Vec::new(),
            redis: RedisConfig::default(),
            types: DEFAULT_TYPES
                .iter()
                .map(|row| (row.0.to_string(), TypeConfig::defaults_for(row.0)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Weight;

    #[test]
    fn default_table_matches_the_contract() {
        let cfg = PoolConfig::default();
        assert_eq!(cfg.types.len(), 6);
        let video = &cfg.types["video_generation"];
        assert_eq!((video.max_concurrent, video.memory_limit_mb, video.gpu_required), (1, 4096, true));
        assert_eq!(video.timeout_ms, 600_000);
        let text = &cfg.types["text_processing"];
        assert_eq!((text.weight, text.cpu_threshold, text.timeout_ms), (Weight::Light, 60.0, 60_000));
        assert_eq!(cfg.types["content_analysis"].max_concurrent, 8);
        assert!(cfg.validate().is_ok());
    }
}
