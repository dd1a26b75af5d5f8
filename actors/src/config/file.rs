//! The file model: [`ConfigFile`] and its `*Section` tables, every key optional, and
//! [`PoolConfig::from_file`], which lays them over the defaults.
//!
//! Each field of a section is the key of the same name in [`PoolConfig`], [`TypeConfig`] or
//! [`RedisConfig`]; a key that is absent keeps its default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[cfg(doc)]
use super::redis::RedisConfig;
use super::{
    gpu::{GpuPlacement, SimulatedGpu},
    pool::PoolConfig,
    types::{ExecutorKind, TypeConfig, Weight},
};
use crate::error::Error;
use crate::redact::SecretUrl;

/// A configuration file as read: every key optional. See [`PoolConfig::from_file`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The `[pool]` table.
    #[serde(default)]
    pub pool: PoolSection,
    /// The `[types.NAME]` tables.
    #[serde(default)]
    pub types: BTreeMap<String, TypeSection>,
    /// The `[redis]` table.
    #[serde(default)]
    pub redis: RedisSection,
    /// The `[server]` table: the embedding application's own settings (the server binary reads
    /// it itself); the library accepts it and reads nothing of it.
    #[serde(default)]
    pub server: Option<serde::de::IgnoredAny>,
}

/// The `[redis]` table of a configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// The Redis to share queues through ([`RedisConfig::url`]); absent, the pool is in-process.
    pub url: Option<SecretUrl>,
    /// The prefix of every key ([`RedisConfig::prefix`]).
    pub prefix: Option<String>,
    /// This instance's unique name ([`RedisConfig::instance_id`]).
    pub instance_id: Option<String>,
    /// How long a taken task stays leased without renewal ([`RedisConfig::lease_ms`]).
    pub lease_ms: Option<u64>,
    /// How often leases are renewed and expired ones reaped ([`RedisConfig::heartbeat_ms`]).
    pub heartbeat_ms: Option<u64>,
    /// Tasks of a type taken beyond the free workers ([`RedisConfig::take_ahead`]).
    pub take_ahead: Option<usize>,
    /// Whether this instance runs tasks ([`RedisConfig::consume`]).
    pub consume: Option<bool>,
    /// The certificate authority to trust with `rediss://` ([`RedisConfig::tls_ca_file`]).
    pub tls_ca_file: Option<PathBuf>,
    /// The client certificate with `rediss://` ([`RedisConfig::tls_cert_file`]).
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's private key ([`RedisConfig::tls_key_file`]).
    pub tls_key_file: Option<PathBuf>,
    /// How long one Redis command may take ([`RedisConfig::command_timeout_ms`]).
    pub command_timeout_ms: Option<u64>,
    /// How long an unanswered queueing waits to be read back ([`RedisConfig::outcome_wait_ms`]).
    pub outcome_wait_ms: Option<u64>,
}

/// The `[pool]` table of a configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Most workers alive at once over all types ([`PoolConfig::max_workers`]).
    pub max_workers: Option<usize>,
    /// Workers the pool as a whole keeps warm ([`PoolConfig::min_workers`]).
    pub min_workers: Option<usize>,
    /// Interval of the health monitor ([`PoolConfig::health_check_interval_ms`]).
    pub health_check_interval_ms: Option<u64>,
    /// Interval of the scaling monitor ([`PoolConfig::scaling_interval_ms`]).
    pub scaling_interval_ms: Option<u64>,
    /// Interval of the resource monitor ([`PoolConfig::resource_monitor_interval_ms`]).
    pub resource_monitor_interval_ms: Option<u64>,
    /// How long running tasks may finish after a shutdown request
    /// ([`PoolConfig::graceful_shutdown_timeout_ms`]).
    pub graceful_shutdown_timeout_ms: Option<u64>,
    /// How long finished task records are kept ([`PoolConfig::record_ttl_ms`]).
    pub record_ttl_ms: Option<u64>,
    /// Most finished task records kept ([`PoolConfig::max_records`]).
    pub max_records: Option<usize>,
    /// Most entries in each type's dead-letter list ([`PoolConfig::max_dead_letters`]).
    pub max_dead_letters: Option<usize>,
    /// The GPUs the pool uses, by index or UUID ([`PoolConfig::gpu_devices`]).
    pub gpu_devices: Option<Vec<String>>,
    /// How workers are placed on GPUs ([`PoolConfig::gpu_placement`]).
    pub gpu_placement: Option<GpuPlacement>,
    /// GPUs that do not exist, for placement without hardware ([`PoolConfig::simulated_gpus`]).
    pub simulated_gpus: Option<Vec<SimulatedGpu>>,
}

/// A `[types.NAME]` table of a configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSection {
    /// How heavy a task of the type is ([`TypeConfig::weight`]).
    pub weight: Option<Weight>,
    /// Most tasks of the type running at once ([`TypeConfig::max_concurrent`]).
    pub max_concurrent: Option<usize>,
    /// Workers kept alive even when idle ([`TypeConfig::min_workers`]).
    pub min_workers: Option<usize>,
    /// Resident memory past which a worker is killed ([`TypeConfig::memory_limit_mb`]).
    pub memory_limit_mb: Option<u64>,
    /// System CPU above which no further worker starts ([`TypeConfig::cpu_threshold`]).
    pub cpu_threshold: Option<f32>,
    /// Whether tasks need a usable GPU ([`TypeConfig::gpu_required`]).
    pub gpu_required: Option<bool>,
    /// GPUs each worker is placed on ([`TypeConfig::gpus_per_worker`]).
    pub gpus_per_worker: Option<usize>,
    /// GPU memory reserved per worker and GPU ([`TypeConfig::gpu_memory_mb`]); absent: the
    /// worker takes its GPUs for itself.
    pub gpu_memory_mb: Option<u64>,
    /// Default per-task timeout ([`TypeConfig::timeout_ms`]).
    pub timeout_ms: Option<u64>,
    /// Most tasks waiting before submissions are refused ([`TypeConfig::queue_size`]).
    pub queue_size: Option<usize>,
    /// Retries after the first attempt ([`TypeConfig::max_retries`]).
    pub max_retries: Option<u32>,
    /// Delay before the first retry ([`TypeConfig::retry_delay_ms`]).
    pub retry_delay_ms: Option<u64>,
    /// How long an idle worker above `min_workers` lives ([`TypeConfig::idle_timeout_ms`]).
    pub idle_timeout_ms: Option<u64>,
    /// Tasks after which a worker is recycled ([`TypeConfig::max_tasks_per_worker`]); absent:
    /// never.
    pub max_tasks_per_worker: Option<u64>,
    /// Tasks sent ahead to a busy process worker ([`TypeConfig::prefetch`]).
    pub prefetch: Option<usize>,
    /// Whether short tasks get one task sent ahead ([`TypeConfig::auto_prefetch`]).
    pub auto_prefetch: Option<bool>,
    /// Whether a task over the memory limit is retried ([`TypeConfig::retry_on_memory_limit`]).
    pub retry_on_memory_limit: Option<bool>,
    /// Longest stdout line a worker may write ([`TypeConfig::max_output_line_mb`]).
    pub max_output_line_mb: Option<u64>,
    /// How long a new worker may take to answer its first ping
    /// ([`TypeConfig::start_timeout_ms`]).
    pub start_timeout_ms: Option<u64>,
    /// Wait after a failed start ([`TypeConfig::start_retry_delay_ms`]).
    pub start_retry_delay_ms: Option<u64>,
    /// The longest wait between start tries ([`TypeConfig::start_retry_max_delay_ms`]).
    pub start_retry_max_delay_ms: Option<u64>,
    /// Failed starts in a row after which the type gives up for now
    /// ([`TypeConfig::max_start_failures`]).
    pub max_start_failures: Option<u32>,
    /// Where tasks run ([`TypeConfig::executor`]).
    pub executor: Option<ExecutorKind>,
    /// The worker command, program first ([`TypeConfig::command`]).
    pub command: Option<Vec<String>>,
    /// Buckets of the duration histogram ([`TypeConfig::duration_buckets_s`]).
    pub duration_buckets_s: Option<Vec<f64>>,
    /// Buckets of the wait histogram ([`TypeConfig::wait_buckets_s`]).
    pub wait_buckets_s: Option<Vec<f64>>,
}

/// Sets each named field of `$dst` that `$src` holds (`Some`), keeping the rest.
macro_rules! overlay {
    ($dst:ident, $src:ident, $($field:ident),+) => {
        $( if let Some(v) = $src.$field { $dst.$field = v; } )+
    };
}

// ===== impl PoolConfig =====

impl PoolConfig {
    /// Lays a file over the defaults. A file that names types replaces the default table with
    /// exactly the types it names (each starting from its defaults); one without `[types]`
    /// keeps the contract's six.
    pub fn from_file(file: ConfigFile) -> Result<PoolConfig, Error> {
        let mut cfg = PoolConfig::default();
        let pool = file.pool;
        overlay!(
            cfg,
            pool,
            max_workers,
            min_workers,
            health_check_interval_ms,
            scaling_interval_ms,
            resource_monitor_interval_ms,
            graceful_shutdown_timeout_ms,
            record_ttl_ms,
            max_records,
            max_dead_letters,
            gpu_placement,
            simulated_gpus
        );
        cfg.gpu_devices = pool.gpu_devices.or(cfg.gpu_devices.take());
        let (r, redis) = (&mut cfg.redis, file.redis);
        overlay!(r, redis, prefix, instance_id, lease_ms, heartbeat_ms, take_ahead, consume);
        overlay!(r, redis, command_timeout_ms, outcome_wait_ms);
        r.url = redis.url.or(r.url.take());
        r.tls_ca_file = redis.tls_ca_file.or(r.tls_ca_file.take());
        r.tls_cert_file = redis.tls_cert_file.or(r.tls_cert_file.take());
        r.tls_key_file = redis.tls_key_file.or(r.tls_key_file.take());
        if !file.types.is_empty() {
            cfg.types = file
                .types
                .into_iter()
                .map(|(name, section)| {
                    let mut t = TypeConfig::defaults_for(&name);
                    overlay!(
                        t,
                        section,
                        weight,
                        max_concurrent,
                        min_workers,
                        memory_limit_mb,
                        cpu_threshold,
                        gpu_required,
                        timeout_ms,
                        queue_size,
                        max_retries,
                        retry_delay_ms,
                        idle_timeout_ms,
                        retry_on_memory_limit,
                        prefetch,
                        auto_prefetch,
                        max_output_line_mb,
                        start_timeout_ms,
                        start_retry_delay_ms,
                        start_retry_max_delay_ms,
                        max_start_failures,
                        executor
                    );
                    t.max_tasks_per_worker = section.max_tasks_per_worker.or(t.max_tasks_per_worker);
                    t.command = section.command.or(t.command);
                    t.gpus_per_worker = section.gpus_per_worker.or(t.gpus_per_worker);
                    t.gpu_memory_mb = section.gpu_memory_mb.or(t.gpu_memory_mb);
                    t.duration_buckets_s = section.duration_buckets_s.or(t.duration_buckets_s);
                    t.wait_buckets_s = section.wait_buckets_s.or(t.wait_buckets_s);
                    (name, t)
                })
                .collect();
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overlays_keep_type_defaults() {
        let mut file = ConfigFile::default();
        file.types.insert(
            "audio_synthesis".into(),
            TypeSection { max_concurrent: Some(1), ..TypeSection::default() },
        );
        file.pool.max_workers = Some(7);
        let cfg = PoolConfig::from_file(file).unwrap();
        assert_eq!(cfg.max_workers, 7);
        assert_eq!(cfg.types.len(), 1);
        let audio = &cfg.types["audio_synthesis"];
        assert_eq!((audio.max_concurrent, audio.memory_limit_mb), (1, 2048));
        assert!(audio.auto_prefetch, "on by default");
        let mut file = ConfigFile::default();
        file.types.insert("x".into(), TypeSection { auto_prefetch: Some(false), ..TypeSection::default() });
        assert!(!PoolConfig::from_file(file).unwrap().types["x"].auto_prefetch);
    }
}
