//! The memory limits of a worker: whether a sampled worker passed its type's resident
//! memory limit (`memory_limit_mb`) or GPU memory limit (`gpu_memory_mb`). The resource
//! monitor asks after each sample; the pool kills what this names.

use crate::resources::WorkerUsage;

/// Which memory a worker passed the limit of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemoryKind {
    /// Resident memory, against `memory_limit_mb`.
    Resident,
    /// GPU memory on one of its GPUs, against `gpu_memory_mb`.
    Gpu,
}

/// The limits of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemoryLimits {
    /// `memory_limit_mb`.
    pub(crate) memory_mb: u64,
    /// `gpu_memory_mb` of a type whose workers are placed on GPUs; `None`: not enforced.
    pub(crate) gpu_memory_mb: Option<u64>,
}

/// A limit a worker passed: which, what it used, the limit, and for GPU memory the GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub(crate) kind: MemoryKind,
    pub(crate) used_bytes: u64,
    pub(crate) limit_mb: u64,
    /// The UUID of the GPU where it passed `gpu_memory_mb`.
    pub(crate) gpu: Option<String>,
}

/// Which limit `w` passed, if any; resident memory first. Resident memory counts its peak
/// since the previous sample, so that a spike between samples counts. GPU memory is the
/// process's on each GPU as sampled (NVML reports it per device), and `gpu_memory_mb` holds
/// on each: a worker on several GPUs passes it when it uses more on any one of them, even
/// if its total is under the limit times its GPUs; the GPU where it uses the most is named.
pub(crate) fn exceeded(w: &WorkerUsage, limits: &MemoryLimits) -> Option<Exceeded> {
    let peak = w.peak_memory_bytes.max(w.memory_bytes);
    if peak > limits.memory_mb.saturating_mul(1 << 20) {
        return Some(Exceeded {
            kind: MemoryKind::Resident,
            used_bytes: peak,
            limit_mb: limits.memory_mb,
            gpu: None,
        });
    }
    let limit_mb = limits.gpu_memory_mb?;
    let (gpu, &used) = w.gpu_memory_per_gpu.iter().max_by_key(|&(_, &b)| b)?;
    (used > limit_mb.saturating_mul(1 << 20)).then(|| Exceeded {
        kind: MemoryKind::Gpu,
        used_bytes: used,
        limit_mb,
        gpu: Some(gpu.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker placed on `gpus` GPUs, using `gpu_mb` on the first of them.
    fn worker(rss_mb: u64, gpu_mb: Option<u64>, gpus: usize) -> WorkerUsage {
        let per_gpu = gpu_mb.map(|mb| vec![mb]).unwrap_or_default();
        on_gpus(rss_mb, &per_gpu, gpus)
    }

    /// A worker placed on `gpus` GPUs, using `per_gpu_mb[i]` on GPU `i`.
    fn on_gpus(rss_mb: u64, per_gpu_mb: &[u64], gpus: usize) -> WorkerUsage {
        let per_gpu: std::collections::BTreeMap<String, u64> =
            per_gpu_mb.iter().enumerate().map(|(i, &mb)| (format!("GPU-{i}"), mb << 20)).collect();
        WorkerUsage {
            worker_id: "g-1".into(),
            task_type: "g".into(),
            pid: 1,
            cpu_percent: 0.0,
            memory_bytes: rss_mb << 20,
            peak_memory_bytes: rss_mb << 20,
            gpu_memory_bytes: (!per_gpu.is_empty()).then(|| per_gpu.values().sum()),
            gpu_memory_per_gpu: per_gpu,
            gpus: (0..gpus).map(|i| format!("GPU-{i}")).collect(),
        }
    }

    const LIMITS: MemoryLimits = MemoryLimits { memory_mb: 512, gpu_memory_mb: Some(1024) };

    #[test]
    fn each_limit_is_passed_only_above_it() {
        assert_eq!(exceeded(&worker(512, Some(1024), 1), &LIMITS), None);
        let over = exceeded(&worker(100, Some(1025), 1), &LIMITS).unwrap();
        assert_eq!((over.kind, over.used_bytes, over.limit_mb), (MemoryKind::Gpu, 1025 << 20, 1024));
        assert_eq!(over.gpu.as_deref(), Some("GPU-0"));
        let over = exceeded(&worker(513, Some(4096), 1), &LIMITS).unwrap();
        assert_eq!((over.kind, over.limit_mb), (MemoryKind::Resident, 512));
    }

    #[test]
    fn the_gpu_limit_holds_on_each_gpu_and_only_where_set_and_sampled() {
        assert_eq!(exceeded(&on_gpus(100, &[1024, 1024], 2), &LIMITS), None);
        // 1500 MiB on one GPU of two is over 1024 there, though the total is under 2 × 1024.
        let over = exceeded(&on_gpus(100, &[1500, 100], 2), &LIMITS).unwrap();
        assert_eq!((over.used_bytes, over.limit_mb), (1500 << 20, 1024));
        assert_eq!(over.gpu.as_deref(), Some("GPU-0"));
        let over = exceeded(&on_gpus(100, &[10, 1025], 2), &LIMITS).unwrap();
        assert_eq!(over.gpu.as_deref(), Some("GPU-1"));
        assert_eq!(exceeded(&worker(100, None, 1), &LIMITS), None);
        let unset = MemoryLimits { gpu_memory_mb: None, ..LIMITS };
        assert_eq!(exceeded(&worker(100, Some(1 << 20), 1), &unset), None);
    }
}
