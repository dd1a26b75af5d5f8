//! Test doubles for code that embeds the pool, and for this crate's own tests (feature
//! `test-util`, off by default).
//!
//! - [`ScriptedExecutor`]: an in-process handler that follows a script written per task and per
//!   attempt ([`Attempt`]): answer, fail, take a given time, report progress, crash or hang. It
//!   records every attempt it was asked to run ([`Call`]), on the tokio clock.
//! - [`FakeProbe`] and [`FakeGpu`]: a [`ResourceProbe`](crate::ResourceProbe) and a
//!   [`GpuSource`](crate::GpuSource) whose figures the test sets.
//! - [`PausedSystem`]: an actix system whose tokio clock starts paused, so that timers fire
//!   as soon as nothing else can run and every duration is exact.
//!
//! Everything here plugs in through the public builder
//! ([`PoolBuilder::handler`](crate::PoolBuilder::handler),
//! [`resource_probe`](crate::PoolBuilder::resource_probe),
//! [`gpu_source`](crate::PoolBuilder::gpu_source)); nothing reaches inside the tree.
//!
//! # Paused time
//!
//! A pool started inside an actix system runs on that system's thread, so its timers share
//! the test's clock. Under [`PausedSystem`] retry backoff, `delay`, the grace period of a
//! shutdown, the monitors' intervals and the handlers' own sleeps all follow the paused clock.
//! Attempt timeouts, idle timeouts, the waits of failed starts and the wait figures of the
//! stats are still measured on `std::time::Instant`: they take real time.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use workerpool_actors::testing::{Attempt, FakeGpu, FakeProbe, PausedSystem, ScriptedExecutor};
//! use workerpool_actors::{PoolBuilder, PoolConfig, TaskRequest, TaskStatus};
//!
//! PausedSystem::new().block_on(async {
//!     let mut config = PoolConfig::default();
//!     config.types.clear();
//!     // The first attempt fails after a second, the second one answers.
//!     let exec = ScriptedExecutor::new([
//!         Attempt::after(Duration::from_secs(1)).fail("flaky"),
//!         Attempt::answer("done"),
//!     ]);
//!     let pool = PoolBuilder::new(config)
//!         .handler("job", exec.handler())
//!         .resource_probe(FakeProbe::new())
//!         .gpu_source(FakeGpu::unavailable())
//!         .start()
//!         .unwrap();
//!     let t0 = Instant::now();
//!     let record = pool.execute(TaskRequest::new("job", serde_json::json!({}))).await.unwrap();
//!     assert_eq!((record.status, record.attempts), (TaskStatus::Completed, 2));
//!     // One second of work and the default retry delay of one second, on the paused clock.
//!     assert_eq!(t0.elapsed(), Duration::from_secs(2));
//!     assert_eq!(exec.calls()[1].started - t0, Duration::from_secs(2));
//!     pool.shutdown().await;
//! });
//! ```

mod executor;
mod probe;
mod script;
mod system;

pub use executor::{Call, ScriptedExecutor, script_input};
pub use probe::{FakeGpu, FakeProbe};
pub use script::{Attempt, Steps};
pub use system::PausedSystem;
