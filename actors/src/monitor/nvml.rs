//! [`NvmlSource`]: the GPUs as NVML reports them, with each one's index, UUID, name, memory,
//! utilisation and temperature, and the MIG instances of a GPU with MIG on.

#[cfg(feature = "gpu")]
use super::probe::GpuUsage;
use super::probe::{GpuSample, GpuSource};

/// [`GpuSource`] over NVML. A machine without the NVIDIA driver gets a source that reports
/// "unavailable" with the reason, and logs it once; so does a build without the `gpu`
/// feature.
pub struct NvmlSource {
    nvml: Result<Nvml, String>,
}

#[cfg(feature = "gpu")]
type Nvml = nvml_wrapper::Nvml;
/// Without the `gpu` feature there is no NVML to hold.
#[cfg(not(feature = "gpu"))]
type Nvml = std::convert::Infallible;

impl NvmlSource {
    /// Loads NVML; failure is not an error, only a reason why no GPU is usable.
    pub fn new() -> NvmlSource {
        #[cfg(feature = "gpu")]
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("NVML unavailable: {e}"));
        #[cfg(not(feature = "gpu"))]
        let nvml = Err("this build has no GPU support (the `gpu` feature)".to_string());
        match &nvml {
            Ok(_) => log::info!("NVML loaded: GPU figures are live"),
            Err(reason) => log::info!("no GPU: {reason}; types with gpu_required take no tasks"),
        }
        NvmlSource { nvml }
    }
}

impl Default for NvmlSource {
    fn default() -> Self {
        NvmlSource::new()
    }
}

impl GpuSource for NvmlSource {
    fn sample(&mut self) -> GpuSample {
        match &self.nvml {
            Ok(nvml) => sample_nvml(nvml),
            Err(reason) => GpuSample { reason: Some(reason.clone()), ..GpuSample::default() },
        }
    }
}

#[cfg(not(feature = "gpu"))]
fn sample_nvml(nvml: &Nvml) -> GpuSample {
    match *nvml {}
}

#[cfg(feature = "gpu")]
fn sample_nvml(nvml: &Nvml) -> GpuSample {
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            return GpuSample {
                reason: Some(format!("NVML cannot count devices: {e}")),
                ..GpuSample::default()
            };
        }
    };
    let mut sample = GpuSample::default();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("GPU {index}: {e}");
                continue;
            }
        };
        let mut gpu = usage(&device, index);
        // MIG mode 1 is NVML_DEVICE_MIG_ENABLE; a GPU without MIG answers NotSupported.
        gpu.mig_enabled = device.mig_mode().is_ok_and(|m| m.current == 1);
        let parent = gpu.uuid.clone();
        let mig_enabled = gpu.mig_enabled;
        sample.devices.push(gpu);
        if mig_enabled {
            // Slots without an instance answer NotFound: they are skipped. Each instance lists
            // its own processes (the GPU's list does not say how much each holds where).
            for slot in 0..device.mig_device_count().unwrap_or(0) {
                let Ok(mig) = device.mig_device_by_index(slot) else { continue };
                let mut instance = usage(&mig, index);
                instance.mig_parent = Some(parent.clone());
                add_processes(&mut sample, &mig, &instance.uuid);
                sample.devices.push(instance);
            }
        } else {
            add_processes(&mut sample, &device, &parent);
        }
    }
    sample.available = sample.devices.iter().any(GpuUsage::placeable);
    if !sample.available {
        sample.reason = Some("NVML reports no GPU".to_string());
    }
    sample
}

/// Adds what each compute process holds on `device` (the GPU or MIG instance `uuid`).
#[cfg(feature = "gpu")]
fn add_processes(sample: &mut GpuSample, device: &nvml_wrapper::Device<'_>, uuid: &str) {
    for p in device.running_compute_processes().unwrap_or_default() {
        if let nvml_wrapper::enums::device::UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
            sample.add_process_memory(p.pid, uuid, bytes);
        }
    }
}

/// The figures of one GPU or MIG instance; a figure NVML does not give reads 0 (or `None`).
/// A device whose memory NVML cannot read (e.g. `GPU is lost`, `Unknown`) carries that
/// error, and the pool drains it.
#[cfg(feature = "gpu")]
fn usage(device: &nvml_wrapper::Device<'_>, index: u32) -> GpuUsage {
    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    let (memory, error) = match device.memory_info() {
        Ok(m) => (Some(m), None),
        Err(nvml_wrapper::error::NvmlError::NotSupported) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    GpuUsage {
        error,
        index,
        uuid: device.uuid().unwrap_or_else(|_| format!("GPU-index-{index}")),
        name: device.name().unwrap_or_else(|_| format!("GPU {index}")),
        utilization_percent: device.utilization_rates().map_or(0.0, |u| u.gpu as f32),
        memory_used_bytes: memory.as_ref().map_or(0, |m| m.used),
        memory_free_bytes: memory.as_ref().map_or(0, |m| m.free),
        memory_total_bytes: memory.as_ref().map_or(0, |m| m.total),
        temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
        ..GpuUsage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvml_without_a_driver_says_why() {
        let sample = NvmlSource::new().sample();
        if !sample.available {
            assert!(sample.reason.is_some());
        }
    }
}
