//! The timer actors under the `Supervisor` (`run_interval`):
//! - `ResourceMonitor` samples CPU, memory and GPUs through the probe traits of `probe.rs`,
//!   kills workers over their memory limit and lets pools blocked on CPU, memory or GPU room
//!   retry; the GPU sources are NVML (`nvml.rs`) and simulated devices (`simulated.rs`);
//! - `HealthMonitor` pings idle workers and replaces silent or stuck ones;
//! - `ScalingMonitor` applies the scaling policy.
//!
//! Each only sends messages to the pools; the decisions are pure functions
//! (`crate::policy`, `crate::health`) and the pools carry them out.

pub(crate) mod health;
pub(crate) mod nvml;
pub(crate) mod probe;
pub(crate) mod resource;
pub(crate) mod scaling;
pub(crate) mod simulated;
