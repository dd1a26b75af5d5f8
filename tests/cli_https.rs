//! The command line over HTTPS (`--ca-file`, `WORKERPOOL_CA_FILE`) against a real server with
//! a private authority's certificate, and with the read token beside the API token.
#![cfg(feature = "tls")]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::cli::*;
use support::server::{Server, TEXT_ONLY};
use support::tls::Authority;

fn tls_config(cert: &Path, key: &Path) -> String {
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    format!("[server]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\n\n{TEXT_ONLY}")
}

fn cli(server: &Server, args: &[&str]) -> Command {
    let mut cmd = workerpool(args);
    cmd.env("WORKERPOOL_URL", &server.base);
    cmd
}

#[test]
fn the_client_verifies_the_server_against_its_ca_file() {
    let (Some(ca), Some(other)) = (Authority::new(), Authority::new()) else { return };
    let (cert, key) = ca.server();
    let server = Server::start(&tls_config(&cert, &key), &[]);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let ca_file = ca.ca().display().to_string();

    let out = run(cli(&server, &["status", "--json", "--ca-file", &ca_file]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let status: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert!(status["by_type"]["text_processing"].is_object(), "{status}");
    // The trust from the environment; a task followed to its end over the TLS event stream.
    let mut submit = cli(
        &server,
        &["submit", "-q", "--type", "text_processing", "--data", r#"{"op":"progress","steps":2}"#],
    );
    submit.env("WORKERPOOL_CA_FILE", &ca_file);
    let out = run(submit);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(serde_json::from_str::<Value>(&out.stdout).is_ok(), "{out:?}");

    // Not trusted: the built-in public authorities, or another private one. Exit 3, and why.
    let other_ca = other.ca().display().to_string();
    for args in [vec!["status"], vec!["status", "--ca-file", &other_ca]] {
        let out = run(cli(&server, &args));
        assert_eq!(out.code, Some(3), "{args:?}: {out:?}");
        assert!(
            out.stderr.to_lowercase().contains("certificate") || out.stderr.contains("UnknownIssuer"),
            "{out:?}"
        );
    }
    // A trust file that is not there, or holds no certificate, is a usage error.
    let out = run(cli(&server, &["status", "--ca-file", "/nonexistent/ca.pem"]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("/nonexistent/ca.pem"), "{out:?}");
    let key_file = key.display().to_string();
    let out = run(cli(&server, &["status", "--ca-file", &key_file]));
    assert_eq!(out.code, Some(2), "{out:?}");
    // Plain http:// to the TLS port: no answer that the client takes.
    let plain = server.base.replacen("https://", "http://", 1);
    let out = run(workerpool(&["status", "--server", &plain]));
    assert_eq!(out.code, Some(3), "{out:?}");
}

#[test]
fn the_read_token_reads_and_cannot_write() {
    let env = [
        ("WORKERPOOL_API_TOKEN", "wr1te-token"),
        ("WORKERPOOL_READ_TOKEN", "re4d-token"),
        ("WORKERPOOL_PROTECT_READS", "1"),
    ];
    let server = Server::start(TEXT_ONLY, &env);
    let out = run(cli(&server, &["status", "--json"]));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("401"), "{out:?}");
    let out = run(cli(&server, &["status", "--json", "--token", "re4d-token"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = run(cli(&server, &["dead-letters", "text_processing", "--token", "re4d-token"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = run(cli(&server, &["scale", "text_processing", "up", "--token", "re4d-token"]));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("403"), "{out:?}");
    assert!(!out.stderr.contains("re4d-token") && !out.stderr.contains("wr1te-token"), "{out:?}");
    let out = run(cli(&server, &["scale", "text_processing", "up", "--token", "wr1te-token"]));
    assert_eq!(out.code, Some(0), "{out:?}");
}
