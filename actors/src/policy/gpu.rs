//! GPU decisions: which of the machine's GPUs the pool uses ([`select`]), which of them are
//! drained ([`drain`]), and on which of them a starting worker is placed ([`place`]). All
//! are pure; the ledger (`crate::gpus`) carries them out.

use crate::config::GpuPlacement;
use crate::monitor::probe::GpuUsage;

/// Which GPUs the pool uses, as positions in `devices`: those `named` by `[pool]
/// gpu_devices`; when that is unset, those the server's own `CUDA_VISIBLE_DEVICES` names
/// (an empty value names none); when that is unset too, all. A name is an NVML index (a
/// GPU with MIG on brings its instances) or a UUID (of a GPU or a MIG instance). Only
/// placeable devices are kept. Also answers the names that matched nothing.
pub(crate) fn select(
    devices: &[GpuUsage],
    named: Option<&[String]>,
    cuda_visible: Option<&str>,
) -> (Vec<usize>, Vec<String>) {
    let names: Vec<String> = match (named, cuda_visible) {
        (Some(named), _) => named.iter().map(|n| n.trim().to_string()).collect(),
        (None, Some(env)) => {
            env.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect()
        }
        (None, None) => {
            let all = devices.iter().enumerate().filter(|(_, d)| d.placeable()).map(|(i, _)| i);
            return (all.collect(), Vec::new());
        }
    };
    let mut chosen = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        let matched: Vec<usize> = match name.parse::<u32>() {
            Ok(index) => devices
                .iter()
                .enumerate()
                .filter(|(_, d)| d.index == index && d.placeable())
                .map(|(i, _)| i)
                .collect(),
            Err(_) => devices
                .iter()
                .enumerate()
                .filter(|(_, d)| d.placeable() && (d.uuid == name || d.mig_parent.as_deref() == Some(&*name)))
                .map(|(i, _)| i)
                .collect(),
        };
        if matched.is_empty() {
            unknown.push(name);
        }
        for i in matched {
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
    }
    chosen.sort_unstable();
    (chosen, unknown)
}

/// What placement sees of one GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceRoom {
    /// All its memory.
    pub(crate) total: u64,
    /// Memory free, as last sampled, less what the reservations here may still take.
    pub(crate) free: u64,
    /// Memory reserved by workers placed here.
    pub(crate) reserved: u64,
    /// Workers placed here.
    pub(crate) holders: usize,
    /// Whether one of them holds it for itself.
    pub(crate) exclusive: bool,
    /// Whether it is drained (see [`drain`]): nothing is placed on it.
    pub(crate) drained: bool,
}

impl DeviceRoom {
    /// What a new worker may still reserve: neither past the reservations nor past what is
    /// free now (memory used by others counts, whoever they are).
    pub(crate) fn room(&self) -> u64 {
        self.total.saturating_sub(self.reserved).min(self.free)
    }
}

/// What one worker of a type needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GpuNeed {
    /// GPUs.
    pub(crate) count: usize,
    /// Memory reserved on each; `None`: each GPU for the worker alone.
    pub(crate) memory_bytes: Option<u64>,
}

/// Chooses `need.count` distinct GPUs for a worker, as positions in `devices`, or says why
/// none fit now. A GPU fits when nobody holds it for themselves and, for a worker with
/// `gpu_memory_mb`, its room covers that; for a worker that takes its GPUs for itself, when
/// no worker is placed there. Spread takes the most room first, pack the least room that
/// fits (so one GPU fills before the next); ties go to the lower position.
pub(crate) fn place(devices: &[DeviceRoom], need: GpuNeed, how: GpuPlacement) -> Result<Vec<usize>, String> {
    let fits = |d: &DeviceRoom| match need.memory_bytes {
        _ if d.exclusive || d.drained => false,
        Some(m) => d.room() >= m,
        None => d.holders == 0,
    };
    let mut candidates: Vec<usize> = (0..devices.len()).filter(|&i| fits(&devices[i])).collect();
    if candidates.len() < need.count {
        let what = match need.memory_bytes {
            Some(m) => format!("{} MiB free after reservations", m >> 20),
            None => "no other worker (gpu_memory_mb unset: whole GPUs)".to_string(),
        };
        return Err(format!(
            "waiting for GPU room: a worker needs {} GPU(s) with {what}; {} of {} GPU(s) fit now",
            need.count,
            candidates.len(),
            devices.len()
        ));
    }
    match how {
        GpuPlacement::Spread => candidates.sort_by_key(|&i| std::cmp::Reverse(devices[i].room())),
        GpuPlacement::Pack => candidates.sort_by_key(|&i| devices[i].room()),
    }
    candidates.truncate(need.count);
    Ok(candidates)
}

/// Marks the GPUs of a new sample that are drained, from the pool's GPUs as last seen
/// (`previous`) and those chosen now (`now`): a GPU that answered an error is drained for
/// it; a GPU seen before and missing now stays in the list, with its last figures, drained
/// as gone. A GPU read again without an error is no longer drained. Answers the list in
/// the order of `now`, the missing ones after it.
pub(crate) fn drain(previous: &[GpuUsage], now: Vec<GpuUsage>) -> Vec<GpuUsage> {
    let mut devices: Vec<GpuUsage> = now
        .into_iter()
        .map(|mut d| {
            d.drained = d.error.as_ref().map(|e| format!("NVML error: {e}"));
            d
        })
        .collect();
    let gone: Vec<GpuUsage> = previous
        .iter()
        .filter(|p| !devices.iter().any(|d| d.uuid == p.uuid))
        .map(|p| GpuUsage {
            drained: Some(p.drained.clone().unwrap_or_else(|| "gone from the GPU sample".to_string())),
            ..p.clone()
        })
        .collect();
    devices.extend(gone);
    devices
}

/// Whether a worker could ever fit on these GPUs (were every reservation gone): if not, the
/// type will wait for ever, which is worth saying. A drained GPU counts as one that may: it
/// may come back (and while it answers errors, its figures say nothing).
pub(crate) fn could_ever_fit(devices: &[DeviceRoom], need: GpuNeed) -> bool {
    let big_enough =
        devices.iter().filter(|d| d.drained || need.memory_bytes.is_none_or(|m| d.total >= m)).count();
    big_enough >= need.count
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn gpu(index: u32, uuid: &str) -> GpuUsage {
        GpuUsage { index, uuid: uuid.into(), ..GpuUsage::default() }
    }

    fn room(free_gib: u64) -> DeviceRoom {
        DeviceRoom {
            total: 80 * GIB,
            free: free_gib * GIB,
            reserved: 0,
            holders: 0,
            exclusive: false,
            drained: false,
        }
    }

    fn need(count: usize, gib: Option<u64>) -> GpuNeed {
        GpuNeed { count, memory_bytes: gib.map(|g| g * GIB) }
    }

    #[test]
    fn selection_by_config_then_environment_then_all() {
        let mut mig = gpu(1, "GPU-b");
        mig.mig_enabled = true;
        let instance = GpuUsage { mig_parent: Some("GPU-b".into()), ..gpu(1, "MIG-b1") };
        let devices = [gpu(0, "GPU-a"), mig, instance, gpu(2, "GPU-c")];
        // All placeable ones: the GPU with MIG on gives way to its instance.
        assert_eq!(select(&devices, None, None), (vec![0, 2, 3], vec![]));
        let named = ["2".to_string(), "MIG-b1".to_string(), "GPU-x".to_string()];
        assert_eq!(select(&devices, Some(&named), Some("0")), (vec![2, 3], vec!["GPU-x".to_string()]));
        // The environment counts only when the config names nothing.
        assert_eq!(select(&devices, None, Some("GPU-a, 1")), (vec![0, 2], vec![]));
        assert_eq!(select(&devices, None, Some("GPU-b")), (vec![2], vec![]));
        assert_eq!(select(&devices, None, Some("")), (vec![], vec![]));
        assert_eq!(select(&devices, None, Some("7")), (vec![], vec!["7".to_string()]));
    }

    #[test]
    fn spread_takes_the_most_room_and_pack_the_least_that_fits() {
        let devices = [room(40), room(70), room(10), room(70)];
        assert_eq!(place(&devices, need(1, Some(20)), GpuPlacement::Spread), Ok(vec![1]));
        assert_eq!(place(&devices, need(1, Some(20)), GpuPlacement::Pack), Ok(vec![0]));
        assert_eq!(place(&devices, need(1, Some(5)), GpuPlacement::Pack), Ok(vec![2]));
        assert_eq!(place(&devices, need(2, Some(20)), GpuPlacement::Spread), Ok(vec![1, 3]));
        assert_eq!(place(&devices, need(3, Some(20)), GpuPlacement::Pack), Ok(vec![0, 1, 3]));
    }

    #[test]
    fn reservations_count_even_when_the_memory_is_not_used_yet() {
        let reserved = DeviceRoom { reserved: 70 * GIB, holders: 1, ..room(80) };
        assert_eq!(reserved.room(), 10 * GIB);
        let devices = [reserved, room(30)];
        assert_eq!(place(&devices, need(1, Some(20)), GpuPlacement::Pack), Ok(vec![1]));
        assert_eq!(place(&devices, need(1, Some(5)), GpuPlacement::Pack), Ok(vec![0]));
        // Memory others use counts too.
        assert_eq!(DeviceRoom { reserved: 10 * GIB, ..room(20) }.room(), 20 * GIB);
    }

    #[test]
    fn exclusive_workers_take_empty_gpus_and_keep_others_away() {
        let taken = DeviceRoom { holders: 1, exclusive: true, ..room(80) };
        let shared = DeviceRoom { holders: 1, reserved: GIB, ..room(79) };
        let devices = [taken, shared, room(80)];
        assert_eq!(place(&devices, need(1, None), GpuPlacement::Spread), Ok(vec![2]));
        assert_eq!(place(&devices, need(1, Some(1)), GpuPlacement::Spread), Ok(vec![2]));
        assert_eq!(place(&devices, need(1, Some(1)), GpuPlacement::Pack), Ok(vec![1]));
        let err = place(&devices, need(2, None), GpuPlacement::Spread).unwrap_err();
        assert!(err.contains("needs 2 GPU(s)") && err.contains("1 of 3"), "{err}");
    }

    #[test]
    fn drained_gpus_get_nothing_and_come_back_when_read_again() {
        let devices = [DeviceRoom { drained: true, ..room(80) }, room(10)];
        assert_eq!(place(&devices, need(1, Some(5)), GpuPlacement::Spread), Ok(vec![1]));
        assert!(place(&devices, need(1, Some(20)), GpuPlacement::Spread).is_err());
        assert!(could_ever_fit(&devices, need(1, Some(20))), "a drained GPU may come back");

        let failing = GpuUsage { error: Some("GPU is lost".into()), ..gpu(1, "GPU-b") };
        let first = drain(&[], vec![gpu(0, "GPU-a"), failing]);
        assert_eq!(first[0].drained, None);
        assert_eq!(first[1].drained.as_deref(), Some("NVML error: GPU is lost"));
        // GPU-a vanishes: it stays, drained, with its last figures; GPU-b reads well again.
        let second = drain(&first, vec![gpu(1, "GPU-b")]);
        let marks: Vec<(&str, Option<&str>)> =
            second.iter().map(|d| (d.uuid.as_str(), d.drained.as_deref())).collect();
        assert_eq!(marks, [("GPU-b", None), ("GPU-a", Some("gone from the GPU sample"))]);
        // A GPU gone while failing keeps the reason it was drained for.
        let third = drain(&first, vec![gpu(0, "GPU-a")]);
        assert_eq!(third[1].drained.as_deref(), Some("NVML error: GPU is lost"));
        let back = drain(&second, vec![gpu(0, "GPU-a"), gpu(1, "GPU-b")]);
        assert!(back.iter().all(|d| d.drained.is_none()) && back.len() == 2);
    }

    #[test]
    fn nothing_fits_says_why_and_whether_it_ever_could() {
        let devices = [room(10), room(5)];
        let err = place(&devices, need(1, Some(20)), GpuPlacement::Spread).unwrap_err();
        assert!(err.contains("20480 MiB free") && err.contains("0 of 2"), "{err}");
        assert!(could_ever_fit(&devices, need(2, Some(80))));
        assert!(!could_ever_fit(&devices, need(1, Some(81))));
        assert!(!could_ever_fit(&devices, need(3, None)));
        assert_eq!(place(&[], need(1, None), GpuPlacement::Pack).map_err(|_| ()), Err(()));
    }
}
