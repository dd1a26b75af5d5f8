//! The dashboard in a real headless Chromium, driven over WebDriver (Selenium) against the
//! real server: tasks appear and finish, a progress bar moves, scale-up asks for the token
//! once and the worker appears, a wrong token is refused plainly, a dead letter is re-queued,
//! a queue of 10,000 tasks is shown a page at a time, the page fits a phone and is reachable
//! by keyboard, and a page on another loopback origin calls the API through CORS (and one on
//! an origin not listed cannot), and a browser `EventSource` left open on a task stops after
//! the result, which it gets once. Screenshots go to `target/dashboard-shots/`.
//!
//! `scripts/test.sh` installs Chromium, its driver and Selenium (`target/browser-py`).
//! Without them the test is skipped on a developer machine and fails under `CI=true`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::server::*;

const TOKEN: &str = "dashboard-test-token";
const READ_TOKEN: &str = "dashboard-read-token";

const CONFIG: &str = "[server]\ncors_origins = [\"http://localhost:CORS_PORT\"]\n\n[pool]\nmax_workers = 12\nmin_workers = 0\nresource_monitor_interval_ms = 500\nhealth_check_interval_ms = 1000\ngraceful_shutdown_timeout_ms = 2000\n\n[types.work]\nmax_concurrent = 10\nmin_workers = 0\nmax_retries = 1\nretry_delay_ms = 50\nidle_timeout_ms = 600000\ncpu_threshold = 100\n\n[types.held]\nmax_concurrent = 1\nqueue_size = 20000\n";

/// The longest the whole browser run may take.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// The Python with Selenium, and the browser and its driver; `None` (skip) where they are
/// missing and this is not CI.
fn browser_tools() -> Option<PathBuf> {
    let python = std::env::var_os("WORKERPOOL_TEST_BROWSER_PYTHON").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/browser-py/bin/python")),
        PathBuf::from,
    );
    let selenium = Command::new(&python).args(["-c", "import selenium"]).stderr(Stdio::null()).status();
    let chromium =
        Command::new("chromium").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    let driver = Command::new("chromedriver").arg("--version").stdout(Stdio::null()).status();
    let missing: Vec<&str> = [("Selenium", selenium), ("chromium", chromium), ("chromedriver", driver)]
        .into_iter()
        .filter(|(_, s)| !s.as_ref().is_ok_and(|s| s.success()))
        .map(|(name, _)| name)
        .collect();
    if missing.is_empty() {
        return Some(python);
    }
    let why = format!("missing {}; scripts/test.sh installs them", missing.join(", "));
    support::redis_server::missing_tool(&why);
    None
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some(python) = browser_tools() else { return };
    let (listed, unlisted) = (free_port(), free_port());
    let config = CONFIG.replace("CORS_PORT", &listed.to_string());
    let server =
        Server::start(&config, &[("WORKERPOOL_API_TOKEN", TOKEN), ("WORKERPOOL_READ_TOKEN", READ_TOKEN)]);
    let shots = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/dashboard-shots"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.py");
    // The script's output goes to files, read once it has ended (a pipe could fill and stall it).
    std::fs::create_dir_all(&shots).expect("the screenshots' folder");
    let (out_path, err_path) = (shots.join("script.out"), shots.join("script.err"));
    let mut child = Command::new(python)
        .arg(script)
        .arg(&server.base)
        .arg(TOKEN)
        .arg(&shots)
        .arg(listed.to_string())
        .arg(unlisted.to_string())
        .env("SE_OFFLINE", "true")
        .env("WORKERPOOL_TEST_READ_TOKEN", READ_TOKEN)
        .stdout(std::fs::File::create(&out_path).expect("the script's stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("the script's stderr file"))
        .spawn()
        .expect("run the browser script");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the browser script") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            break child.wait().expect("the killed script");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    println!("{out}");
    assert!(
        status.success(),
        "the browser run failed ({status}, {:?}):\n{out}\n{err}\nserver log:\n{}",
        started.elapsed(),
        server.log().join("\n")
    );
    assert!(out.contains("every step passed"), "{out}");
    assert!(
        out.contains("cors: ok completed results=1")
            && out.contains("cors refused: error TypeError: Failed to fetch"),
        "{out}"
    );
    for shot in ["overview", "progress", "task", "scaled", "refused", "dead-letters", "queue-10000", "phone"]
    {
        let png = std::fs::read(shots.join(format!("{shot}.png"))).expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5000, "{shot}.png is not a real screenshot");
    }
}

/// A loopback port free now (for the pages of the CORS check, served by the script).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}
