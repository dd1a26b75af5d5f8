//! The timer actors under the `Supervisor` (`run_interval`): `ResourceMonitor` samples CPU,
//! memory and GPUs through the probe traits of `probe.rs`.

pub(crate) mod probe;
pub(crate) mod resource;
