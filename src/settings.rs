//! Settings of the server: the configuration file, laid over the contract's defaults, with the
//! environment and then the command line on top (flag > env > file > default).

use std::fmt;
use std::path::{Path, PathBuf};

use workerpool_actors::config_file::ConfigFile;
use workerpool_actors::redact::{Secret, SecretUrl};
use workerpool_actors::{ExecutorKind, PoolConfig, SimulatedGpu};

mod redis_env;
mod server;
mod tokens;
mod toml_error;

use server::ServerFile;
pub use server::{CorsOrigins, TlsFiles};

/// Where the server listens unless told otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:3002";
/// The configuration file used when none is named and it exists.
pub const DEFAULT_CONFIG: &str = "config/default.toml";

/// A configuration problem; the server exits with code 2 on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the command line may set.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--bind ADDR`.
    pub bind: Option<String>,
    /// `--redis URL`.
    pub redis: Option<SecretUrl>,
}

/// Everything the server runs with. Its secrets are [`Secret`] and [`SecretUrl`], so `Debug`
/// shows them as `***`; [`Settings::secrets`] lists them for the log to hide.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The pool's configuration.
    pub pool: PoolConfig,
    /// The file it came from, if any.
    pub config_path: Option<PathBuf>,
    /// Listen address.
    pub bind: String,
    /// Redis URL, when configured.
    pub redis_url: Option<SecretUrl>,
    /// This instance's id.
    pub instance_id: String,
    /// Bearer token required by the endpoints that change something.
    pub api_token: Option<Secret>,
    /// A second token that opens reads, SSE and `/metrics` only (`WORKERPOOL_READ_TOKEN`).
    pub read_token: Option<Secret>,
    /// With a token, require it on reads, SSE and `/metrics` too (`WORKERPOOL_PROTECT_READS`).
    pub protect_reads: bool,
    /// Web origins that may call the API from a browser (`[server] cors_origins`).
    pub cors_origins: CorsOrigins,
    /// HTTPS instead of HTTP (`[server] tls_cert_file`, `tls_key_file`).
    pub tls: Option<TlsFiles>,
}

impl Settings {
    /// Reads the file (the named one, or `config/default.toml` when it exists), then applies
    /// the environment `env` and the command line.
    pub fn load(flags: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let path = match &flags.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
        };
        let (file, server) = match &path {
            Some(p) => read_file(p)?,
            None => (ConfigFile::default(), ServerFile::default()),
        };
        let in_file = |e: ConfigError| match &path {
            Some(p) => ConfigError(format!("{}: {e}", p.display())),
            None => e,
        };
        let cors_origins = CorsOrigins::from_list(server.server.cors_origins.as_deref()).map_err(in_file)?;
        let tls =
            TlsFiles::from_keys(server.server.tls_cert_file, server.server.tls_key_file).map_err(in_file)?;
        let mut pool = PoolConfig::from_file(file).map_err(|e| match &path {
            Some(p) => ConfigError(format!("{}: {e}", p.display())),
            None => ConfigError(e.to_string()),
        })?;
        apply_env(&mut pool, env)?;
        let demo = demo_worker_command()?;
        for t in pool.types.values_mut() {
            if t.executor == ExecutorKind::Process && t.command.is_none() {
                t.command = Some(demo.clone());
            }
        }
        pool.validate().map_err(|e| ConfigError(format!("after environment overrides: {e}")))?;
        if let Some(warning) = redis_env::ignored_vars(env, flags.redis.is_some()) {
            log::warn!("{warning}");
        }
        let redis_url = flags
            .redis
            .clone()
            .or_else(|| redis_env::redis_from_env(env).map(SecretUrl::from))
            .or(pool.redis.url.take());
        let instance_id = env("INSTANCE_ID")
            .filter(|i| !i.is_empty())
            .or_else(|| Some(pool.redis.instance_id.clone()).filter(|i| !i.is_empty()))
            .unwrap_or_else(default_instance_id);
        pool.redis.url = redis_url.clone();
        pool.redis.instance_id = instance_id.clone();
        pool.validate().map_err(|e| ConfigError(format!("Redis settings: {e}")))?;
        let api_token = env("WORKERPOOL_API_TOKEN").filter(|t| !t.is_empty());
        let protect_reads = parse_env::<String>(env, "WORKERPOOL_PROTECT_READS", "")?
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        let read_token = tokens::read_token(env, api_token.as_deref(), protect_reads)?;
        tokens::warn_if_weak(api_token.as_deref(), read_token.as_deref());
        Ok(Settings {
            pool,
            config_path: path,
            bind: flags
                .bind
                .clone()
                .or_else(|| env("WORKERPOOL_BIND"))
                .unwrap_or_else(|| DEFAULT_BIND.into()),
            redis_url,
            instance_id,
            api_token: api_token.map(Secret::from),
            read_token: read_token.map(Secret::from),
            protect_reads,
            cors_origins,
            tls,
        })
    }
}

impl Settings {
    /// Every secret these settings hold (the API token, the Redis password as written and
    /// decoded), for the log to hide wherever a message would repeat one.
    pub fn secrets(&self) -> Vec<String> {
        let tokens = self.api_token.iter().chain(&self.read_token);
        let mut secrets: Vec<String> = tokens.map(|t| t.expose().to_string()).collect();
        secrets.extend(self.redis_url.iter().flat_map(SecretUrl::secrets));
        secrets
    }
}

/// The file's tables: the library's, and the server's own `[server]`.
fn read_file(path: &Path) -> Result<(ConfigFile, ServerFile), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read the configuration: {e}", path.display())))?;
    let bad =
        |e: toml::de::Error| ConfigError(format!("{}: {}", path.display(), toml_error::describe(&text, &e)));
    Ok((toml::from_str(&text).map_err(bad)?, toml::from_str(&text).map_err(bad)?))
}

fn parse_env<T: std::str::FromStr>(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ConfigError> {
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError(format!("environment variable {name}={v:?}: expected {expected}"))),
    }
}

fn apply_env(pool: &mut PoolConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let (max_workers, warning) = max_workers_from_env(env)?;
    if let Some(warning) = warning {
        log::warn!("{warning}");
    }
    if let Some(n) = max_workers {
        pool.max_workers = n;
    }
    if let Some(n) = parse_env(env, "MIN_WORKERS", "a whole number")? {
        pool.min_workers = n;
    }
    if let Some(ms) = parse_env::<u64>(env, "WORKER_TIMEOUT", "a timeout in milliseconds")? {
        for t in pool.types.values_mut() {
            t.timeout_ms = ms;
        }
    }
    if let Some(n) = parse_env::<usize>(env, "WORKER_QUEUE_SIZE", "a positive whole number")? {
        for t in pool.types.values_mut() {
            t.queue_size = n;
        }
    }
    if let Some(spec) = env("WORKERPOOL_SIMULATED_GPUS").filter(|s| !s.trim().is_empty()) {
        pool.simulated_gpus = SimulatedGpu::parse_list(&spec)
            .map_err(|e| ConfigError(format!("environment variable WORKERPOOL_SIMULATED_GPUS: {e}")))?;
    }
    Ok(())
}

/// `MAX_WORKERS`, or its other name `WORKER_POOL_SIZE` (seed 004). When both are set,
/// `MAX_WORKERS` wins and the warning returned names both; the other is not read.
fn max_workers_from_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<usize>, Option<String>), ConfigError> {
    const EXPECTED: &str = "a positive whole number";
    let max_workers = parse_env(env, "MAX_WORKERS", EXPECTED)?;
    match (max_workers, env("WORKER_POOL_SIZE")) {
        (Some(n), Some(other)) => Ok((
            Some(n),
            Some(format!(
                "MAX_WORKERS={n} and WORKER_POOL_SIZE={other:?} are both set: using MAX_WORKERS \
                 (WORKER_POOL_SIZE is another name for it)"
            )),
        )),
        (Some(n), None) => Ok((Some(n), None)),
        (None, _) => Ok((parse_env(env, "WORKER_POOL_SIZE", EXPECTED)?, None)),
    }
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "workerpool".to_string() } else { host };
    format!("{host}-{}", std::process::id())
}

/// The bundled demo worker: this very binary with the `demo-worker` subcommand.
fn demo_worker_command() -> Result<Vec<String>, ConfigError> {
    let exe = std::env::current_exe()
        .map_err(|e| ConfigError(format!("cannot locate the workerpool binary: {e}")))?;
    Ok(vec![exe.to_string_lossy().into_owned(), "demo-worker".into()])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn write(text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("c.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "wp-settings-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let (_d, path) = write("[pool]\nmax_workers = 3\n[types.text_processing]\ntimeout_ms = 5000\n");
        let flags = Overrides { config: Some(path), bind: Some("127.0.0.1:1".into()), redis: None };
        let s = Settings::load(&flags, &env_of(&[("WORKERPOOL_BIND", "127.0.0.1:2"), ("MAX_WORKERS", "5")]))
            .unwrap();
        assert_eq!(s.bind, "127.0.0.1:1");
        assert_eq!(s.pool.max_workers, 5);
        assert_eq!(s.pool.types["text_processing"].timeout_ms, 5000);
        assert_eq!(s.pool.types["text_processing"].max_concurrent, 10);
        let cmd = s.pool.types["text_processing"].command.clone().unwrap();
        assert_eq!(cmd[1], "demo-worker");
    }

    #[test]
    fn bad_file_names_file_and_key() {
        let (_d, path) = write("[types.text_processing]\nmax_concurrent = \"ten\"\n");
        let flags = Overrides { config: Some(path.clone()), ..Overrides::default() };
        let err = Settings::load(&flags, &env_of(&[])).unwrap_err().0;
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("max_concurrent"), "{err}");
        let (_d2, path) = write("[pool]\nmax_wrkers = 1\n");
        let err = Settings::load(&Overrides { config: Some(path), ..Overrides::default() }, &env_of(&[]))
            .unwrap_err()
            .0;
        assert!(err.contains("max_wrkers"), "{err}");
        // The line at fault is placed, not quoted: it may hold a secret.
        let (_d3, path) = write("[redis]\npassword = \"Pl4nted-pw\"\n");
        let err = Settings::load(&Overrides { config: Some(path), ..Overrides::default() }, &env_of(&[]))
            .unwrap_err()
            .0;
        assert!(err.contains("password") && err.contains("line 2"), "{err}");
        assert!(!err.contains("Pl4nted"), "{err}");
    }

    #[test]
    fn binds_loopback_by_default() {
        let s = Settings::load(&Overrides::default(), &env_of(&[])).unwrap();
        assert_eq!(s.bind, "127.0.0.1:3002");
        assert!(s.api_token.is_none() && !s.protect_reads);
    }

    #[test]
    fn bad_env_names_the_variable() {
        let err = Settings::load(&Overrides::default(), &env_of(&[("MAX_WORKERS", "lots")])).unwrap_err().0;
        assert!(err.contains("MAX_WORKERS"), "{err}");
        let err = Settings::load(&Overrides::default(), &env_of(&[("MAX_WORKERS", "0")])).unwrap_err().0;
        assert!(err.contains("pool.max_workers"), "{err}");
    }

    #[test]
    fn simulated_gpus_from_the_environment() {
        let load = |spec: &str| {
            Settings::load(&Overrides::default(), &env_of(&[("WORKERPOOL_SIMULATED_GPUS", spec)]))
        };
        let gpus = load("2x81920").unwrap().pool.simulated_gpus;
        assert_eq!(gpus.iter().map(|g| g.memory_mb).collect::<Vec<_>>(), [81920, 81920]);
        let err = load("lots").unwrap_err().0;
        assert!(err.contains("WORKERPOOL_SIMULATED_GPUS") && err.contains("COUNTxMB"), "{err}");
    }

    #[test]
    fn worker_pool_size_is_another_name_for_max_workers() {
        let load = |pairs: &[(&str, &str)]| Settings::load(&Overrides::default(), &env_of(pairs));
        assert_eq!(load(&[("WORKER_POOL_SIZE", "6")]).unwrap().pool.max_workers, 6);
        // Both set: MAX_WORKERS wins, with a warning that names both.
        let both = env_of(&[("MAX_WORKERS", "5"), ("WORKER_POOL_SIZE", "6")]);
        assert_eq!(Settings::load(&Overrides::default(), &both).unwrap().pool.max_workers, 5);
        let (n, warning) = max_workers_from_env(&both).unwrap();
        assert_eq!(n, Some(5));
        let warning = warning.expect("a warning");
        assert!(warning.contains("MAX_WORKERS=5") && warning.contains("WORKER_POOL_SIZE=\"6\""), "{warning}");
        assert_eq!(max_workers_from_env(&env_of(&[("MAX_WORKERS", "5")])).unwrap(), (Some(5), None));
        assert_eq!(max_workers_from_env(&env_of(&[])).unwrap(), (None, None));
        // A bad value is named by the name it was given under.
        let err = load(&[("WORKER_POOL_SIZE", "lots")]).unwrap_err().0;
        assert!(err.contains("WORKER_POOL_SIZE") && !err.contains("MAX_WORKERS"), "{err}");
        let err = load(&[("WORKER_POOL_SIZE", "0")]).unwrap_err().0;
        assert!(err.contains("pool.max_workers"), "{err}");
    }

    #[test]
    fn cors_origins_from_the_server_table() {
        let load = |text: &str| {
            let (_d, path) = write(text);
            Settings::load(&Overrides { config: Some(path), ..Overrides::default() }, &env_of(&[]))
        };
        assert_eq!(load("").unwrap().cors_origins, CorsOrigins::Off);
        let s = load("[server]\ncors_origins = [\"https://ops.example\"]\n").unwrap();
        assert_eq!(s.cors_origins, CorsOrigins::Listed(vec!["https://ops.example".into()]));
        let err = load("[server]\ncors_origins = [\"https://ops.example/\"]\n").unwrap_err().0;
        assert!(err.contains("\"https://ops.example/\""), "{err}");
        let err = load("[server]\ncors_origin = []\n").unwrap_err().0;
        assert!(err.contains("cors_origin"), "{err}");
    }

    #[test]
    fn secrets_are_listed_and_never_debug_printed() {
        let env = env_of(&[
            ("REDIS_URL", "redis://:pl4nted-pw@h:1/"),
            ("WORKERPOOL_API_TOKEN", "pl4nted-token"),
            ("WORKERPOOL_READ_TOKEN", "pl4nted-read"),
        ]);
        let s = Settings::load(&Overrides::default(), &env).unwrap();
        assert_eq!(s.secrets(), ["pl4nted-token", "pl4nted-read", "pl4nted-pw"]);
        let shown = format!("{s:?} {:?}", s.pool);
        assert!(!shown.contains("pl4nted"), "{shown}");
        assert!(shown.contains("redis://:***@h:1/"), "{shown}");
        let json = serde_json::to_string(&s.pool).unwrap();
        assert!(!json.contains("pl4nted") && json.contains("redis://:***@h:1/"), "{json}");
    }

    #[test]
    fn the_redis_flag_wins_over_the_environment() {
        let s = Settings::load(
            &Overrides { redis: Some("redis://x/".into()), ..Overrides::default() },
            &env_of(&[("REDIS_URL", "redis://y/")]),
        )
        .unwrap();
        assert_eq!(s.redis_url.as_ref().map(SecretUrl::expose), Some("redis://x/"));
    }
}
