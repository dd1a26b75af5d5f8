//! Pool and type configuration.
//!
//! [`PoolConfig::default`] reproduces the contract's table of the six default types.
//! A configuration file is read by the caller (the server reads TOML) into a [`ConfigFile`],
//! whose every key is optional; [`PoolConfig::from_file`] lays it over the defaults, so a
//! `[types.text_processing]` table that sets one key keeps the contract's values for the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// How heavy one task of a type is; informational, shown by the API and used by the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    /// Short, cheap tasks (text).
    Light,
    /// Seconds of work (audio, images).
    Medium,
    /// Minutes of work and most of a machine (video, worlds).
    Heavy,
}

/// Where the tasks of a type run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// A long-lived child process speaking JSON lines (see `command`).
    Process,
    /// An async Rust handler registered through the library.
    InProcess,
}

/// The settings of one task type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeConfig {
    /// How heavy a task of this type is.
    pub weight: Weight,
    /// Most tasks of the type running at once (one task per worker).
    pub max_concurrent: usize,
    /// Workers kept alive even when idle.
    pub min_workers: usize,
    /// A worker whose resident memory passes this is killed and replaced.
    pub memory_limit_mb: u64,
    /// While system CPU (percent) is above this, no further worker of the type starts (its
    /// first one always may).
    pub cpu_threshold: f32,
    /// Tasks run only where a usable GPU is reported.
    pub gpu_required: bool,
    /// Default per-task timeout in milliseconds.
    pub timeout_ms: u64,
    /// Most tasks waiting (queued, delayed or backing off) before submissions are refused.
    pub queue_size: usize,
    /// Retries after the first attempt for crashes, timeouts and retryable errors.
    pub max_retries: u32,
    /// Delay before the first retry; doubled for every further attempt.
    pub retry_delay_ms: u64,
    /// An idle worker above `min_workers` is retired after this long.
    pub idle_timeout_ms: u64,
    /// Tasks sent ahead to a busy process worker, so that it finds the next one in its pipe
    /// (like Celery's prefetch). 0, the default, sends a task only to an idle worker. A task
    /// sent ahead starts its timeout when the worker reaches it; cancelling it does not stop
    /// the worker from running it (its result is dropped).
    pub prefetch: usize,
    /// With `prefetch = 0`: a busy process worker of a type whose recent attempts took under
    /// a millisecond on average gets one task sent ahead while a backlog waits, so that it
    /// does not wait for the pool between tasks (for such tasks that wait is most of their
    /// cost). A longer task, or none, turns it off again. Default on.
    pub auto_prefetch: bool,
    /// A worker is recycled after this many tasks (`None`: never).
    pub max_tasks_per_worker: Option<u64>,
    /// Whether a task whose worker passed `memory_limit_mb` is retried (default: it fails).
    pub retry_on_memory_limit: bool,
    /// Longest line a process worker may write to stdout, in MiB; a worker that writes a
    /// longer one is killed and its task fails with `output_too_large`.
    pub max_output_line_mb: u64,
    /// How long a new worker may take to answer its first ping; one that does not is killed,
    /// and counts as a failed start.
    pub start_timeout_ms: u64,
    /// Wait before trying again after a worker failed to start (its program cannot run, it
    /// exited or never answered before it was ready); doubled for every further failure in a
    /// row.
    pub start_retry_delay_ms: u64,
    /// The longest wait between start tries.
    pub start_retry_max_delay_ms: u64,
    /// Failed starts in a row after which the type's waiting tasks fail with the reason and
    /// new ones are refused, until a worker starts again.
    pub max_start_failures: u32,
    /// Where tasks run.
    pub executor: ExecutorKind,
    /// The worker command for the process executor, program first; no shell.
    pub command: Option<Vec<String>>,
}

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
    /// The task types, by name.
    pub types: BTreeMap<String, TypeConfig>,
    /// The shared queue in Redis; without a URL the pool is fully in-process.
    pub redis: RedisConfig,
}

/// Where and how several instances share their queues in Redis (the `[redis]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` or `rediss://…` for TLS; `None` runs in-process.
    pub url: Option<String>,
    /// Every key is `{prefix}:…`: one hash tag, so the scripts also work on Redis Cluster.
    pub prefix: String,
    /// This instance's name, unique among the instances sharing the queues.
    pub instance_id: String,
    /// How long a taken task stays leased without renewal; an instance that stops renewing
    /// (killed, cut off) loses its tasks to the others after this.
    pub lease_ms: u64,
    /// How often an instance renews its leases, reaps expired ones and says it is alive.
    pub heartbeat_ms: u64,
    /// Tasks of a type taken beyond the free workers, to hide the Redis round trip for short
    /// tasks. Each waits locally behind a running one, so keep it 0 for long tasks.
    pub take_ahead: usize,
    /// Whether this instance runs tasks. `false` makes an API front end that only queues,
    /// looks up and cancels tasks; other instances run them.
    pub consume: bool,
    /// With `rediss://`: a PEM file of the certificate authority to trust instead of the
    /// system's (a private CA).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// With `rediss://`: a PEM file of this instance's client certificate, for servers that
    /// authenticate clients (`tls-auth-clients yes`); with `tls_key_file`.
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// The PEM file of the client certificate's private key.
    pub tls_key_file: Option<std::path::PathBuf>,
    /// How long one Redis command (or connecting) may take before Redis counts as not
    /// answering: then the instance refuses work that needs Redis at once until it answers.
    pub command_timeout_ms: u64,
    /// How long a queueing whose reply did not come waits for Redis to answer again, to read
    /// back whether the task was queued; past it the answer says the outcome is unknown.
    pub outcome_wait_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            prefix: "workerpool".into(),
            instance_id: String::new(),
            lease_ms: 30_000,
            heartbeat_ms: 1_000,
            take_ahead: 0,
            consume: true,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            command_timeout_ms: 1_000,
            outcome_wait_ms: 3_000,
        }
    }
}

// ===== defaults =====

/// The contract's table: (name, weight, max_concurrent, memory MB, CPU %, GPU, timeout).
const DEFAULT_TYPES: [(&str, Weight, usize, u64, f32, bool, u64); 6] = [
    ("video_generation", Weight::Heavy, 1, 4096, 80.0, true, 600_000),
    ("audio_synthesis", Weight::Medium, 3, 2048, 70.0, false, 180_000),
    ("image_generation", Weight::Medium, 2, 3072, 75.0, true, 300_000),
    ("text_processing", Weight::Light, 10, 512, 60.0, false, 60_000),
    ("world_building", Weight::Heavy, 1, 4096, 85.0, true, 480_000),
    ("content_analysis", Weight::Light, 8, 1024, 65.0, false, 120_000),
];

impl TypeConfig {
    /// The defaults of a type: the contract's row for a default type, generic ones otherwise.
    ///
    /// # Examples
    /// ```
    /// let t = workerpool_actors::TypeConfig::defaults_for("text_processing");
    /// assert_eq!(t.max_concurrent, 10);
    /// assert_eq!(workerpool_actors::TypeConfig::defaults_for("mine").max_concurrent, 1);
    /// ```
    pub fn defaults_for(name: &str) -> TypeConfig {
        let row = DEFAULT_TYPES.iter().find(|row| row.0 == name);
        let (weight, max_concurrent, memory_limit_mb, cpu_threshold, gpu_required, timeout_ms) = match row {
            Some(&(_, w, c, m, cpu, gpu, t)) => (w, c, m, cpu, gpu, t),
            None => (Weight::Medium, 1, 1024, 90.0, false, 60_000),
        };
        TypeConfig {
            weight,
            max_concurrent,
            min_workers: 0,
            memory_limit_mb,
            cpu_threshold,
            gpu_required,
            timeout_ms,
            queue_size: 100,
            max_retries: 3,
            retry_delay_ms: 1000,
            idle_timeout_ms: 300_000,
            max_tasks_per_worker: None,
            prefetch: 0,
            auto_prefetch: true,
            retry_on_memory_limit: false,
            max_output_line_mb: 64,
            start_timeout_ms: 30_000,
            start_retry_delay_ms: 500,
            start_retry_max_delay_ms: 30_000,
            max_start_failures: 5,
            executor: ExecutorKind::Process,
            command: None,
        }
    }
}

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
            redis: RedisConfig::default(),
            types: DEFAULT_TYPES
                .iter()
                .map(|row| (row.0.to_string(), TypeConfig::defaults_for(row.0)))
                .collect(),
        }
    }
}

// ===== the file model =====

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
}

/// The `[redis]` table of a configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RedisSection {
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub instance_id: Option<String>,
    pub lease_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub take_ahead: Option<usize>,
    pub consume: Option<bool>,
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
    pub command_timeout_ms: Option<u64>,
    pub outcome_wait_ms: Option<u64>,
}

/// The `[pool]` table of a configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PoolSection {
    pub max_workers: Option<usize>,
    pub min_workers: Option<usize>,
    pub health_check_interval_ms: Option<u64>,
    pub scaling_interval_ms: Option<u64>,
    pub resource_monitor_interval_ms: Option<u64>,
    pub graceful_shutdown_timeout_ms: Option<u64>,
    pub record_ttl_ms: Option<u64>,
    pub max_records: Option<usize>,
    pub max_dead_letters: Option<usize>,
}

/// A `[types.NAME]` table of a configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TypeSection {
    pub weight: Option<Weight>,
    pub max_concurrent: Option<usize>,
    pub min_workers: Option<usize>,
    pub memory_limit_mb: Option<u64>,
    pub cpu_threshold: Option<f32>,
    pub gpu_required: Option<bool>,
    pub timeout_ms: Option<u64>,
    pub queue_size: Option<usize>,
    pub max_retries: Option<u32>,
    pub retry_delay_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_tasks_per_worker: Option<u64>,
    pub prefetch: Option<usize>,
    pub auto_prefetch: Option<bool>,
    pub retry_on_memory_limit: Option<bool>,
    pub max_output_line_mb: Option<u64>,
    pub start_timeout_ms: Option<u64>,
    pub start_retry_delay_ms: Option<u64>,
    pub start_retry_max_delay_ms: Option<u64>,
    pub max_start_failures: Option<u32>,
    pub executor: Option<ExecutorKind>,
    pub command: Option<Vec<String>>,
}

macro_rules! overlay {
    ($dst:ident, $src:ident, $($field:ident),+) => {
        $( if let Some(v) = $src.$field { $dst.$field = v; } )+
    };
}

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
            max_dead_letters
        );
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
                    (name, t)
                })
                .collect();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value; the error names the key and what was expected.
    ///
    /// # Examples
    /// ```
    /// let mut cfg = workerpool_actors::PoolConfig::default();
    /// cfg.types.get_mut("text_processing").unwrap().max_concurrent = 0;
    /// let err = cfg.validate().unwrap_err();
    /// assert!(err.to_string().contains("types.text_processing.max_concurrent"));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key: String, expected: &str| {
            Err(Error::new(ErrorKind::Config, format!("{key}: expected {expected}")))
        };
        if self.max_workers == 0 {
            return bad("pool.max_workers".into(), "at least 1");
        }
        for (key, v) in [
            ("health_check_interval_ms", self.health_check_interval_ms),
            ("scaling_interval_ms", self.scaling_interval_ms),
            ("resource_monitor_interval_ms", self.resource_monitor_interval_ms),
        ] {
            if v == 0 {
                return bad(format!("pool.{key}"), "a positive number of milliseconds");
            }
        }
        if self.types.is_empty() {
            return bad("types".into(), "at least one task type");
        }
        let r = &self.redis;
        if r.prefix.is_empty() || r.prefix.contains(['{', '}']) {
            return bad("redis.prefix".into(), "a non-empty name without braces");
        }
        if r.heartbeat_ms == 0 {
            return bad("redis.heartbeat_ms".into(), "a positive number of milliseconds");
        }
        if r.lease_ms < 2 * r.heartbeat_ms {
            return bad("redis.lease_ms".into(), "at least twice redis.heartbeat_ms");
        }
        if !(1..=60_000).contains(&r.command_timeout_ms) {
            return bad("redis.command_timeout_ms".into(), "1 to 60000 milliseconds");
        }
        if r.outcome_wait_ms > 600_000 {
            return bad("redis.outcome_wait_ms".into(), "at most 600000 milliseconds");
        }
        if r.take_ahead > 1024 {
            return bad("redis.take_ahead".into(), "at most 1024");
        }
        if let Some(url) = &r.url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return bad("redis.url".into(), "a redis:// or rediss:// URL");
        }
        if r.tls_cert_file.is_some() != r.tls_key_file.is_some() {
            return bad("redis.tls_key_file".into(), "tls_cert_file and tls_key_file together");
        }
        for (name, t) in &self.types {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return bad(format!("types.{name:?}"), "a name of letters, digits, '_' and '-'");
            }
            let key = |k: &str| format!("types.{name}.{k}");
            if t.max_concurrent == 0 {
                return bad(key("max_concurrent"), "at least 1");
            }
            if t.min_workers > t.max_concurrent {
                return bad(key("min_workers"), "at most max_concurrent");
            }
            if t.timeout_ms == 0 {
                return bad(key("timeout_ms"), "a positive number of milliseconds");
            }
            if t.queue_size == 0 {
                return bad(key("queue_size"), "at least 1");
            }
            if !(0.0..=100.0).contains(&t.cpu_threshold) {
                return bad(key("cpu_threshold"), "a percentage from 0 to 100");
            }
            if t.max_tasks_per_worker == Some(0) {
                return bad(key("max_tasks_per_worker"), "at least 1 (omit it for unlimited)");
            }
            if t.prefetch > 64 {
                return bad(key("prefetch"), "at most 64");
            }
            if !(1..=4096).contains(&t.max_output_line_mb) {
                return bad(key("max_output_line_mb"), "from 1 to 4096");
            }
            if t.start_timeout_ms == 0 {
                return bad(key("start_timeout_ms"), "a positive number of milliseconds");
            }
            if t.start_retry_delay_ms == 0 {
                return bad(key("start_retry_delay_ms"), "a positive number of milliseconds");
            }
            if t.start_retry_max_delay_ms < t.start_retry_delay_ms {
                return bad(key("start_retry_max_delay_ms"), "at least start_retry_delay_ms");
            }
            if t.max_start_failures == 0 {
                return bad(key("max_start_failures"), "at least 1");
            }
            if t.max_retries > 32 {
                return bad(key("max_retries"), "at most 32");
            }
            if let Some(cmd) = &t.command
                && (cmd.is_empty() || cmd[0].is_empty())
            {
                return bad(key("command"), "a non-empty list, program first");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn invalid_values_name_the_key() {
        let mut file = ConfigFile::default();
        file.types.insert("x".into(), TypeSection { queue_size: Some(0), ..TypeSection::default() });
        let err = PoolConfig::from_file(file).unwrap_err();
        assert_eq!(err.to_string(), "types.x.queue_size: expected at least 1");
        assert_eq!(err.kind(), ErrorKind::Config);
    }
}
