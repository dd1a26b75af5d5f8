//! Servers whose types run `tests/fixtures/misbehaving_worker.py`, one mode each, and what
//! the hardening tests read of them: the server's peak memory, its log, processes by pid.
#![allow(dead_code)]

use std::time::Duration;

use super::server::{Server, get, wait_for};

/// The fixture worker.
pub const WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/misbehaving_worker.py");

/// One type table: `[types.NAME]` running the fixture in `mode`, with extra `key = value`
/// lines that add to or replace the defaults here.
pub fn type_table(name: &str, mode: &str, extra: &str) -> String {
    let defaults = [
        ("max_concurrent", "1"),
        ("max_retries", "0"),
        ("queue_size", "50"),
        ("timeout_ms", "30000"),
        ("cpu_threshold", "100"),
    ];
    let mut keys: Vec<(String, String)> =
        defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once('=').expect("key = value");
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match keys.iter_mut().find(|(key, _)| *key == k) {
            Some(entry) => entry.1 = v,
            None => keys.push((k, v)),
        }
    }
    let mut table = format!("[types.{name}]\ncommand = [\"python3\", \"{WORKER}\", \"{mode}\"]\n");
    for (k, v) in keys {
        table.push_str(&format!("{k} = {v}\n"));
    }
    table
}

/// A whole configuration: small intervals, a short grace period, and the given types.
pub fn config(grace_ms: u64, types: &[String]) -> String {
    format!(
        "[pool]\nmax_workers = 8\nmin_workers = 0\nhealth_check_interval_ms = 500\n\
         resource_monitor_interval_ms = 500\ngraceful_shutdown_timeout_ms = {grace_ms}\n\n{}",
        types.concat()
    )
}

/// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`), if the process is there.
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb << 10)
}

/// Whether a process exists (a zombie counts as gone).
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Reads the pid a fixture wrote to `path`, waiting for it (at most 10 s).
pub fn read_pid(path: &std::path::Path) -> u32 {
    let mut pid = None;
    wait_for(Duration::from_secs(10), || {
        pid = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap_or_else(|| panic!("no pid in {}", path.display()))
}

/// A path for a pid file, unique to this test process.
pub fn pid_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("wp-{}-{name}.pid", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Kills a process the test caused to exist, if it is still there (so that a failed
/// assertion leaves nothing behind).
pub struct Reap(pub u32);

impl Drop for Reap {
    fn drop(&mut self) {
        // Only the fixture's `sleep`: the pid may have gone and been reused since.
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if running(self.0) && cmdline.starts_with(b"sleep\0") {
            let _ = std::process::Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
}

/// Lines of the server's log that contain `needle`.
pub fn log_lines(server: &Server, needle: &str) -> Vec<String> {
    server.log().into_iter().filter(|l| l.contains(needle)).collect()
}

/// The `by_type` entry of `/api/workers/stats` for `name`.
pub fn type_stats(server: &Server, name: &str) -> serde_json::Value {
    get(&server.url("/api/workers/stats")).body["by_type"][name].clone()
}
