//! Resource sources whose figures a test sets: [`FakeProbe`] and [`FakeGpu`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::monitor::probe::{GpuSample, GpuSource, GpuUsage, ProcessUsage, ResourceProbe, SystemUsage};

/// A [`ResourceProbe`] that reports the figures the test sets. Clones share them, so a test
/// keeps one and hands another to [`PoolBuilder::resource_probe`](crate::PoolBuilder::resource_probe).
///
/// It starts at 0% CPU on 2 CPUs, with 1 GiB of memory used and 16 GiB available of 17 GiB,
/// and every process it is asked about at 1% CPU and 10 MiB.
///
/// # Examples
/// ```
/// use workerpool_actors::ResourceProbe;
/// use workerpool_actors::testing::FakeProbe;
///
/// let probe = FakeProbe::new();
/// let mut given = probe.clone();
/// probe.set_cpu(95.0);
/// let (system, processes) = given.sample(&[42]);
/// assert_eq!(system.cpu_percent, 95.0);
/// assert_eq!(processes[&42].memory_bytes, 10 << 20);
/// assert_eq!(probe.samples(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct FakeProbe {
    state: Arc<Mutex<ProbeState>>,
}

#[derive(Debug)]
struct ProbeState {
    system: SystemUsage,
    every_process: ProcessUsage,
    processes: HashMap<u32, ProcessUsage>,
    samples: u64,
}

impl FakeProbe {
    /// A probe with the starting figures above.
    pub fn new() -> FakeProbe {
        let system = SystemUsage {
            cpu_percent: 0.0,
            cpus: 2,
            memory_used_bytes: 1 << 30,
            memory_available_bytes: 16 << 30,
            memory_total_bytes: 17 << 30,
        };
        let every_process = ProcessUsage {
            cpu_percent: 1.0,
            memory_bytes: 10 << 20,
            peak_memory_bytes: 10 << 20,
            cpu_time_ms: 0,
        };
        let state = ProbeState { system, every_process, processes: HashMap::new(), samples: 0 };
        FakeProbe { state: Arc::new(Mutex::new(state)) }
    }

    /// Sets the system CPU (percent over all cores).
    pub fn set_cpu(&self, percent: f32) {
        self.lock().system.cpu_percent = percent;
    }

    /// Sets the memory available to new work and in use.
    pub fn set_memory(&self, available_bytes: u64, used_bytes: u64) {
        let mut s = self.lock();
        s.system.memory_available_bytes = available_bytes;
        s.system.memory_used_bytes = used_bytes;
        s.system.memory_total_bytes = available_bytes + used_bytes;
    }

    /// Sets every system figure.
    pub fn set_system(&self, system: SystemUsage) {
        self.lock().system = system;
    }

    /// Sets the figures of one process (others read as every process does).
    pub fn set_process(&self, pid: u32, usage: ProcessUsage) {
        self.lock().processes.insert(pid, usage);
    }

    /// Sets the figures of every process not set one by one.
    pub fn set_every_process(&self, usage: ProcessUsage) {
        self.lock().every_process = usage;
    }

    /// How many samples were taken.
    pub fn samples(&self) -> u64 {
        self.lock().samples
    }

    fn lock(&self) -> MutexGuard<'_, ProbeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for FakeProbe {
    fn default() -> Self {
        FakeProbe::new()
    }
}

impl ResourceProbe for FakeProbe {
    fn sample(&mut self, pids: &[u32]) -> (SystemUsage, HashMap<u32, ProcessUsage>) {
        let mut s = self.lock();
        s.samples += 1;
        let processes = pids.iter().map(|&p| (p, *s.processes.get(&p).unwrap_or(&s.every_process))).collect();
        (s.system.clone(), processes)
    }
}

// ===== GPU =====

/// A [`GpuSource`] that reports what the test sets. Clones share it, so a test keeps one and
/// hands another to [`PoolBuilder::gpu_source`](crate::PoolBuilder::gpu_source).
///
/// Unavailable, it says "fake: no GPU"; available, it shows one device, "Fake GPU"
/// (`GPU-fake-0`), at 42% with 1 GiB used of 8 GiB. [`FakeGpu::with_devices`] shows several,
/// `GPU-fake-0`, `GPU-fake-1`, …, whose free memory a test sets.
///
/// # Examples
/// ```
/// use workerpool_actors::GpuSource;
/// use workerpool_actors::testing::FakeGpu;
///
/// let gpu = FakeGpu::unavailable();
/// let mut given = gpu.clone();
/// assert_eq!(given.sample().reason.as_deref(), Some("fake: no GPU"));
/// gpu.set_available(true);
/// let sample = given.sample();
/// assert!(sample.available);
/// assert_eq!(sample.devices[0].name, "Fake GPU");
/// ```
#[derive(Clone, Debug)]
pub struct FakeGpu {
    state: Arc<Mutex<GpuState>>,
}

#[derive(Debug)]
struct GpuState {
    sample: GpuSample,
    samples: u64,
    /// Devices (by position) left out of the sample, or reported with an error.
    broken: HashMap<usize, Option<String>>,
}

impl FakeGpu {
    /// A source with no usable GPU.
    pub fn unavailable() -> FakeGpu {
        FakeGpu::from_sample(no_gpu("fake: no GPU"))
    }

    /// A source with the one device above.
    pub fn available() -> FakeGpu {
        FakeGpu::from_sample(one_gpu())
    }

    /// A source with one idle device per entry of `memory_mb`, all its memory free.
    ///
    /// # Examples
    /// ```
    /// use workerpool_actors::GpuSource;
    /// use workerpool_actors::testing::FakeGpu;
    ///
    /// let gpu = FakeGpu::with_devices(&[1024, 2048]);
    /// gpu.set_free(1, 512 << 20);
    /// let sample = gpu.clone().sample();
    /// assert_eq!(sample.devices[1].uuid, "GPU-fake-1");
    /// assert_eq!(sample.devices[1].memory_free_bytes, 512 << 20);
    /// assert_eq!(sample.devices[1].memory_used_bytes, 1536 << 20);
    /// ```
    pub fn with_devices(memory_mb: &[u64]) -> FakeGpu {
        let devices = (0u32..).zip(memory_mb).map(|(i, &mb)| fake_device(i, mb << 20)).collect();
        FakeGpu::from_sample(GpuSample { available: !memory_mb.is_empty(), devices, ..GpuSample::default() })
    }

    /// Sets the free memory of device `index` (the rest of it reads as used); an index
    /// without a device is ignored.
    pub fn set_free(&self, index: usize, free_bytes: u64) {
        if let Some(d) = self.lock().sample.devices.get_mut(index) {
            d.memory_free_bytes = free_bytes.min(d.memory_total_bytes);
            d.memory_used_bytes = d.memory_total_bytes - d.memory_free_bytes;
        }
    }

    /// A source that reports `sample`.
    pub fn from_sample(sample: GpuSample) -> FakeGpu {
        FakeGpu { state: Arc::new(Mutex::new(GpuState { sample, samples: 0, broken: HashMap::new() })) }
    }

    /// Sets the GPU memory of process `pid`, all of it on the first device, as NVML reports
    /// it per process (see [`FakeGpu::set_process_gpu_memory`] for another device).
    pub fn set_process_memory(&self, pid: u32, bytes: u64) {
        let first = self.lock().sample.devices.first().map(|d| d.uuid.clone()).unwrap_or_default();
        self.set_process_gpu_memory(pid, &first, bytes);
    }

    /// Sets what process `pid` holds on the GPU `uuid` (its other GPUs keep theirs), as NVML
    /// reports it per process and device.
    ///
    /// # Examples
    /// ```
    /// use workerpool_actors::GpuSource;
    /// use workerpool_actors::testing::FakeGpu;
    ///
    /// let gpu = FakeGpu::with_devices(&[1024, 1024]);
    /// gpu.set_process_gpu_memory(7, "GPU-fake-0", 100);
    /// gpu.set_process_gpu_memory(7, "GPU-fake-1", 20);
    /// let sample = gpu.clone().sample();
    /// assert_eq!(sample.process_memory[&7]["GPU-fake-1"], 20);
    /// assert_eq!(sample.process_total(7), Some(120));
    /// ```
    pub fn set_process_gpu_memory(&self, pid: u32, uuid: &str, bytes: u64) {
        self.lock().sample.process_memory.entry(pid).or_default().insert(uuid.to_string(), bytes);
    }

    /// Leaves device `index` out of the samples, as if it had fallen off the bus, until
    /// [`FakeGpu::restore`].
    ///
    /// # Examples
    /// ```
    /// use workerpool_actors::GpuSource;
    /// use workerpool_actors::testing::FakeGpu;
    ///
    /// let gpu = FakeGpu::with_devices(&[1024, 1024]);
    /// gpu.vanish(0);
    /// assert_eq!(gpu.clone().sample().devices[0].uuid, "GPU-fake-1");
    /// gpu.fail(1, "GPU is lost");
    /// assert_eq!(gpu.clone().sample().devices[0].error.as_deref(), Some("GPU is lost"));
    /// gpu.restore(0);
    /// gpu.restore(1);
    /// assert_eq!(gpu.clone().sample().devices.len(), 2);
    /// ```
    pub fn vanish(&self, index: usize) {
        self.lock().broken.insert(index, None);
    }

    /// Reports device `index` with `error` in place of its figures, as NVML answering an
    /// error for it, until [`FakeGpu::restore`].
    pub fn fail(&self, index: usize, error: &str) {
        self.lock().broken.insert(index, Some(error.to_string()));
    }

    /// Reports device `index` as it was before [`FakeGpu::vanish`] or [`FakeGpu::fail`].
    pub fn restore(&self, index: usize) {
        self.lock().broken.remove(&index);
    }

    /// Switches between the one device above and no GPU ("fake: no GPU").
    pub fn set_available(&self, available: bool) {
        self.set_sample(if available { one_gpu() } else { no_gpu("fake: no GPU") });
    }

    /// Reports no usable GPU, for `reason`.
    pub fn set_unavailable(&self, reason: &str) {
        self.set_sample(no_gpu(reason));
    }

    /// Reports `sample` from now on.
    pub fn set_sample(&self, sample: GpuSample) {
        self.lock().sample = sample;
    }

    /// How many samples were taken.
    pub fn samples(&self) -> u64 {
        self.lock().samples
    }

    fn lock(&self) -> MutexGuard<'_, GpuState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl GpuSource for FakeGpu {
    fn sample(&mut self) -> GpuSample {
        let mut s = self.lock();
        s.samples += 1;
        let mut sample = s.sample.clone();
        let devices = std::mem::take(&mut sample.devices);
        for (i, mut d) in devices.into_iter().enumerate() {
            match s.broken.get(&i) {
                None => sample.devices.push(d),
                Some(None) => {}
                Some(Some(error)) => {
                    d.error = Some(error.clone());
                    d.utilization_percent = 0.0;
                    sample.devices.push(d);
                }
            }
        }
        sample
    }
}

fn no_gpu(reason: &str) -> GpuSample {
    GpuSample { available: false, reason: Some(reason.to_string()), ..GpuSample::default() }
}

fn one_gpu() -> GpuSample {
    let device = GpuUsage {
        utilization_percent: 42.0,
        memory_used_bytes: 1 << 30,
        memory_free_bytes: 7 << 30,
        ..fake_device(0, 8 << 30)
    };
    GpuSample { available: true, devices: vec![device], ..GpuSample::default() }
}

fn fake_device(index: u32, total: u64) -> GpuUsage {
    GpuUsage {
        index,
        uuid: format!("GPU-fake-{index}"),
        name: "Fake GPU".into(),
        memory_free_bytes: total,
        memory_total_bytes: total,
        ..GpuUsage::default()
    }
}
