//! [`GpuLedger`]: the GPUs the tree uses and the reservations of the workers placed on them.
//!
//! One ledger serves every pool of a tree, since types share GPUs. It is written at three
//! moments only, none on the path that hands tasks to idle workers: a resource sample (the
//! inventory, through [`GpuLedger::observe`]), the start of a worker ([`GpuLedger::reserve`])
//! and the report of its exit ([`GpuLedger::release`]). The choice itself is
//! `policy::gpu::place`.
//!
//! **Architecture Invariant:** a reservation lives exactly as long as its worker's slot in
//! the pool: taken before the process is spawned, ended when its exit is reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{GpuPlacement, PoolConfig, TypeConfig};
use crate::messages::WorkerId;
use crate::monitor::probe::{GpuSample, GpuUsage};
use crate::monitor::simulated::SIMULATED_GPU_DIR_VAR;
use crate::policy::gpu::{self, DeviceRoom, GpuNeed};

/// The tree's GPUs and reservations.
#[derive(Debug)]
pub(crate) struct GpuLedger {
    /// `[pool] gpu_devices`.
    named: Option<Vec<String>>,
    /// The server's own `CUDA_VISIBLE_DEVICES`, read once.
    cuda_visible: Option<String>,
    placement: GpuPlacement,
    /// Where workers on simulated GPUs report what they hold.
    simulated_dir: Option<PathBuf>,
    state: Mutex<LedgerState>,
    /// How many types wait for room, read without the lock.
    waiting_count: AtomicUsize,
}

#[derive(Debug, Default)]
struct LedgerState {
    /// The GPUs the pool uses, as last sampled.
    devices: Vec<GpuUsage>,
    reservations: BTreeMap<WorkerId, Reservation>,
    /// Types whose next worker fits nowhere now, and why.
    waiting: BTreeMap<Arc<str>, String>,
    /// Whether names of `gpu_devices` that match no GPU were logged.
    warned: bool,
}

#[derive(Debug)]
struct Reservation {
    uuids: Vec<String>,
    /// Per GPU; `None`: the GPUs are the worker's alone.
    bytes: Option<u64>,
    /// What the worker used on each of its GPUs at the last sample (its process's GPU
    /// memory there, as the source gives it per device): the part of its reservation already
    /// in that GPU's used memory.
    used: BTreeMap<String, u64>,
}

impl Reservation {
    /// What the worker used on GPU `uuid` at the last sample.
    fn used_on(&self, uuid: &str) -> u64 {
        self.used.get(uuid).copied().unwrap_or(0)
    }
}

impl GpuLedger {
    /// A ledger for `cfg`; `simulated_dir` is set when the GPUs are simulated.
    pub(crate) fn new(cfg: &PoolConfig, simulated_dir: Option<PathBuf>) -> GpuLedger {
        let cuda_visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let order = std::env::var("CUDA_DEVICE_ORDER").ok();
        if let Some(warning) =
            gpu::index_order_warning(cfg.gpu_devices.as_deref(), cuda_visible.as_deref(), order.as_deref())
        {
            log::warn!("{warning}");
        }
        GpuLedger {
            named: cfg.gpu_devices.clone(),
            cuda_visible,
            placement: cfg.gpu_placement,
            simulated_dir,
            state: Mutex::new(LedgerState::default()),
            waiting_count: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a new sample as the inventory: keeps the GPUs the pool uses (see
    /// `policy::gpu::select`), notes what each placed worker of `workers` (id, pid) uses,
    /// marks each GPU with what is reserved there, and answers the sample as the pool
    /// publishes it.
    pub(crate) fn observe(&self, mut sample: GpuSample, workers: &[(&str, u32)]) -> GpuSample {
        let (chosen, bad) = gpu::select(&sample.devices, self.named.as_deref(), self.cuda_visible.as_deref());
        let mut state = self.lock();
        let source = if self.named.is_some() { "pool.gpu_devices" } else { "CUDA_VISIBLE_DEVICES" };
        if !bad.is_empty() && sample.available && !state.warned {
            let names: Vec<String> = bad.iter().map(ToString::to_string).collect();
            log::warn!("{source} names GPUs the pool cannot use: {}", names.join(", "));
            state.warned = true;
        }
        for &(id, pid) in workers {
            if let Some(r) = state.reservations.get_mut(id) {
                let held = sample.process_memory.get(&pid);
                r.used = r
                    .uuids
                    .iter()
                    .map(|u| (u.clone(), held.and_then(|h| h.get(u)).copied().unwrap_or(0)))
                    .collect();
            }
        }
        let seen = sample.devices.len();
        let now: Vec<GpuUsage> = chosen.into_iter().map(|i| sample.devices[i].clone()).collect();
        if sample.available && now.is_empty() {
            sample.available = false;
            sample.reason = Some(format!("none of the {seen} GPU(s) is among those {source} names"));
        }
        if seen == 0 && !state.devices.is_empty() {
            // A sample that reads no GPU at all (NVML failed as a whole) drains nothing: one
            // failed read must not stop every GPU worker. The GPUs stay as last seen.
            log::warn!("the GPU sample read no GPU ({:?}); keeping the GPUs as last seen", sample.reason);
            sample.devices = state.devices.clone();
            return sample;
        }
        let mut devices = gpu::drain(&state.devices, now);
        // A GPU gone from the sample stays listed, drained, until it is read again. One last
        // seen only answering errors (whose UUID NVML may not have given: `GPU-index-N`) is
        // forgotten once no worker is placed on it, so it does not stay drained for ever.
        devices.retain(|d| {
            let gone = !sample.devices.iter().any(|s| s.uuid == d.uuid);
            !(gone && d.error.is_some()) || state.reservations.values().any(|r| r.uuids.contains(&d.uuid))
        });
        for d in &mut devices {
            d.memory_reserved_bytes = reserved_on(&state.reservations, &d.uuid, d.memory_total_bytes);
            let before = state.devices.iter().find(|p| p.uuid == d.uuid).and_then(|p| p.drained.as_ref());
            match (before, &d.drained) {
                (None, Some(why)) => log::warn!("GPU {} drained: {why}; its workers are stopped", d.uuid),
                (Some(_), None) => log::info!("GPU {} is back: workers may be placed on it again", d.uuid),
                _ => {}
            }
        }
        state.devices = devices.clone();
        sample.devices = devices;
        sample
    }

    /// Places a worker of type `cfg` (named `task_type`): answers the UUIDs of its GPUs (none
    /// for a type that needs none) and reserves its memory there, or says why it fits
    /// nowhere now (and the type waits for room).
    pub(crate) fn reserve(
        &self,
        worker: &WorkerId,
        task_type: &Arc<str>,
        cfg: &TypeConfig,
    ) -> Result<Vec<String>, String> {
        let need = need_of(cfg);
        if need.count == 0 {
            return Ok(Vec::new());
        }
        let mut state = self.lock();
        let rooms: Vec<DeviceRoom> = state.devices.iter().map(|d| room(&state.reservations, d)).collect();
        match gpu::place(&rooms, need, self.placement) {
            Ok(chosen) => {
                let uuids: Vec<String> = chosen.iter().map(|&i| state.devices[i].uuid.clone()).collect();
                state.reservations.insert(
                    worker.clone(),
                    Reservation { uuids: uuids.clone(), bytes: need.memory_bytes, used: BTreeMap::new() },
                );
                if state.waiting.remove(task_type).is_some() {
                    self.waiting_count.store(state.waiting.len(), Ordering::Release);
                }
                Ok(uuids)
            }
            Err(mut why) => {
                if !gpu::could_ever_fit(&rooms, need) {
                    why.push_str(" (and none ever can: too few or too small GPUs for gpus_per_worker and gpu_memory_mb)");
                }
                if state.waiting.insert(task_type.clone(), why.clone()).as_ref() != Some(&why) {
                    log::info!("{task_type}: not starting a worker: {why}");
                }
                self.waiting_count.store(state.waiting.len(), Ordering::Release);
                Err(why)
            }
        }
    }

    /// Ends a worker's reservation (its exit was reported); answers whether it had one.
    ///
    /// Until the next sample, what the worker used at the last one counts as free again on
    /// its GPUs, so that a type waiting for room can start at once.
    ///
    /// On simulated GPUs the report of its process `pid` goes too: a killed worker cannot
    /// remove it itself.
    pub(crate) fn release(&self, worker: &WorkerId, pid: Option<u32>) -> bool {
        let mut state = self.lock();
        let Some(r) = state.reservations.remove(worker) else { return false };
        if let (Some(dir), Some(pid)) = (&self.simulated_dir, pid) {
            let _ = std::fs::remove_file(dir.join(pid.to_string()));
        }
        for d in state.devices.iter_mut().filter(|d| r.uuids.contains(&d.uuid)) {
            let freed = r.used_on(&d.uuid).min(d.memory_used_bytes);
            d.memory_used_bytes -= freed;
            d.memory_free_bytes = d.memory_free_bytes.saturating_add(freed).min(d.memory_total_bytes);
        }
        true
    }

    /// A type no longer wants a worker: it no longer waits for room.
    pub(crate) fn clear_wait(&self, task_type: &str) {
        if self.waiting_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut state = self.lock();
        state.waiting.remove(task_type);
        self.waiting_count.store(state.waiting.len(), Ordering::Release);
    }

    /// Why a type's next worker waits for GPU room, if it does.
    pub(crate) fn wait_reason(&self, task_type: &str) -> Option<String> {
        if self.waiting_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.lock().waiting.get(task_type).cloned()
    }

    /// Why no worker of type `cfg` can ever be placed on the GPUs this tree uses (too few, or
    /// all too small), if so; a type that needs no GPU, or a machine whose GPUs are not known
    /// yet, has no such reason.
    pub(crate) fn never_fits(&self, cfg: &TypeConfig) -> Option<String> {
        let need = need_of(cfg);
        if need.count == 0 {
            return None;
        }
        let state = self.lock();
        if state.devices.is_empty() {
            return None;
        }
        let rooms: Vec<DeviceRoom> = state.devices.iter().map(|d| room(&state.reservations, d)).collect();
        (!gpu::could_ever_fit(&rooms, need)).then(|| {
            let memory = cfg.gpu_memory_mb.map_or("whole GPUs".to_string(), |mb| format!("{mb} MiB on each"));
            format!(
                "a worker needs {} GPU(s) ({memory}) and this machine's {} GPU(s) can never give that",
                need.count,
                state.devices.len()
            )
        })
    }

    /// The most workers of a type this machine's GPUs could ever hold at once (at most
    /// `limit`); `None` for a type without GPUs, or before the GPUs are known.
    pub(crate) fn most_at_once(&self, cfg: &TypeConfig, limit: usize) -> Option<usize> {
        let need = need_of(cfg);
        let state = self.lock();
        if need.count == 0 || state.devices.is_empty() {
            return None;
        }
        let rooms: Vec<DeviceRoom> = state.devices.iter().map(|d| room(&state.reservations, d)).collect();
        Some(gpu::most_at_once(&rooms, need, limit))
    }

    /// Whether any type waits for GPU room (without the lock).
    pub(crate) fn any_waiting(&self) -> bool {
        self.waiting_count.load(Ordering::Acquire) > 0
    }

    /// The types waiting for GPU room.
    pub(crate) fn waiting_types(&self) -> Vec<Arc<str>> {
        if self.waiting_count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.lock().waiting.keys().cloned().collect()
    }

    /// The GPUs of every placed worker, by worker id.
    #[cfg(test)]
    pub(crate) fn placed(&self) -> std::collections::HashMap<String, Vec<String>> {
        self.lock().reservations.iter().map(|(w, r)| (w.to_string(), r.uuids.clone())).collect()
    }

    /// The drained GPUs, by UUID, and why each is.
    pub(crate) fn drained(&self) -> BTreeMap<String, String> {
        let state = self.lock();
        state.devices.iter().filter_map(|d| Some((d.uuid.clone(), d.drained.clone()?))).collect()
    }

    /// Whether the GPUs are simulated.
    pub(crate) fn simulated(&self) -> bool {
        self.simulated_dir.is_some()
    }

    /// The environment of a worker placed on `uuids` (see `policy::gpu::visible_devices`):
    /// `CUDA_VISIBLE_DEVICES` and `NVIDIA_VISIBLE_DEVICES` name its GPUs and, on simulated
    /// GPUs, where it reports what it holds. A worker without GPUs sees none while the pool
    /// places workers on GPUs (simulated ones, or any it has sampled).
    pub(crate) fn env(&self, uuids: &[String]) -> Vec<(String, String)> {
        let places_gpus = self.simulated_dir.is_some() || !self.lock().devices.is_empty();
        let mut env = gpu::visible_devices(uuids, places_gpus);
        if let Some(dir) = self.simulated_dir.as_ref().filter(|_| !uuids.is_empty()) {
            env.push((SIMULATED_GPU_DIR_VAR.to_string(), dir.display().to_string()));
        }
        env
    }
}

/// What is reserved on the GPU `uuid` of `total` bytes.
fn reserved_on(reservations: &BTreeMap<WorkerId, Reservation>, uuid: &str, total: u64) -> u64 {
    reservations
        .values()
        .filter(|r| r.uuids.iter().any(|u| u == uuid))
        .fold(0u64, |sum, r| sum.saturating_add(r.bytes.unwrap_or(total)))
}

/// What placement sees of GPU `d`: its free memory less what the reservations there may
/// still take (reserved but not yet used).
/// What a worker of type `cfg` needs of the GPUs.
fn need_of(cfg: &TypeConfig) -> GpuNeed {
    GpuNeed { count: cfg.gpus(), memory_bytes: cfg.gpu_memory_mb.map(|mb| mb.saturating_mul(1 << 20)) }
}

fn room(reservations: &BTreeMap<WorkerId, Reservation>, d: &GpuUsage) -> DeviceRoom {
    let here: Vec<&Reservation> = reservations.values().filter(|r| r.uuids.contains(&d.uuid)).collect();
    let unused = here
        .iter()
        .fold(0u64, |s, r| s.saturating_add(r.bytes.map_or(0, |b| b.saturating_sub(r.used_on(&d.uuid)))));
    DeviceRoom {
        total: d.memory_total_bytes,
        free: d.memory_free_bytes.saturating_sub(unused),
        reserved: here.iter().fold(0u64, |s, r| s.saturating_add(r.bytes.unwrap_or(d.memory_total_bytes))),
        holders: here.len(),
        exclusive: here.iter().any(|r| r.bytes.is_none()),
        drained: d.drained.is_some(),
    }
}

#[cfg(test)]
#[path = "gpus_tests.rs"]
mod tests;
