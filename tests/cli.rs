//! The `workerpool` binary: configuration errors, signals.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::bounded::{exit_within, lines_of, run_bounded};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_workerpool"));
    cmd.env("RUST_LOG", "info")
        .env_remove("MAX_WORKERS")
        .env_remove("WORKER_POOL_SIZE")
        .env_remove("WORKERPOOL_BIND");
    cmd
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bad_config_file_exits_2_naming_file_and_key() {
    let path = temp_file("bad.toml", "[types.text_processing]\nmax_concurrent = -3\n");
    let out = bin().args(["serve", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&*path.to_string_lossy()), "{err}");
    assert!(err.contains("max_concurrent"), "{err}");

    let path = temp_file("zero.toml", "[types.text_processing]\nmax_concurrent = 0\n");
    let out = bin().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("types.text_processing.max_concurrent: expected at least 1"), "{err}");

    let out = bin().args(["--config", "/nonexistent/x.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));

    let out = bin().args(["serve", "--redis", "http://127.0.0.1:6379/"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis.url: expected a redis:// or rediss:// URL"), "{err}");

    let path = temp_file("lease.toml", "[redis]\nlease_ms = 100\nheartbeat_ms = 100\n");
    let out = bin().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis.lease_ms: expected at least twice redis.heartbeat_ms"), "{err}");
}

#[test]
fn a_bad_environment_override_exits_2() {
    let out = bin().env("MAX_WORKERS", "many").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_WORKERS"));
}

/// Runs `cmd` to its end, killing it if it is still running after `limit`.
fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let (out, timed_out) = run_bounded(cmd, limit);
    assert!(!timed_out, "still running after {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `serve --bind ADDR` that cannot listen: exit 2, one line naming the address and the cause,
/// no panic, and no worker started (the fixture keeps one warm, which would log its pid).
fn serve_cannot_listen(bind: &str, cause: &str) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny.toml");
    let out =
        output_within(bin().args(["serve", "--config", fixture, "--bind", bind]), Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {err}");
    assert!(lines[0].contains(&format!("cannot listen on {bind}")), "{err}");
    assert!(lines[0].to_lowercase().contains(cause), "{err}");
}

#[test]
fn serve_on_a_port_in_use_exits_2_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    serve_cannot_listen(&addr, "address already in use");
}

#[test]
fn serve_on_an_address_without_a_port_exits_2_with_one_line() {
    serve_cannot_listen("localhost", "no port");
}

#[test]
fn max_workers_wins_over_worker_pool_size_with_one_warning() {
    // Without a port the server stops right after reading its settings.
    let out = output_within(
        bin().env("MAX_WORKERS", "3").env("WORKER_POOL_SIZE", "5").args(["serve", "--bind", "localhost"]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WORKER_POOL_SIZE")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("MAX_WORKERS=3") && warnings[0].contains("using MAX_WORKERS"), "{err}");
    let out = output_within(
        bin().env("WORKER_POOL_SIZE", "none").args(["serve", "--bind", "localhost"]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("environment variable WORKER_POOL_SIZE=\"none\""), "{err}");
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

#[cfg(unix)]
fn serve_then_signal(signal: &str) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny.toml");
    let mut child = bin()
        .args(["serve", "--config", fixture, "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stderr.take().expect("stderr"));
    // The warm worker of text_processing announces its pid.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut worker_pid = None;
    let mut log = Vec::new();
    while worker_pid.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(rest) = line.split("(pid ").nth(1) {
                worker_pid = rest.trim_end_matches(')').parse::<u32>().ok();
            }
            log.push(line);
        }
    }
    let worker_pid = worker_pid.unwrap_or_else(|| panic!("no worker started: {log:#?}"));
    assert!(pid_alive(worker_pid));
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let Some(status) = exit_within(&mut child, Duration::from_secs(15)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server ignored {signal}");
    };
    assert_eq!(status.code(), Some(0));
    assert!(!pid_alive(worker_pid), "worker {worker_pid} outlived the server");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("shutdown complete")), "{rest:#?}");
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully_and_exits_0() {
    serve_then_signal("-TERM");
}

#[cfg(unix)]
#[test]
fn sigint_shuts_down_gracefully_and_exits_0() {
    serve_then_signal("-INT");
}

#[test]
fn the_embed_example_runs_both_executors() {
    let example = built_example("embed");
    let out = Command::new(example).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(r#"resize (in-process): {"height":240,"width":320}"#), "{stdout}");
    assert!(stdout.contains(r#""words":4"#), "{stdout}");
    assert!(stdout.contains("word_count with no text: failed (no text to count)"), "{stdout}");
}

/// The path of an example's binary, built by `cargo build` (which reuses what `cargo test`
/// compiled): `cargo test` builds examples only under hashed names, some of them test harnesses.
fn built_example(name: &str) -> std::path::PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap_or_else(|e| panic!("cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name}: {status}");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_workerpool"));
    bin.parent().expect("the binary has a folder").join("examples").join(name)
}
