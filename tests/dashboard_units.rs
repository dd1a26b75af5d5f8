//! The dashboard's pure functions (SSE block parsing, when a stream stops, rates, start
//! reasons, scale answers, worker pages) under `node --test`: `tests/browser/units.test.mjs`.
//!
//! `scripts/test.sh` installs Node where it is missing. Without it the test is skipped on a
//! developer machine and fails under `CI=true`.

mod support;

use std::process::{Command, Stdio};

#[test]
fn the_dashboard_functions_pass_their_unit_tests() {
    if Command::new("node").arg("--version").stdout(Stdio::null()).status().is_err() {
        support::redis_server::missing_tool("node is not installed; scripts/test.sh installs it");
        return;
    }
    let out = Command::new("node")
        .arg("--test")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/units.test.mjs"))
        .output()
        .expect("run node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("# pass 6") && text.contains("# fail 0"), "{text}");
}
