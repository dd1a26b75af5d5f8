//! [`PoolConfig::validate`]: every value checked, and the error names the key and what was
//! expected.

use super::pool::PoolConfig;
use crate::error::{Error, ErrorKind};
use crate::redact::SecretUrl;

impl PoolConfig {
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
        if let Some(url) = r.url.as_ref().map(SecretUrl::expose)
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return bad("redis.url".into(), "a redis:// or rediss:// URL");
        }
        if r.tls_cert_file.is_some() != r.tls_key_file.is_some() {
            return bad("redis.tls_key_file".into(), "tls_cert_file and tls_key_file together");
        }
        for (i, g) in self.simulated_gpus.iter().enumerate() {
            if g.memory_mb == 0 {
                return bad(format!("pool.simulated_gpus[{i}].memory_mb"), "a positive number of MB");
            }
            if g.name.trim().is_empty() {
                return bad(format!("pool.simulated_gpus[{i}].name"), "a non-empty name");
            }
        }
        if let Some(devices) = &self.gpu_devices
            && devices.iter().any(|d| d.trim().is_empty())
        {
            return bad("pool.gpu_devices".into(), "GPU indexes or UUIDs, none empty");
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
            for (name, buckets) in
                [("duration_buckets_s", &t.duration_buckets_s), ("wait_buckets_s", &t.wait_buckets_s)]
            {
                if buckets.as_deref().is_some_and(|b| !valid_buckets(b)) {
                    return bad(key(name), "1 to 64 positive, finite, strictly increasing seconds");
                }
            }
            match (t.gpu_required, t.gpus_per_worker) {
                (false, Some(n)) if n > 0 => {
                    return bad(key("gpus_per_worker"), "0 for a type without gpu_required");
                }
                (true, Some(n)) if !(1..=64).contains(&n) => {
                    return bad(key("gpus_per_worker"), "1 to 64 for a type with gpu_required");
                }
                _ => {}
            }
            if t.gpu_memory_mb == Some(0) {
                return bad(key("gpu_memory_mb"), "a positive number of MB (omit it for whole GPUs)");
            }
            if t.gpu_memory_mb.is_some() && t.gpus() == 0 {
                return bad(key("gpu_memory_mb"), "only for a type with gpu_required");
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

/// Whether `b` can be the upper bounds of a histogram's buckets: 1 to 64 of them, each
/// positive and finite, strictly increasing (the `+Inf` bucket is always added).
pub(crate) fn valid_buckets(b: &[f64]) -> bool {
    (1..=64).contains(&b.len())
        && b.iter().all(|v| v.is_finite() && *v > 0.0)
        && b.windows(2).all(|w| w[0] < w[1])
}

#[cfg(test)]
mod tests {
    #[test]
    fn buckets_are_positive_finite_and_strictly_increasing() {
        use super::valid_buckets;
        assert!(valid_buckets(&[0.01, 1.0, 1800.0]) && valid_buckets(&[5.0]));
        for bad in
            [&[][..], &[1.0, 1.0], &[2.0, 1.0], &[0.0, 1.0], &[-1.0], &[1.0, f64::INFINITY], &[f64::NAN]]
        {
            assert!(!valid_buckets(bad), "{bad:?}");
        }
        assert!(!valid_buckets(&(1..=65).map(f64::from).collect::<Vec<_>>()));
    }

    use super::*;
    use crate::config::{ConfigFile, TypeSection};

    #[test]
    fn invalid_values_name_the_key() {
        let mut file = ConfigFile::default();
        file.types.insert("x".into(), TypeSection { queue_size: Some(0), ..TypeSection::default() });
        let err = PoolConfig::from_file(file).unwrap_err();
        assert_eq!(err.to_string(), "types.x.queue_size: expected at least 1");
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[test]
    fn gpu_keys_are_checked() {
        let mut cfg = PoolConfig::default();
        cfg.types.get_mut("text_processing").unwrap().gpus_per_worker = Some(1);
        assert!(cfg.validate().unwrap_err().to_string().contains("types.text_processing.gpus_per_worker"));
        let mut cfg = PoolConfig::default();
        cfg.types.get_mut("video_generation").unwrap().gpu_memory_mb = Some(0);
        assert!(cfg.validate().unwrap_err().to_string().contains("types.video_generation.gpu_memory_mb"));
        let cfg = PoolConfig {
            simulated_gpus: vec![crate::config::SimulatedGpu { name: "x".into(), memory_mb: 0 }],
            ..PoolConfig::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("pool.simulated_gpus[0].memory_mb"));
    }
}
