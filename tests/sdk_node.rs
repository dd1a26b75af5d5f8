//! The Node.js worker library (`sdk/node`): its `node --test` suite against the real binary.
//! The interpreter is `node` on PATH, or `WORKERPOOL_TEST_NODE`; without it (or older than
//! Node 18) the test skips, and fails under `CI=true`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::bounded::{run_ok, text};
use support::redis_server::missing_tool;
use support::repo;

/// How long the whole node suite may take.
const SUITE_LIMIT: Duration = Duration::from_secs(180);

/// The interpreter, when it runs and is Node 18 or newer; otherwise `None` (a skip) or a
/// failure (CI).
fn node() -> Option<PathBuf> {
    let node = std::env::var_os("WORKERPOOL_TEST_NODE").map(PathBuf::from).unwrap_or_else(|| "node".into());
    let ok = Command::new(&node)
        .args(["-e", "process.exit(Number(process.versions.node.split('.')[0]) >= 18 ? 0 : 1)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!(
            "{} (Node.js 18 or newer) is missing; install Node.js or set WORKERPOOL_TEST_NODE",
            node.display()
        );
        missing_tool(&why);
        return None;
    }
    Some(node)
}

#[test]
fn the_node_worker_library_passes_its_tests_against_the_real_server() {
    let Some(node) = node() else { return };
    let mut cmd = Command::new(&node);
    cmd.args(["--test", "sdk/node/test/"])
        .current_dir(repo())
        .env("WORKERPOOL_BIN", env!("CARGO_BIN_EXE_workerpool"))
        .env_remove("NODE_OPTIONS")
        .env_remove("NODE_PATH")
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("WORKERPOOL_CA_FILE");
    // The HTTPS cases (https.test.mjs): a server certificate from one authority, and another
    // authority the client must not take for it. Without openssl they are skipped (outside CI).
    let authorities = support::tls::https_authorities(&mut cmd);
    let output = run_ok(&mut cmd, SUITE_LIMIT, "node --test");
    let log = text(&output);
    println!("{log}");
    // The suite ran, through the server and over pipes, and nothing was skipped or failed.
    let count = |name: &str| {
        log.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("# {name} ")).or_else(|| l.strip_prefix(&format!("ℹ {name} ")))
            })
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    assert!(count("pass").is_some_and(|n| n >= 15), "fewer tests passed than the suite holds:\n{log}");
    assert_eq!(count("fail"), Some(0), "{log}");
    let skipped = if authorities.is_some() { 0 } else { 1 };
    assert_eq!(count("skipped"), Some(skipped), "{log}");
}
