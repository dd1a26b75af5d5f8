//! The memory limits of a worker: whether a sampled worker passed its type's resident
//! memory limit (`memory_limit_mb`) or GPU memory limit (`gpu_memory_mb`). The resource
//! monitor asks after each sample; the pool kills what this names.

use crate::resources::WorkerUsage;

/// Which memory a worker passed the limit of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemoryKind {
    /// Resident memory, against `memory_limit_mb`.
    Resident,
    /// GPU memory (over all its GPUs), against `gpu_memory_mb`.
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

/// A limit a worker passed: which, what it used and the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub(crate) kind: MemoryKind,
    pub(crate) used_bytes: u64,
    pub(crate) limit_mb: u64,
}

/// Which limit `w` passed, if any; resident memory first. Resident memory counts its peak
/// since the previous sample, so that a spike between samples counts; GPU memory is the
/// process's as sampled, over all its GPUs (`gpu_memory_mb` is per GPU: the limit is that
/// times its GPUs).
pub(crate) fn exceeded(w: &WorkerUsage, limits: &MemoryLimits) -> Option<Exceeded> {
    let peak = w.peak_memory_bytes.max(w.memory_bytes);
    if peak > limits.memory_mb.saturating_mul(1 << 20) {
        return Some(Exceeded { kind: MemoryKind::Resident, used_bytes: peak, limit_mb: limits.memory_mb });
    }
    let (per_gpu_mb, used) = (limits.gpu_memory_mb?, w.gpu_memory_bytes?);
    let limit_mb = per_gpu_mb.saturating_mul(w.gpus.len().max(1) as u64);
    (used > limit_mb.saturating_mul(1 << 20)).then_some(Exceeded {
        kind: MemoryKind::Gpu,
        used_bytes: used,
        limit_mb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(rss_mb: u64, gpu_mb: Option<u64>, gpus: usize) -> WorkerUsage {
        WorkerUsage {
            worker_id: "g-1".into(),
            task_type: "g".into(),
            pid: 1,
            cpu_percent: 0.0,
            memory_bytes: rss_mb << 20,
            peak_memory_bytes: rss_mb << 20,
            gpu_memory_bytes: gpu_mb.map(|mb| mb << 20),
            gpus: (0..gpus).map(|i| format!("GPU-{i}")).collect(),
        }
    }

    const LIMITS: MemoryLimits = MemoryLimits { memory_mb: 512, gpu_memory_mb: Some(1024) };

    #[test]
    fn each_limit_is_passed_only_above_it() {
        assert_eq!(exceeded(&worker(512, Some(1024), 1), &LIMITS), None);
        let over = exceeded(&worker(100, Some(1025), 1), &LIMITS).unwrap();
        assert_eq!((over.kind, over.used_bytes, over.limit_mb), (MemoryKind::Gpu, 1025 << 20, 1024));
        let over = exceeded(&worker(513, Some(4096), 1), &LIMITS).unwrap();
        assert_eq!((over.kind, over.limit_mb), (MemoryKind::Resident, 512));
    }

    #[test]
    fn the_gpu_limit_is_per_gpu_and_only_where_set_and_sampled() {
        assert_eq!(exceeded(&worker(100, Some(2000), 2), &LIMITS), None);
        assert_eq!(exceeded(&worker(100, Some(2049), 2), &LIMITS).map(|e| e.limit_mb), Some(2048));
        assert_eq!(exceeded(&worker(100, None, 1), &LIMITS), None);
        let unset = MemoryLimits { gpu_memory_mb: None, ..LIMITS };
        assert_eq!(exceeded(&worker(100, Some(1 << 20), 1), &unset), None);
    }
}
