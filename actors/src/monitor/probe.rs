//! Where resource figures come from: [`ResourceProbe`] (CPU and memory of the system and of
//! worker processes) and [`GpuSource`] (GPUs), each a trait with a real implementation
//! (`sysinfo` here; NVML in `nvml`, simulated devices in `simulated`) and room for fakes in
//! tests.
//!
//! **Architecture Invariant:** OS and GPU figures are read only through these traits. Both
//! are blocking; the resource monitor calls them off the actor thread.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// System-wide figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SystemUsage {
    /// CPU use over all cores, 0–100.
    pub cpu_percent: f32,
    /// CPUs.
    pub cpus: usize,
    /// Memory in use (total − available).
    pub memory_used_bytes: u64,
    /// Memory available to new work.
    pub memory_available_bytes: u64,
    /// All memory.
    pub memory_total_bytes: u64,
}

/// One process's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProcessUsage {
    /// CPU use, percent of one core (up to 100 × cores).
    pub cpu_percent: f32,
    /// Resident memory.
    pub memory_bytes: u64,
    /// The highest resident memory since the previous sample of the process (on Linux the
    /// kernel's high-water mark, reset at each sample), so that a spike between two samples
    /// is seen; elsewhere the resident memory.
    pub peak_memory_bytes: u64,
    /// CPU time the process has used since it started, in milliseconds (user + system; on
    /// Linux in steps of the kernel's clock tick, usually 10 ms). Task accounting takes the
    /// differences between samples.
    pub cpu_time_ms: u64,
}

/// One GPU's figures, or one MIG instance's (placed like a GPU, by its UUID).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GpuUsage {
    /// Its NVML index (a MIG instance has its GPU's).
    pub index: u32,
    /// Its UUID (`GPU-…`, `MIG-…`; `GPU-sim-N` for a simulated one): what workers are given.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Utilisation, 0–100.
    pub utilization_percent: f32,
    /// Memory in use.
    pub memory_used_bytes: u64,
    /// Memory free.
    pub memory_free_bytes: u64,
    /// All its memory.
    pub memory_total_bytes: u64,
    /// Memory reserved by the pool's workers placed here (`gpu_memory_mb` each; a worker that
    /// holds the GPU for itself reserves all of it). Filled in by the pool, not the source.
    pub memory_reserved_bytes: u64,
    /// Die temperature in °C, where NVML gives it.
    pub temperature_c: Option<u32>,
    /// Whether MIG is on: then workers are placed on its instances, listed after it, and
    /// never on the GPU itself.
    pub mig_enabled: bool,
    /// For a MIG instance, the UUID of its GPU.
    pub mig_parent: Option<String>,
    /// What NVML answered instead of a figure of this device, when it answered an error:
    /// set by the source; the pool then drains the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the pool places nothing on it now and has stopped its workers (it answered an
    /// error, or it is gone from the sample: then its figures are the last ones read).
    /// Filled in by the pool, not the source; cleared when a sample reads it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<String>,
}

impl GpuUsage {
    /// Whether workers may be placed on it (a GPU with MIG on is not: its instances are).
    pub fn placeable(&self) -> bool {
        !self.mig_enabled
    }
}

/// What a GPU source saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GpuSample {
    /// Whether a usable GPU is there.
    pub available: bool,
    /// Why not, when not (e.g. "NVML unavailable: libnvidia-ml.so.1: cannot open …").
    pub reason: Option<String>,
    /// Whether the devices are simulated (`simulated_gpus`): they do not exist.
    pub simulated: bool,
    /// Per GPU.
    pub devices: Vec<GpuUsage>,
    /// GPU memory per process id and, for each, per GPU UUID (NVML reports it per device;
    /// a process on several GPUs holds something on each).
    #[serde(skip)]
    pub process_memory: HashMap<u32, BTreeMap<String, u64>>,
}

impl GpuSample {
    /// The GPU memory of process `pid` over all GPUs, if the sample lists it.
    pub fn process_total(&self, pid: u32) -> Option<u64> {
        let per_gpu = self.process_memory.get(&pid)?;
        Some(per_gpu.values().fold(0u64, |sum, &b| sum.saturating_add(b)))
    }

    /// Adds `bytes` held by process `pid` on the GPU `uuid`.
    pub fn add_process_memory(&mut self, pid: u32, uuid: &str, bytes: u64) {
        let held = self.process_memory.entry(pid).or_default().entry(uuid.to_string()).or_default();
        *held = held.saturating_add(bytes);
    }
}

/// Reads CPU and memory figures.
pub trait ResourceProbe: Send + 'static {
    /// Samples the system and the given processes; a process that is gone is left out.
    fn sample(&mut self, pids: &[u32]) -> (SystemUsage, HashMap<u32, ProcessUsage>);
}

/// Reads GPU figures.
pub trait GpuSource: Send + 'static {
    /// Samples every GPU.
    fn sample(&mut self) -> GpuSample;
}

// ===== sysinfo =====

/// [`ResourceProbe`] over `sysinfo`. CPU percentages are differences between samples, so
/// the first sample of a process reads 0.
pub struct SysinfoProbe {
    system: System,
}

impl SysinfoProbe {
    /// A probe; `None` when the platform is not supported.
    pub fn new() -> Option<SysinfoProbe> {
        System::new().ok().map(|system| SysinfoProbe { system })
    }
}

impl ResourceProbe for SysinfoProbe {
    fn sample(&mut self, pids: &[u32]) -> (SystemUsage, HashMap<u32, ProcessUsage>) {
        let wanted: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        self.system.refresh_processes_specifics(ProcessesToUpdate::Some(&wanted), true, kind);
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let processes = pids
            .iter()
            .filter_map(|&pid| {
                let p = self.system.process(Pid::from_u32(pid))?;
                let memory_bytes = p.memory();
                let peak_memory_bytes = take_peak_rss(pid).unwrap_or(0).max(memory_bytes);
                let usage = ProcessUsage {
                    cpu_percent: p.cpu_usage(),
                    memory_bytes,
                    peak_memory_bytes,
                    cpu_time_ms: p.accumulated_cpu_time(),
                };
                Some((pid, usage))
            })
            .collect();
        let system = SystemUsage {
            cpu_percent: self.system.global_cpu_usage(),
            cpus: self.system.cpus().len(),
            memory_used_bytes: self.system.used_memory(),
            memory_available_bytes: self.system.available_memory(),
            memory_total_bytes: self.system.total_memory(),
        };
        (system, processes)
    }
}

/// The peak resident memory of `pid` since the last call (`VmHWM`), and the mark reset to the
/// present (`clear_refs` 5, Linux 4.0 on). `None` where the kernel does not say.
#[cfg(target_os = "linux")]
fn take_peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    // Without the reset the mark would keep the highest value of the worker's whole life.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    Some(kb << 10)
}

#[cfg(not(target_os = "linux"))]
fn take_peak_rss(_: u32) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysinfo_sees_this_process() {
        let Some(mut probe) = SysinfoProbe::new() else { return };
        let me = std::process::id();
        let (system, procs) = probe.sample(&[me, u32::MAX - 1]);
        assert!(system.memory_total_bytes > 0 && system.cpus > 0);
        assert!(procs[&me].memory_bytes > 0);
        assert!(!procs.contains_key(&(u32::MAX - 1)));
    }
}
