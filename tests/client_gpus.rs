//! `workerpool status` against a real server on simulated GPUs: its GPU table lists each
//! device with its memory and the workers placed on it, and says the devices are simulated.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::server::*;

const CONFIG: &str = "[pool]\nmax_workers = 2\nmin_workers = 0\nresource_monitor_interval_ms = 100\n\
graceful_shutdown_timeout_ms = 2000\n\n[types.render]\ngpu_required = true\ngpu_memory_mb = 256\n\
max_concurrent = 1\n";

/// `workerpool status --server URL`: its exit code and stdout.
fn status(server: &Server) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_workerpool"))
        .args(["status", "--server", &server.base])
        .env_remove("WORKERPOOL_URL")
        .env_remove("WORKERPOOL_API_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run workerpool status");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn status_shows_a_gpu_table_with_the_workers_placed_on_each() {
    let server = Server::start(CONFIG, &[("WORKERPOOL_SIMULATED_GPUS", "2x1024")]);
    let ran = execute(&server, json!({"type": "render", "data": {"op": "echo"}}));
    assert_eq!(ran.status, 200, "{ran:?}");
    // The worker stays, idle, on its GPU; a sample after its start lists it there, with its
    // reservation (a sample may list the worker before the GPUs' figures count it).
    let mut last = String::new();
    let shown = wait_for(Duration::from_secs(20), || {
        let (code, out) = status(&server);
        last = out;
        let placed = |l: &str| l.starts_with("GPU-sim-0") && l.ends_with("render-1") && l.contains(" 256.0 ");
        code == Some(0) && last.lines().any(placed)
    });
    assert!(shown, "no GPU row with its worker in\n{last}");
    assert!(last.contains("gpus: 2 (simulated: they do not exist)"), "{last}");
    assert!(last.contains("USED MiB  RESERVED MiB  TOTAL MiB  UTIL%  WORKERS"), "{last}");
    let row = last.lines().find(|l| l.starts_with("GPU-sim-0")).unwrap_or_default();
    assert!(row.contains("Simulated GPU (simulated)"), "{row}");
    let cells: Vec<&str> = row.split_whitespace().rev().take(6).collect();
    // Workers, utilisation, total, reserved and used memory, state.
    assert_eq!(cells, ["render-1", "0", "1024.0", "256.0", "0.0", "ok"], "{row}");
    assert!(last.lines().any(|l| l.starts_with("GPU-sim-1") && l.ends_with('-')), "{last}");
}
