//! workerpool's actor tree: typed pools of supervised workers, embeddable in any application.
//!
//! A `Supervisor` actor owns one `TypePool` actor per task type; each pool owns its `Worker`
//! actors, one per long-lived child process (the JSON-lines protocol of the contract's §4)
//! or per in-process handler slot. Callers use [`PoolBuilder`] and [`PoolHandle`]; no actor
//! address crosses this crate's boundary. See `docs/ARCHITECTURE.md` for the whole picture.
//!
//! # Examples
//!
//! One in-process type and one process type (here `cat`-like shell-free worker commands are
//! configured by the application; the server ships `workerpool demo-worker`):
//! ```
//! use workerpool_actors::{PoolBuilder, PoolConfig, TaskError, TaskRequest, TaskStatus};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = PoolConfig::default();
//! config.types.clear();
//! let pool = PoolBuilder::new(config)
//!     .typed_handler("shout", |text: String, _ctx| async move {
//!         if text.is_empty() {
//!             return Err(TaskError::fatal("nothing to shout"));
//!         }
//!         Ok(text.to_uppercase())
//!     })
//!     .start()?;
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let loud: String = pool.execute_typed("shout", &"hello").await?;
//!     assert_eq!(loud, "HELLO");
//!     let failed = pool.execute(TaskRequest::new("shout", "".into())).await?;
//!     assert_eq!(failed.status, TaskStatus::Failed);
//!     pool.shutdown().await;
//!     Ok::<_, workerpool_actors::Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```

// The library has no `unsafe` code at all; the workspace only denies it, for the server's
// one call into the CUDA driver.
#![forbid(unsafe_code)]

mod answers;
mod backend;
mod config;
mod error;
mod events;
mod executor;
mod gpus;
mod handle;
mod health;
mod intake;
mod local;
mod messages;
mod metrics;
mod monitor;
pub mod policy;
mod pool;
pub mod redact;
#[cfg(feature = "redis")]
mod remote;
mod resources;
mod shared;
mod store;
mod supervisor;
mod task;
#[cfg(feature = "test-util")]
pub mod testing;
mod usage;
mod worker;

pub use answers::{
    PoolStats, QueueInfo, QueuedTask, ScaleAction, Scaled, ShutdownReport, TypeStats, WorkerInfo,
};
pub use backend::{InstanceInfo, SharedStatus, TaskUpdate, TaskWatch};
pub use config::{ExecutorKind, GpuPlacement, PoolConfig, RedisConfig, SimulatedGpu, TypeConfig, Weight};

/// The model of a configuration file, for a program that reads one (the server does): every
/// key optional, laid over the defaults of each named type by [`PoolConfig::from_file`].
pub mod config_file {
    pub use crate::config::{ConfigFile, PoolSection, RedisSection, TypeSection};
}
pub use error::{Error, ErrorKind, SubmitError};
pub use events::{EVENT_BUFFER, Event, EventKind, EventReceiver};
pub use executor::{HandlerFn, HandlerFuture, TaskContext, TaskError};
pub use handle::{PoolBuilder, PoolHandle, TaskHandle};
pub use health::{HealthReport, HealthStatus, TypeHealth, assess_health};
pub use metrics::PoolMetrics;
pub use monitor::nvml::NvmlSource;
pub use monitor::probe::{
    GpuSample, GpuSource, GpuUsage, ProcessUsage, ResourceProbe, SysinfoProbe, SystemUsage,
};
pub use monitor::simulated::{SIMULATED_GPU_DIR_VAR, SimulatedGpus};
pub use resources::{GpuStatus, ResourceSnapshot, WorkerUsage};
pub use shared::StartFailures;
pub use task::{Progress, TaskId, TaskOptions, TaskRecord, TaskRequest, TaskResources, TaskStatus};
