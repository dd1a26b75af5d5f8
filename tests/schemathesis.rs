//! Schemathesis against the real server: requests generated from `/api/openapi.json` (valid
//! ones and invalid ones), every answer checked against the document. Fails on a 5xx the
//! document does not give for the request (`tests/fixtures/schemathesis.toml` lists the
//! documented ones), a panic in the server's log, a status, content type, header or body the
//! document does not describe, a valid request refused or an invalid one run.
//!
//! `scripts/test.sh` installs the pinned Schemathesis into `target/schemathesis`. Without it
//! the test is skipped on a developer machine and fails under `CI=true`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::server::*;

/// Small, quick process types: a waited execute ends in milliseconds. The queue is long
/// enough that the tasks a run leaves queued do not turn every later execute into a 429.
const CONFIG: &str = "[pool]\nmax_workers = 4\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 2000\n\n[types.text_processing]\nmax_concurrent = 2\nmin_workers = 1\nqueue_size = 1000\ntimeout_ms = 5000\nmax_retries = 0\nretry_delay_ms = 20\ncpu_threshold = 100\n";

/// Test cases per operation and phase: enough to reach every documented answer, few enough
/// that the whole run stays near a minute on two cores.
const MAX_EXAMPLES: &str = "30";

/// The whole run's limit; a run past it is killed and fails.
const LIMIT: Duration = Duration::from_secs(240);

/// The `st` command, or `None` (skip) where it is not installed and this is not CI.
fn schemathesis() -> Option<PathBuf> {
    let st = std::env::var_os("WORKERPOOL_TEST_SCHEMATHESIS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/schemathesis/bin/st")),
        PathBuf::from,
    );
    let runs = Command::new(&st).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if runs.is_ok_and(|s| s.success()) {
        return Some(st);
    }
    let why = format!("{} does not run; scripts/test.sh installs Schemathesis", st.display());
    support::redis_server::missing_tool(&why);
    None
}

#[test]
fn schemathesis_finds_no_disagreement_between_the_document_and_the_server() {
    let Some(st) = schemathesis() else { return };
    let server = Server::start(CONFIG, &[]);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let work = std::env::temp_dir().join(format!("wp-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("a work folder");
    let seed = std::env::var("WORKERPOOL_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let mut child = Command::new(&st)
        .arg("--config-file")
        .arg(format!("{fixtures}/schemathesis.toml"))
        .arg("run")
        .arg(server.url("/api/openapi.json"))
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", &seed])
        .args(["--workers", "1", "--request-timeout", "20", "--no-color"])
        .args(["--generation-database", "none", "--suppress-health-check", "all"])
        // The pool's event stream never ends by itself (it sends every pool event from now
        // on, with a keep-alive between), so no request to it could complete; its messages
        // are checked against the document by tests/openapi_events.rs instead.
        .args(["--exclude-path", "/api/workers/events"])
        .env("SCHEMATHESIS_HOOKS", format!("{fixtures}/schemathesis_hooks.py"))
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = format!("{}\n{}", stdout.join().expect("stdout"), stderr.join().expect("stderr"));
    let _ = std::fs::remove_dir_all(&work);
    let status = status.unwrap_or_else(|| panic!("schemathesis ran past {LIMIT:?}:\n{report}"));

    let panics: Vec<String> = server.log().into_iter().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "the server panicked: {panics:#?}\n{report}");
    assert!(status.success(), "schemathesis found disagreements ({status}):\n{report}");
    // A run that tested nothing would pass too.
    let count = |label: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|n| n.split('/').next().unwrap_or("").trim().to_string())
    };
    let (selected, tested) = (count("Selected:"), count("Tested:"));
    assert!(
        selected.is_some() && selected != Some("0".into()) && selected == tested,
        "not every selected operation was tested ({selected:?}, {tested:?}):\n{report}"
    );
}

/// Reads a pipe to its end on a thread of its own, so that neither pipe can fill and stall
/// the child.
fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}
