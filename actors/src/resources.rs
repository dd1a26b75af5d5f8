//! The resource figures the pool publishes (the contract's `/resources`): plain data, written
//! by the resource monitor and read by admission, health and the API.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::monitor::probe::{GpuUsage, SystemUsage};

/// One worker's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerUsage {
    /// The worker.
    pub worker_id: String,
    /// Its type.
    pub task_type: String,
    /// Its process.
    pub pid: u32,
    /// CPU, percent of one core.
    pub cpu_percent: f32,
    /// Resident memory.
    pub memory_bytes: u64,
    /// Highest resident memory since the previous sample (see [`ProcessUsage`](crate::ProcessUsage)).
    pub peak_memory_bytes: u64,
    /// GPU memory over all GPUs, when NVML (or a simulated GPU's report) gives it.
    pub gpu_memory_bytes: Option<u64>,
    /// GPU memory per GPU UUID, as NVML (or the report) gives it per device: what
    /// `gpu_memory_mb` is checked against. Empty when none is known.
    pub gpu_memory_per_gpu: BTreeMap<String, u64>,
    /// The UUIDs of the GPUs the worker was placed on (its `CUDA_VISIBLE_DEVICES`).
    pub gpus: Vec<String>,
}

/// Whether a usable GPU is there, and why not.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GpuStatus {
    /// A usable GPU is reported.
    pub available: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Whether the GPUs are simulated (`simulated_gpus`): they do not exist.
    pub simulated: bool,
}

/// The latest resource figures (the contract's `/resources`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResourceSnapshot {
    /// When it was taken (Unix ms); 0 before the first sample.
    pub sampled_at: u64,
    /// System totals.
    pub system: SystemUsage,
    /// Per worker process.
    pub workers: Vec<WorkerUsage>,
    /// GPU availability.
    pub gpu: GpuStatus,
    /// Per GPU the pool uses (MIG instances included), with the memory reserved there.
    pub gpus: Vec<GpuUsage>,
}
