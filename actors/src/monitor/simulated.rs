//! [`SimulatedGpus`]: GPUs that do not exist, so that placement and reservations run on a
//! machine without one (`simulated_gpus`, `WORKERPOOL_SIMULATED_GPUS`).
//!
//! A process's use of a simulated GPU is what it says it holds. The pool makes one directory
//! per tree and gives its path to every worker placed on simulated GPUs as
//! `WORKERPOOL_SIMULATED_GPU_DIR`. A process that holds memory writes `<dir>/<pid>`
//! atomically (as `<dir>/.<pid>.tmp`, then renamed), one line per GPU, `<uuid> <bytes>`, and
//! removes it when it holds nothing. Each sample reads the directory: each line is what that
//! process holds on that GPU, and the per-GPU sums are the GPUs' used memory. Files of processes that are
//! gone are removed and not counted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::probe::{GpuSample, GpuSource, GpuUsage};
use crate::config::SimulatedGpu;

/// The environment variable that tells a worker where to report what it holds.
pub const SIMULATED_GPU_DIR_VAR: &str = "WORKERPOOL_SIMULATED_GPU_DIR";

/// A [`GpuSource`] of simulated GPUs, `GPU-sim-0`, `GPU-sim-1`, …, whose use is read from
/// the files of a directory it owns (removed when it is dropped).
///
/// # Examples
/// ```
/// use workerpool_actors::{GpuSource, SimulatedGpu, SimulatedGpus};
///
/// let mut gpus = SimulatedGpus::create(&SimulatedGpu::parse_list("2x1024").unwrap()).unwrap();
/// // This process says it holds 100 MiB on the second GPU.
/// let me = std::process::id();
/// std::fs::write(gpus.dir().join(me.to_string()), format!("GPU-sim-1 {}\n", 100 << 20)).unwrap();
/// let sample = gpus.sample();
/// assert!(sample.available && sample.simulated);
/// assert_eq!(sample.devices[1].uuid, "GPU-sim-1");
/// assert_eq!(sample.devices[1].memory_used_bytes, 100 << 20);
/// assert_eq!(sample.process_memory[&me]["GPU-sim-1"], 100 << 20);
/// assert_eq!(sample.process_total(me), Some(100 << 20));
/// ```
#[derive(Debug)]
pub struct SimulatedGpus {
    gpus: Vec<SimulatedGpu>,
    dir: PathBuf,
}

impl SimulatedGpus {
    /// Simulates `gpus`, with a fresh directory under the system's temporary directory.
    pub fn create(gpus: &[SimulatedGpu]) -> std::io::Result<SimulatedGpus> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("workerpool-gpus-{}-{}", std::process::id(), &tag[..8]));
        std::fs::create_dir_all(&dir)?;
        let names: Vec<String> = gpus
            .iter()
            .enumerate()
            .map(|(i, g)| format!("GPU-sim-{i} {} ({} MB)", g.name, g.memory_mb))
            .collect();
        log::info!(
            "GPUs are SIMULATED (they do not exist): {}; usage is read from {}",
            names.join(", "),
            dir.display()
        );
        Ok(SimulatedGpus { gpus: gpus.to_vec(), dir })
    }

    /// The directory workers report to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SimulatedGpus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl GpuSource for SimulatedGpus {
    fn sample(&mut self) -> GpuSample {
        let uuids: Vec<String> = (0..self.gpus.len()).map(|i| format!("GPU-sim-{i}")).collect();
        let (per_gpu, process_memory) = read_holdings(&self.dir, &uuids);
        let devices = self
            .gpus
            .iter()
            .zip(uuids)
            .enumerate()
            .map(|(i, (g, uuid))| {
                let total = g.memory_mb.saturating_mul(1 << 20);
                let used = per_gpu.get(&uuid).copied().unwrap_or(0).min(total);
                GpuUsage {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    uuid,
                    name: format!("{} (simulated)", g.name),
                    memory_used_bytes: used,
                    memory_free_bytes: total - used,
                    memory_total_bytes: total,
                    ..GpuUsage::default()
                }
            })
            .collect::<Vec<_>>();
        let available = !devices.is_empty();
        GpuSample {
            available,
            reason: (!available).then(|| "no simulated GPU is configured".to_string()),
            simulated: true,
            devices,
            process_memory,
        }
    }
}

/// Reads what each live process says it holds: per GPU UUID, and per pid and GPU UUID. Lines
/// that do not read as `<uuid> <bytes>` and UUIDs that are not `known` are skipped.
fn read_holdings(
    dir: &Path,
    known: &[String],
) -> (HashMap<String, u64>, HashMap<u32, BTreeMap<String, u64>>) {
    let (mut per_gpu, mut per_pid) = (HashMap::new(), HashMap::new());
    let Ok(entries) = std::fs::read_dir(dir) else { return (per_gpu, per_pid) };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if !alive(pid) {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        // A worker writes these files: only a plain file is read (never a link, a pipe or a
        // device), and only its first bytes.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Some(text) = read_capped(&entry.path()) else { continue };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(uuid), Some(bytes), None) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            let Ok(bytes) = bytes.parse::<u64>() else { continue };
            if !known.iter().any(|k| k == uuid) {
                continue;
            }
            let g: &mut u64 = per_gpu.entry(uuid.to_string()).or_default();
            *g = g.saturating_add(bytes);
            let p: &mut u64 = per_pid.entry(pid).or_default().entry(uuid.to_string()).or_default();
            *p = p.saturating_add(bytes);
        }
    }
    (per_gpu, per_pid)
}

/// The most of a usage file that is read: far more than any number of GPUs needs.
const MAX_USAGE_FILE: u64 = 64 << 10;

/// A usage file's text, up to [`MAX_USAGE_FILE`] bytes; `None` when it cannot be read.
fn read_capped(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(MAX_USAGE_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Whether process `pid` exists (a signal-0 probe; a process of another user exists too).
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    use nix::errno::Errno;
    let Ok(raw) = i32::try_from(pid) else { return false };
    !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

#[cfg(not(unix))]
fn alive(_: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_of_live_processes_are_summed_and_dead_ones_dropped() {
        let mut gpus = SimulatedGpus::create(&SimulatedGpu::parse_list("2x1000").unwrap()).unwrap();
        let me = std::process::id();
        let dir = gpus.dir().to_path_buf();
        std::fs::write(
            dir.join(me.to_string()),
            "GPU-sim-0 10\nGPU-sim-1 5\nGPU-sim-9 7\nbad line here\nGPU-sim-0 3\n",
        )
        .unwrap();
        // A pid that cannot exist (above the kernel's pid limit).
        let dead = dir.join("4294967");
        std::fs::write(&dead, "GPU-sim-0 1000\n").unwrap();
        std::fs::write(dir.join(format!(".{me}.tmp")), "GPU-sim-0 99\n").unwrap();
        let s = gpus.sample();
        assert_eq!(s.devices[0].memory_used_bytes, 13);
        assert_eq!(s.devices[1].memory_used_bytes, 5);
        assert_eq!(s.devices[0].memory_free_bytes, (1000 << 20) - 13);
        // Per GPU, lines of one GPU adding up; and over all of them.
        let mine: Vec<(&str, u64)> = s.process_memory[&me].iter().map(|(g, &b)| (g.as_str(), b)).collect();
        assert_eq!(mine, [("GPU-sim-0", 13), ("GPU-sim-1", 5)]);
        assert_eq!(s.process_total(me), Some(18));
        assert!(!dead.exists());
        drop(gpus);
        assert!(!dir.exists());
    }

    #[cfg(unix)]
    #[test]
    fn only_plain_files_are_read_and_only_their_first_bytes() {
        let mut gpus = SimulatedGpus::create(&SimulatedGpu::parse_list("1x1000").unwrap()).unwrap();
        let dir = gpus.dir().to_path_buf();
        // Live pids (this process's parent and init) whose files are a link and a huge file.
        let parent = std::os::unix::process::parent_id();
        std::os::unix::fs::symlink("/dev/zero", dir.join(parent.to_string())).unwrap();
        let mut big = "GPU-sim-0 7\n".to_string();
        big.push_str(&"x".repeat(MAX_USAGE_FILE as usize));
        big.push_str("\nGPU-sim-0 1000\n");
        std::fs::write(dir.join("1"), big).unwrap();
        // Returns at once: the link to an endless device is not followed.
        let s = gpus.sample();
        assert_eq!(s.devices[0].memory_used_bytes, 7, "{s:?}");
        assert_eq!((s.process_total(1), s.process_total(parent)), (Some(7), None));
    }
}
