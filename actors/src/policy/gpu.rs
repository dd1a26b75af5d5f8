//! GPU decisions: which of the machine's GPUs the pool uses ([`select`]), which of them are
//! drained ([`drain`]), and on which of them a starting worker is placed ([`place`]). All
//! are pure; the ledger (`crate::gpus`) carries them out.

use crate::config::GpuPlacement;
use crate::monitor::probe::GpuUsage;

/// Which GPUs the pool uses, as positions in `devices`: those `named` by `[pool]
/// gpu_devices`; when that is unset, those the server's own `CUDA_VISIBLE_DEVICES` names
/// (an empty value names none); when that is unset too, all. A name is an NVML index (a
/// GPU with MIG on brings its instances) or a UUID (of a GPU or a MIG instance), whole or
/// a prefix of one UUID only, as CUDA takes them (`GPU-8932f937`). Only placeable devices
/// are kept. Also answers the names that chose nothing: unknown, or a prefix of several.
pub(crate) fn select(
    devices: &[GpuUsage],
    named: Option<&[String]>,
    cuda_visible: Option<&str>,
) -> (Vec<usize>, Vec<BadName>) {
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
    let mut bad = Vec::new();
    for name in names {
        let matched: Vec<usize> = match name.parse::<u32>() {
            Ok(index) => devices
                .iter()
                .enumerate()
                .filter(|(_, d)| d.index == index && d.placeable())
                .map(|(i, _)| i)
                .collect(),
            Err(_) => match uuid_named(devices, &name) {
                Ok(uuid) => devices
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| {
                        d.placeable() && (d.uuid == uuid || d.mig_parent.as_deref() == Some(uuid))
                    })
                    .map(|(i, _)| i)
                    .collect(),
                Err(problem) => {
                    bad.push(problem);
                    continue;
                }
            },
        };
        if matched.is_empty() {
            bad.push(BadName::Unknown(name));
        }
        for i in matched {
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
    }
    chosen.sort_unstable();
    (chosen, bad)
}

/// The one UUID (of a GPU or a MIG instance) that `name` is, or is the prefix of: a UUID
/// equal to it wins over longer ones it begins (`GPU-sim-1` is not `GPU-sim-10`).
fn uuid_named<'d>(devices: &'d [GpuUsage], name: &str) -> Result<&'d str, BadName> {
    if let Some(d) = devices.iter().find(|d| d.uuid == name) {
        return Ok(&d.uuid);
    }
    let mut starting: Vec<&str> =
        devices.iter().map(|d| d.uuid.as_str()).filter(|u| u.starts_with(name)).collect();
    starting.sort_unstable();
    starting.dedup();
    match starting.as_slice() {
        [] => Err(BadName::Unknown(name.to_string())),
        [one] => Ok(one),
        many => Err(BadName::Ambiguous(name.to_string(), many.iter().map(|u| u.to_string()).collect())),
    }
}

/// A name of `gpu_devices` or `CUDA_VISIBLE_DEVICES` that chose no GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BadName {
    /// It matches no GPU.
    Unknown(String),
    /// It is the prefix of the UUIDs of several GPUs (these): CUDA too refuses it.
    Ambiguous(String, Vec<String>),
}

impl std::fmt::Display for BadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadName::Unknown(name) => write!(f, "{name:?} (no such GPU)"),
            BadName::Ambiguous(name, uuids) => {
                write!(f, "{name:?} (a prefix of several GPUs' UUIDs: {}; name one)", uuids.join(", "))
            }
        }
    }
}

/// What to warn of at start when the server's `CUDA_VISIBLE_DEVICES` names GPUs by index:
/// those are CUDA's indexes, which follow NVML's (the PCI bus order, which the pool
/// selects by) only with `CUDA_DEVICE_ORDER=PCI_BUS_ID`; CUDA's default order puts the
/// fastest GPU first. Nothing when `gpu_devices` is set (it names NVML indexes), when the
/// variable names UUIDs only, or when the order is the bus's.
pub(crate) fn index_order_warning(
    named: Option<&[String]>,
    cuda_visible: Option<&str>,
    device_order: Option<&str>,
) -> Option<String> {
    let env = cuda_visible.filter(|_| named.is_none())?;
    let by_index = env.split(',').map(str::trim).any(|n| n.parse::<u32>().is_ok());
    if !by_index || device_order.is_some_and(|o| o.trim() == "PCI_BUS_ID") {
        return None;
    }
    Some(format!(
        "CUDA_VISIBLE_DEVICES={env:?} names GPUs by index, but CUDA_DEVICE_ORDER is not PCI_BUS_ID: \
         the pool reads the indexes in NVML's (PCI bus) order, CUDA in its own (fastest first), so \
         they may name different GPUs; set CUDA_DEVICE_ORDER=PCI_BUS_ID or name the GPUs by UUID"
    ))
}

/// The GPU variables of a worker's environment: a worker placed on `uuids` sees those
/// (`CUDA_VISIBLE_DEVICES` and `NVIDIA_VISIBLE_DEVICES`, comma-joined); a worker placed on
/// none, while the pool places workers on GPUs (`places_gpus`), sees none
/// (`CUDA_VISIBLE_DEVICES=""`, `NVIDIA_VISIBLE_DEVICES=void`), so that it cannot allocate on
/// a GPU reserved for another worker through the server's own variables. Nothing when the
/// pool places nothing: the worker then inherits the server's.
pub(crate) fn visible_devices(uuids: &[String], places_gpus: bool) -> Vec<(String, String)> {
    let (cuda, nvidia) = match uuids {
        [] if !places_gpus => return Vec::new(),
        [] => (String::new(), "void".to_string()),
        _ => (uuids.join(","), uuids.join(",")),
    };
    vec![("CUDA_VISIBLE_DEVICES".to_string(), cuda), ("NVIDIA_VISIBLE_DEVICES".to_string(), nvidia)]
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

/// The most workers needing `need` that `devices` could ever hold at once (at most `limit`,
/// the most that are asked about): with every GPU empty, a GPU takes one worker that needs it
/// whole, or as many as its memory holds of `need.memory_bytes`, and each worker takes
/// `need.count` different GPUs. A drained GPU counts, as it may come back.
pub(crate) fn most_at_once(devices: &[DeviceRoom], need: GpuNeed, limit: usize) -> usize {
    if need.count == 0 {
        return limit;
    }
    let places: Vec<usize> = devices
        .iter()
        .map(|d| match need.memory_bytes {
            None => 1,
            Some(bytes) => usize::try_from(d.total / bytes.max(1)).unwrap_or(usize::MAX),
        })
        .collect();
    // `w` workers fit when the GPUs give them `count` places each, no GPU giving one worker
    // two of its places.
    let fits = |w: usize| places.iter().fold(0usize, |n, p| n.saturating_add((*p).min(w))) >= need.count * w;
    let mut w = (places.iter().fold(0usize, |n, p| n.saturating_add(*p)) / need.count).min(limit);
    while w > 0 && !fits(w) {
        w -= 1;
    }
    w
}

#[cfg(test)]
#[path = "gpu_tests.rs"]
mod tests;
