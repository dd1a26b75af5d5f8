//! Simulated device memory: what a worker holds, written where the pool reads it.
//!
//! A pool whose devices are simulated sets `WORKERPOOL_SIMULATED_GPU_DIR=<dir>`. Each worker
//! process then keeps one usage file, `<dir>/<pid>`, with one line per device it holds memory
//! on, `<uuid> <bytes>`, sorted by device. The file is always replaced whole (written to
//! `<dir>/.<pid>.tmp`, then renamed over it), so a reader sees either the old usage or the new,
//! never half a line. When the process holds nothing any more the file is removed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The bytes held per device, per usage file.
type Held = BTreeMap<PathBuf, BTreeMap<String, u64>>;

/// The simulated allocations of this process and the usage files that record them.
#[derive(Debug)]
pub(super) struct UsageFiles {
    held: Mutex<Held>,
}

/// One simulated allocation, recorded until it is released (or dropped).
#[derive(Debug)]
#[must_use = "the allocation is released when dropped"]
pub(super) struct Hold<'a> {
    files: &'a UsageFiles,
    dir: PathBuf,
    pid: u32,
    device: String,
    bytes: u64,
    released: bool,
}

/// The usage file of process `pid` in `dir`.
pub(super) fn usage_file(dir: &Path, pid: u32) -> PathBuf {
    dir.join(pid.to_string())
}

// ===== impl UsageFiles =====

impl UsageFiles {
    /// No allocations yet.
    pub(super) const fn new() -> Self {
        Self { held: Mutex::new(BTreeMap::new()) }
    }

    /// Records `bytes` more on `device` for process `pid` in `dir`, until the hold is released.
    ///
    /// A device name with whitespace in it (or an empty one) would break the line format, so it
    /// is refused. When the file cannot be written, nothing is recorded.
    pub(super) fn hold(&self, dir: &Path, pid: u32, device: &str, bytes: u64) -> io::Result<Hold<'_>> {
        if device.is_empty() || device.contains(char::is_whitespace) {
            let message = format!("device name {device:?} is empty or has whitespace in it");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let file = usage_file(dir, pid);
        let devices = held.entry(file.clone()).or_default();
        let total = devices.entry(device.to_owned()).or_insert(0);
        *total = total.saturating_add(bytes);
        if let Err(error) = write_usage(dir, pid, devices) {
            release_in(&mut held, &file, device, bytes);
            return Err(error);
        }
        Ok(Hold { files: self, dir: dir.to_owned(), pid, device: device.to_owned(), bytes, released: false })
    }

    /// Takes `bytes` off `device` and rewrites (or removes) the usage file.
    fn release(&self, dir: &Path, pid: u32, device: &str, bytes: u64) -> io::Result<()> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let file = usage_file(dir, pid);
        match release_in(&mut held, &file, device, bytes) {
            Some(devices) => write_usage(dir, pid, devices),
            None => match fs::remove_file(&file) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
        }
    }
}

/// Takes `bytes` off `device` in `file`'s entry; answers what the file still holds, or `None`
/// (and forgets the file) when that is nothing.
fn release_in<'h>(
    held: &'h mut Held,
    file: &Path,
    device: &str,
    bytes: u64,
) -> Option<&'h BTreeMap<String, u64>> {
    let devices = held.get_mut(file)?;
    if let Some(total) = devices.get_mut(device) {
        *total = total.saturating_sub(bytes);
        if *total == 0 {
            devices.remove(device);
        }
    }
    if devices.is_empty() {
        held.remove(file);
        return None;
    }
    held.get(file)
}

/// Replaces `<dir>/<pid>` with the lines of `devices`, through `<dir>/.<pid>.tmp`.
fn write_usage(dir: &Path, pid: u32, devices: &BTreeMap<String, u64>) -> io::Result<()> {
    let mut text = String::new();
    for (device, bytes) in devices {
        // Writing to a `String` cannot fail.
        let _ = writeln!(text, "{device} {bytes}");
    }
    let temporary = dir.join(format!(".{pid}.tmp"));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, usage_file(dir, pid)).inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })
}

// ===== impl Hold =====

impl Hold<'_> {
    /// Ends the allocation, reporting a failure to update the usage file.
    pub(super) fn release(mut self) -> io::Result<()> {
        self.released = true;
        self.files.release(&self.dir, self.pid, &self.device, self.bytes)
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if !self.released {
            // Dropped without `release` (an early return): the record must still go, and there
            // is no one left to tell when that fails.
            let _ = self.files.release(&self.dir, self.pid, &self.device, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A fresh, empty directory for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("wp-gpu-usage-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create the scratch directory");
            Self(dir)
        }

        /// The usage file of `pid`, or `None` when there is none.
        fn usage(&self, pid: u32) -> Option<String> {
            fs::read_to_string(usage_file(&self.0, pid)).ok()
        }

        /// The names of the entries in the directory.
        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .expect("read the scratch directory")
                .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_hold_writes_the_file_and_its_release_removes_it() {
        let scratch = Scratch::new();
        let files = UsageFiles::new();
        let hold = files.hold(&scratch.0, 7, "GPU-a", 1 << 20).expect("hold");
        assert_eq!(scratch.usage(7).as_deref(), Some("GPU-a 1048576\n"));
        assert_eq!(scratch.entries(), ["7"], "no temporary file is left behind");
        hold.release().expect("release");
        assert_eq!(scratch.usage(7), None);
        assert_eq!(scratch.entries(), Vec::<String>::new());
    }

    #[test]
    fn overlapping_holds_add_up_and_come_off_one_by_one() {
        let scratch = Scratch::new();
        let files = UsageFiles::new();
        let first = files.hold(&scratch.0, 7, "GPU-b", 300).expect("hold");
        let second = files.hold(&scratch.0, 7, "GPU-b", 200).expect("hold");
        let other = files.hold(&scratch.0, 7, "GPU-a", 5).expect("hold");
        assert_eq!(scratch.usage(7).as_deref(), Some("GPU-a 5\nGPU-b 500\n"));
        first.release().expect("release");
        assert_eq!(scratch.usage(7).as_deref(), Some("GPU-a 5\nGPU-b 200\n"));
        drop(other);
        assert_eq!(scratch.usage(7).as_deref(), Some("GPU-b 200\n"), "a drop releases too");
        second.release().expect("release");
        assert_eq!(scratch.usage(7), None);
    }

    #[test]
    fn holds_one_after_another_start_from_nothing() {
        let scratch = Scratch::new();
        let files = UsageFiles::new();
        for bytes in [10, 20, 30] {
            let hold = files.hold(&scratch.0, 9, "GPU-c", bytes).expect("hold");
            assert_eq!(scratch.usage(9), Some(format!("GPU-c {bytes}\n")));
            hold.release().expect("release");
            assert_eq!(scratch.usage(9), None);
        }
    }

    #[test]
    fn the_file_is_replaced_through_a_rename() {
        let scratch = Scratch::new();
        // A stale temporary file (from a process killed mid-write) is simply written over, and
        // a reader that opened the old file keeps reading the old, whole content.
        fs::write(scratch.0.join(".7.tmp"), "GPU-stale 1\nGPU-st").expect("write");
        let files = UsageFiles::new();
        let first = files.hold(&scratch.0, 7, "GPU-a", 1).expect("hold");
        let mut reader = fs::File::open(usage_file(&scratch.0, 7)).expect("open");
        let second = files.hold(&scratch.0, 7, "GPU-a", 2).expect("hold");
        let mut seen = String::new();
        io::Read::read_to_string(&mut reader, &mut seen).expect("read");
        assert_eq!(seen, "GPU-a 1\n", "the old file was renamed over, not rewritten in place");
        assert_eq!(scratch.usage(7).as_deref(), Some("GPU-a 3\n"));
        assert_eq!(scratch.entries(), ["7"]);
        drop((first, second));
    }

    #[test]
    fn processes_keep_separate_files() {
        let scratch = Scratch::new();
        let files = UsageFiles::new();
        let a = files.hold(&scratch.0, 1, "GPU-a", 1).expect("hold");
        let b = files.hold(&scratch.0, 2, "GPU-a", 2).expect("hold");
        assert_eq!(scratch.entries(), ["1", "2"]);
        drop(a);
        assert_eq!(scratch.usage(2).as_deref(), Some("GPU-a 2\n"));
        drop(b);
    }

    #[test]
    fn a_failed_write_records_nothing() {
        let scratch = Scratch::new();
        let files = UsageFiles::new();
        let missing = scratch.0.join("missing");
        assert!(files.hold(&missing, 7, "GPU-a", 1).is_err());
        assert!(files.hold(&scratch.0, 7, "GPU a", 1).is_err(), "whitespace in the name");
        assert!(files.hold(&scratch.0, 7, "", 1).is_err(), "an empty name");
        let hold = files.hold(&scratch.0, 7, "GPU-a", 4).expect("hold");
        assert_eq!(scratch.usage(7).as_deref(), Some("GPU-a 4\n"), "the failed holds left no bytes");
        hold.release().expect("release");
    }
}
