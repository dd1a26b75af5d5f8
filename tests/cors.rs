//! CORS over real HTTP (`[server] cors_origins`): preflights from listed and unlisted
//! origins, the allow headers on errors, 401s, `/metrics` and the event streams, and none of
//! it while the key is unset.

mod support;

use std::time::Duration;

use support::server::*;
use support::sse::open;

const OPS: &str = "https://ops.example";
const EVIL: &str = "https://evil.example";

fn with_cors() -> String {
    format!("[server]\ncors_origins = [\"{OPS}\", \"http://localhost:8080\"]\n\n{TEXT_ONLY}")
}

/// The answer's status and its headers (names in lower case).
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, ureq::http::HeaderMap) {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = match body {
        Some(body) => agent().run(req.body(body.to_string()).unwrap()),
        None => agent().run(req.body(()).unwrap()),
    }
    .expect("an answer");
    (res.status().as_u16(), res.headers().clone())
}

fn header<'h>(headers: &'h ureq::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn preflight(url: &str, origin: &str, method: &str) -> (u16, ureq::http::HeaderMap) {
    call(
        "OPTIONS",
        url,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "authorization, content-type, last-event-id"),
        ],
        None,
    )
}

#[test]
fn a_listed_origin_is_allowed_on_every_route_and_an_unlisted_one_is_not() {
    let server = Server::start(&with_cors(), &[("WORKERPOOL_API_TOKEN", "s3cret")]);
    for (path, method) in [
        ("/api/workers/execute", "POST"),
        ("/api/tasks/x/events", "GET"),
        ("/api/tasks/x", "DELETE"),
        ("/metrics", "GET"),
        ("/api/workers/stats", "HEAD"),
    ] {
        let (status, h) = preflight(&server.url(path), OPS, method);
        assert!(status == 200 || status == 204, "{path}: {status}");
        assert_eq!(header(&h, "access-control-allow-origin"), Some(OPS), "{path}");
        let methods = header(&h, "access-control-allow-methods").unwrap_or_default().to_lowercase();
        for m in ["get", "head", "post", "delete", "options"] {
            assert!(methods.split(", ").any(|x| x == m), "{path}: {methods}");
        }
        let allowed = header(&h, "access-control-allow-headers").unwrap_or_default().to_lowercase();
        for name in ["authorization", "content-type", "last-event-id"] {
            assert!(allowed.split(", ").any(|x| x == name), "{path}: {allowed}");
        }

        let (status, h) = preflight(&server.url(path), EVIL, method);
        assert_eq!(status, 400, "{path}: an unlisted origin's preflight is refused");
        assert!(h.keys().all(|k| !k.as_str().starts_with("access-control-allow")), "{path}: {h:?}");
    }
    // An unlisted origin is served as before, with nothing that lets its page read it.
    let (status, h) = call("GET", &server.url("/api/workers/stats"), &[("Origin", EVIL)], None);
    assert_eq!(status, 200);
    assert!(h.keys().all(|k| !k.as_str().starts_with("access-control-allow")), "{h:?}");
}

#[test]
fn every_answer_to_a_listed_origin_carries_the_allow_header() {
    let server = Server::start(&with_cors(), &[("WORKERPOOL_API_TOKEN", "s3cret")]);
    let origin = [("Origin", OPS), ("Content-Type", "application/json")];
    let with_token =
        [("Origin", OPS), ("Content-Type", "application/json"), ("Authorization", "Bearer s3cret")];
    let body = r#"{"type":"text_processing","data":{"op":"echo"}}"#;
    // A method a route does not serve counts as a write: the 405 comes with the token.
    let cases = [
        ("GET", "/api/workers/stats", None, &origin[..], 200),
        ("GET", "/metrics", None, &origin[..], 200),
        ("POST", "/api/workers/execute", Some(body), &origin[..], 401),
        ("GET", "/api/tasks/nope", None, &origin[..], 404),
        ("GET", "/api/no-such-route", None, &origin[..], 404),
        ("POST", "/api/workers/stats", Some("{}"), &origin[..], 401),
        ("POST", "/api/workers/stats", Some("{}"), &with_token[..], 405),
    ];
    for (method, path, body, headers, want) in cases {
        let (status, h) = call(method, &server.url(path), headers, body);
        assert_eq!(status, want, "{method} {path}");
        assert_eq!(header(&h, "access-control-allow-origin"), Some(OPS), "{method} {path}: {h:?}");
    }
    // Both event streams.
    let done = post(&server.url("/api/workers/execute"), body, Some("s3cret"));
    let id = done.body["id"].as_str().expect("an id");
    for path in ["/api/workers/events".to_string(), format!("/api/tasks/{id}/events")] {
        let stream = open(&server, &path, &[("Origin", OPS)], Duration::from_secs(20));
        assert_eq!(stream.status, 200, "{path}");
        assert_eq!(stream.header("content-type"), Some("text/event-stream"), "{path}");
        assert_eq!(stream.header("access-control-allow-origin"), Some(OPS), "{path}: {}", stream.head);
    }
}

#[test]
fn without_cors_origins_no_cors_header_is_sent() {
    let server = Server::start(TEXT_ONLY, &[]);
    let (status, h) = preflight(&server.url("/api/workers/execute"), OPS, "POST");
    // As before the key existed: an OPTIONS the route does not serve.
    assert_eq!(status, 405);
    assert!(h.keys().all(|k| !k.as_str().starts_with("access-control-")), "{h:?}");
    let (status, h) = call("GET", &server.url("/api/workers/stats"), &[("Origin", OPS)], None);
    assert_eq!(status, 200);
    assert!(h.keys().all(|k| !k.as_str().starts_with("access-control-")), "{h:?}");
    let stream = open(&server, "/api/workers/events", &[("Origin", OPS)], Duration::from_secs(20));
    assert_eq!(stream.status, 200);
    assert!(!stream.head.contains("access-control-"), "{}", stream.head);
}

#[test]
fn a_malformed_origin_stops_the_server_at_start_naming_it() {
    let path = std::env::temp_dir().join(format!("wp-cors-{}.toml", std::process::id()));
    std::fs::write(&path, "[server]\ncors_origins = [\"https://ops.example/\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workerpool"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .expect("run workerpool");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.cors_origins") && err.contains("\"https://ops.example/\""), "{err}");
}
