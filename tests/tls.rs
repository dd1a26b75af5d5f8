//! HTTPS without a proxy (`[server] tls_cert_file`, `tls_key_file`): the API, an SSE stream and
//! `/metrics` over TLS with a private authority, HTTP/2 and HTTP/1.1 by ALPN, a client that
//! does not trust the authority refused, and every unusable setting an exit with code 2 that
//! names it. The requests go through `curl` (with HTTP/2), which `scripts/test.sh` installs;
//! the certificates come from `support::tls`.
#![cfg(feature = "tls")]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::bounded::{run_bounded, text};
use support::redis_server::missing_tool;
use support::server::Server;
use support::tls::Authority;

/// The pool of these tests, served over HTTPS with `cert` and `key`.
fn config(cert: &Path, key: &Path) -> String {
    format!(
        "[server]\ntls_cert_file = {:?}\ntls_key_file = {:?}\n\n{}",
        cert.display().to_string(),
        key.display().to_string(),
        support::server::TEXT_ONLY
    )
}

/// Whether `curl` with HTTP/2 is here; otherwise a skip (a failure under `CI=true`).
fn curl_with_http2() -> bool {
    let out = Command::new("curl").arg("--version").output();
    let ok = out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("HTTP2"));
    if !ok {
        missing_tool("curl with HTTP/2 is not installed; scripts/test.sh installs it");
    }
    ok
}

/// `curl -sS ARGS… URL` within 30 s.
fn curl(args: &[&str], url: &str) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]).args(args).arg(url);
    let (out, timed_out) = run_bounded(&mut cmd, Duration::from_secs(30));
    assert!(!timed_out, "curl {args:?} {url} hung");
    out
}

/// The body and the HTTP version curl used (`2`, `1.1`), trusting `ca`.
fn fetch(ca: &Path, version: &str, method: &str, url: &str, body: Option<&str>) -> (String, String) {
    let ca = ca.display().to_string();
    let mut args = vec![version, "--cacert", &ca, "-X", method, "-w", "\n%{http_version}"];
    if let Some(b) = body {
        args.extend(["-H", "content-type: application/json", "--data", b]);
    }
    let out = curl(&args, url);
    assert!(out.status.success(), "curl {method} {url}: {}", text(&out));
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, used) = all.rsplit_once('\n').expect("the version line");
    (body.to_string(), used.trim().to_string())
}

#[test]
fn the_api_sse_and_metrics_answer_over_https_with_http2_and_http1() {
    let Some(ca) = Authority::new() else { return };
    if !curl_with_http2() {
        return;
    }
    let (cert, key) = ca.server();
    let server = Server::start(&config(&cert, &key), &[]);
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);

    let (body, used) = fetch(&ca.ca(), "--http2", "GET", &server.url("/api/workers/stats"), None);
    assert_eq!(used, "2", "ALPN did not give HTTP/2");
    let stats: Value = serde_json::from_str(&body).expect("stats JSON");
    assert!(stats["by_type"]["text_processing"].is_object(), "{stats}");
    let (_, used) = fetch(&ca.ca(), "--http1.1", "GET", &server.url("/api/workers/stats"), None);
    assert_eq!(used, "1.1");

    // A task's event stream over HTTP/2, from queued to its result.
    let task = r#"{"type":"text_processing","data":{"op":"progress","steps":3,"step_ms":150},"options":{"wait":false}}"#;
    let (body, _) = fetch(&ca.ca(), "--http2", "POST", &server.url("/api/workers/execute"), Some(task));
    let queued: Value = serde_json::from_str(&body).expect("execute JSON");
    let id = queued["id"].as_str().unwrap_or_else(|| panic!("an id: {queued}"));
    let (events, used) =
        fetch(&ca.ca(), "--http2", "GET", &server.url(&format!("/api/tasks/{id}/events")), None);
    assert_eq!(used, "2");
    assert!(events.contains("event: progress") && events.contains("event: result"), "{events}");
    assert!(events.contains(r#""status":"completed""#), "{events}");

    let (metrics, used) = fetch(&ca.ca(), "--http2", "GET", &server.url("/metrics"), None);
    assert_eq!(used, "2");
    assert!(
        metrics.contains(r#"workerpool_tasks_total{outcome="completed",type="text_processing"} 1"#),
        "{metrics}"
    );

    // Plain HTTP to the TLS port gets no answer from the API.
    let plain = curl(&[], &server.url("/api/workers/stats").replacen("https://", "http://", 1));
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("by_type"));
}

#[test]
fn a_client_that_does_not_trust_the_authority_is_refused() {
    let (Some(ca), Some(other)) = (Authority::new(), Authority::new()) else { return };
    if !curl_with_http2() {
        return;
    }
    let (cert, key) = ca.server();
    let server = Server::start(&config(&cert, &key), &[]);
    let url = server.url("/api/workers/stats");
    // curl's exit code 60: the peer's certificate cannot be verified.
    let other_ca = other.ca().display().to_string();
    for args in [vec![], vec!["--cacert", other_ca.as_str()]] {
        let out = curl(&args, &url);
        assert_eq!(out.status.code(), Some(60), "curl {args:?}: {}", text(&out));
    }
}

/// `serve` with `config` (TOML text): its exit code and stderr, within 30 s.
fn serve_with(config: &str) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("wp-tls-config-{}-{}", std::process::id(), config.len()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("c.toml");
    std::fs::write(&path, config).expect("the config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_workerpool"));
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--config"]).arg(&path);
    let (out, timed_out) = run_bounded(&mut cmd, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!timed_out, "serve did not stop: {}", text(&out));
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn unusable_tls_settings_exit_2_naming_the_problem() {
    let (Some(ca), Some(other)) = (Authority::new(), Authority::new()) else { return };
    let (cert, key) = ca.server();
    let (_, other_key) = other.server();
    let missing = ca.dir().join("missing.pem");
    let cases = [
        (
            format!("[server]\ntls_cert_file = {:?}\n", cert.display().to_string()),
            vec!["server.tls_cert_file is set without server.tls_key_file"],
        ),
        (
            format!("[server]\ntls_key_file = {:?}\n", key.display().to_string()),
            vec!["server.tls_key_file is set without server.tls_cert_file"],
        ),
        (config(&missing, &key), vec!["server.tls_cert_file", "missing.pem", "cannot be read"]),
        (config(&cert, &missing), vec!["server.tls_key_file", "missing.pem", "cannot be read"]),
        (config(&key, &key), vec!["server.tls_cert_file", "no PEM certificate"]),
        (config(&cert, &cert), vec!["server.tls_key_file", "no PEM private key"]),
        (config(&cert, &other_key), vec!["does not match the certificate"]),
    ];
    for (text, says) in cases {
        let (code, err) = serve_with(&text);
        assert_eq!(code, Some(2), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        for part in says {
            assert!(err.contains(part), "{text}: expected {part:?} in {err}");
        }
    }
}
