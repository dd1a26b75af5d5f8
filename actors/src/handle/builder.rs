//! [`PoolBuilder`]: validates the configuration and starts the tree, its backend and (with
//! Redis) the bridge.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::PoolHandle;
use crate::backend::AnyBackend;
use crate::backend::memory::MemoryBackend;
use crate::config::{ExecutorKind, PoolConfig, TypeConfig};
use crate::error::{Error, ErrorKind};
use crate::executor::{HandlerFn, HandlerFuture, TaskContext, TaskError, typed_handler};
use crate::gpus::GpuLedger;
use crate::intake::Intake;
use crate::local::LocalPools;
use crate::metrics::PoolMetrics;
use crate::monitor::nvml::NvmlSource;
use crate::monitor::probe::{GpuSource, ResourceProbe, SysinfoProbe};
use crate::monitor::simulated::SimulatedGpus;
use crate::pool::Pools;
use crate::resources::{GpuStatus, ResourceSnapshot};
use crate::shared::Shared;
use crate::supervisor::{Plugins, Supervisor};

/// Builds and starts a pool.
///
/// # Examples
/// ```
/// use workerpool_actors::{PoolBuilder, PoolConfig, TaskRequest};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = PoolConfig::default();
/// config.types.clear();
/// let pool = PoolBuilder::new(config)
///     .handler("double", |ctx| async move {
///         let n = ctx.data().as_i64().unwrap_or(0);
///         Ok(serde_json::json!(n * 2))
///     })
///     .start()?;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let record = rt.block_on(pool.execute(TaskRequest::new("double", 21.into())))?;
/// assert_eq!(record.result, Some(42.into()));
/// rt.block_on(pool.shutdown());
/// # Ok(())
/// # }
/// ```
pub struct PoolBuilder {
    config: PoolConfig,
    handlers: HashMap<String, HandlerFn>,
    registry: Option<prometheus::Registry>,
    probe: Option<Box<dyn ResourceProbe>>,
    gpu: Option<Box<dyn GpuSource>>,
}

impl PoolBuilder {
    /// A builder for `config`.
    pub fn new(config: PoolConfig) -> PoolBuilder {
        PoolBuilder { config, handlers: HashMap::new(), registry: None, probe: None, gpu: None }
    }

    /// Runs the tasks of `task_type` in-process with an async handler. A type not in the
    /// configuration is added with default settings.
    pub fn handler<F, Fut>(mut self, task_type: impl Into<String>, f: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + 'static,
    {
        let handler: HandlerFn = Arc::new(move |ctx| Box::pin(f(ctx)) as HandlerFuture);
        self.handlers.insert(task_type.into(), handler);
        self
    }

    /// Like [`PoolBuilder::handler`], with the input decoded into `I` and the output encoded
    /// from `O` by serde; an input of the wrong shape fails the task without a retry.
    pub fn typed_handler<I, O, F, Fut>(mut self, task_type: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(I, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + 'static,
    {
        self.handlers.insert(task_type.into(), typed_handler(f));
        self
    }

    /// Registers the pool's `workerpool_*` metrics on `registry` (default: a private one).
    pub fn registry(mut self, registry: prometheus::Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Reads CPU and memory through `probe` (default: [`SysinfoProbe`]).
    pub fn resource_probe(mut self, probe: impl ResourceProbe) -> Self {
        self.probe = Some(Box::new(probe));
        self
    }

    /// Reads GPUs through `source` (default: [`SimulatedGpus`] when
    /// [`PoolConfig::simulated_gpus`] names some, else [`NvmlSource`]).
    pub fn gpu_source(mut self, source: impl GpuSource) -> Self {
        self.gpu = Some(Box::new(source));
        self
    }

    /// Validates the configuration and starts the actor tree: on the current actix system if
    /// there is one, otherwise on a thread of its own that ends with [`PoolHandle::shutdown`].
    pub fn start(self) -> Result<PoolHandle, Error> {
        let PoolBuilder { mut config, handlers, registry, probe, gpu } = self;
        for name in handlers.keys() {
            let t = config.types.entry(name.clone()).or_insert_with(|| TypeConfig::defaults_for(name));
            t.executor = ExecutorKind::InProcess;
            t.command = None;
        }
        config.validate()?;
        for (name, t) in &config.types {
            match t.executor {
                ExecutorKind::Process if t.command.is_none() => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("types.{name}.command: expected the worker command for the process executor"),
                    ));
                }
                ExecutorKind::InProcess if !handlers.contains_key(name) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("types.{name}.executor: in-process, but no handler is registered for {name}"),
                    ));
                }
                _ => {}
            }
        }
        let registry = registry.unwrap_or_default();
        let metrics = PoolMetrics::new(&registry)
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot register the metrics: {e}")))?;
        if config.redis.url.is_some() {
            metrics
                .register_redis()
                .map_err(|e| Error::new(ErrorKind::Config, format!("cannot register the metrics: {e}")))?;
        }
        let (mut gpu, simulated_dir) = gpu_source(gpu, &config)?;
        let shared = Arc::new(Shared::new(&config, metrics, GpuLedger::new(&config, simulated_dir)));
        let probe: Box<dyn ResourceProbe> = match probe {
            Some(p) => p,
            None => Box::new(SysinfoProbe::new().ok_or_else(|| {
                Error::new(ErrorKind::Internal, "cannot read system resources on this platform")
            })?),
        };
        // GPU availability and the inventory must be known before the first task is admitted.
        let first = shared.gpus.observe(gpu.sample(), &[]);
        shared.set_resources(ResourceSnapshot {
            gpu: GpuStatus { available: first.available, reason: first.reason, simulated: first.simulated },
            gpus: first.devices,
            ..ResourceSnapshot::default()
        });
        let intakes: BTreeMap<String, Arc<Intake>> =
            config.types.keys().map(|name| (name.clone(), Arc::new(Intake::default()))).collect();
        let plugins = Plugins { handlers, probe, gpu, intakes: intakes.clone() };
        let (supervisor, pools, system, remote) = if actix_rt::System::try_current().is_some() {
            let remote = connect(&config)?;
            let (s, p) = Supervisor::start_tree(&config, plugins, shared.clone());
            (s, p, None, remote)
        } else {
            start_on_own_thread(&config, plugins, shared.clone())?
        };
        let local = Arc::new(LocalPools { pools, intakes, shared, config });
        let backend = backend(remote, &local, system.as_ref());
        Ok(PoolHandle::new(supervisor, local, backend, system))
    }
}

/// The GPU source: the one given, else simulated GPUs when `simulated_gpus` names some,
/// else NVML; and the directory workers on simulated GPUs report to.
fn gpu_source(
    given: Option<Box<dyn GpuSource>>,
    config: &PoolConfig,
) -> Result<(Box<dyn GpuSource>, Option<PathBuf>), Error> {
    if let Some(source) = given {
        return Ok((source, None));
    }
    if config.simulated_gpus.is_empty() {
        return Ok((Box::new(NvmlSource::new()), None));
    }
    let sim = SimulatedGpus::create(&config.simulated_gpus).map_err(|e| {
        Error::new(ErrorKind::Config, format!("pool.simulated_gpus: cannot create their directory: {e}"))
    })?;
    let dir = sim.dir().to_path_buf();
    Ok((Box::new(sim), Some(dir)))
}

/// The connection to the shared queues.
#[cfg(feature = "redis")]
type Connection = Arc<crate::remote::Remote>;
/// A build without the `redis` feature has none.
#[cfg(not(feature = "redis"))]
type Connection = std::convert::Infallible;

/// The shared queues, when a Redis URL is configured (inside the tree's runtime).
fn connect(config: &PoolConfig) -> Result<Option<Connection>, Error> {
    if config.redis.url.is_none() {
        return Ok(None);
    }
    #[cfg(feature = "redis")]
    return Ok(Some(Arc::new(crate::remote::Remote::new(config)?)));
    #[cfg(not(feature = "redis"))]
    Err(Error::new(ErrorKind::Config, "redis.url: this build has no Redis support (the `redis` feature)"))
}

/// The backend over `remote` (Redis), or in memory; with Redis, the bridge starts feeding
/// this instance's pools on the tree's arbiter.
fn backend(
    remote: Option<Connection>,
    local: &Arc<LocalPools>,
    system: Option<&actix_rt::System>,
) -> AnyBackend {
    #[cfg(not(feature = "redis"))]
    let _ = system;
    match remote {
        None => AnyBackend::Memory(MemoryBackend { local: local.clone() }),
        #[cfg(feature = "redis")]
        Some(remote) => {
            let bridge = crate::remote::bridge::start;
            let (shared, pools) = (remote.clone(), local.clone());
            match system {
                Some(system) => system.arbiter().spawn(async move { bridge(shared, pools) }),
                None => actix_rt::Arbiter::current().spawn(async move { bridge(shared, pools) }),
            };
            AnyBackend::Redis(crate::backend::redis::RedisBackend { remote, local: local.clone() })
        }
        #[cfg(not(feature = "redis"))]
        Some(never) => match never {},
    }
}

type Tree = (Addr<Supervisor>, Pools, Option<actix_rt::System>, Option<Connection>);

fn start_on_own_thread(config: &PoolConfig, plugins: Plugins, shared: Arc<Shared>) -> Result<Tree, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = config.clone();
    std::thread::Builder::new()
        .name("workerpool-tree".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            let started = system.block_on(async move {
                let remote = connect(&config)?;
                let (s, p) = Supervisor::start_tree(&config, plugins, shared);
                Ok::<_, Error>((s, p, actix_rt::System::current(), remote))
            });
            let failed = started.is_err();
            let _ = tx.send(started);
            if failed {
                return;
            }
            if let Err(e) = system.run() {
                log::error!("the workerpool system ended with an error: {e}");
            }
        })
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start the pool thread: {e}")))?;
    let (s, p, sys, remote) = rx
        .recv()
        .map_err(|_| Error::new(ErrorKind::Internal, "the pool thread ended before it started"))??;
    Ok((s, p, Some(sys), remote))
}
