//! Edge cases of the HTTP server as a client or operator sees them: odd paths and bodies,
//! HEAD, `Allow`, the bearer scheme, SSE around shutdown, metrics. Every wait is bounded in time.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::server::*;

/// One type, one worker at a time, a warm worker kept (`min_workers = 1`), quick drain.
const ONE: &str = "[pool]\nmax_workers = 4\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 3000\nresource_monitor_interval_ms = 200\n\n[types.text_processing]\nmax_concurrent = 1\nmin_workers = 1\nqueue_size = 2\nmax_retries = 0\nretry_delay_ms = 20\n";

/// Sends a signal to the server without waiting for it to exit.
fn send_signal(server: &Server, signal: &str) {
    let ok = std::process::Command::new("kill").args([signal, &server.pid().to_string()]).status().unwrap();
    assert!(ok.success());
}

/// A raw HTTP exchange (one request, `Connection: close`): status line, headers, body.
fn raw(server: &Server, request_head: &str, body: &[u8]) -> (String, String, Vec<u8>) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request_head.replace("{addr}", addr).as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_lowercase(), rest.as_bytes().to_vec())
}

// ===== confirmed bugs =====

/// BUG: `count` near `usize::MAX` on `down` overflows `msg.count + floor` in the pool's Scale
/// handler (actors/src/pool/handlers.rs) when the type keeps warm workers: a debug build
/// panics inside the type's actor (the type is then dead for every later request), a
/// release build wraps and retires every worker. A client's mistake must be a 400.
#[test]
fn scale_down_with_a_huge_count_is_a_400_and_the_type_keeps_working() {
    let server = Server::start(ONE, &[]);
    assert!(
        wait_for(Duration::from_secs(10), || get(&server.url("/api/workers/stats")).body["available"] == 1)
    );
    let r = post(
        &server.url("/api/workers/scale/text_processing"),
        r#"{"action":"down","count":18446744073709551615}"#,
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    // The type still takes tasks, and still has its warm worker.
    let ok = execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    assert_eq!(ok.status, 200, "{ok:?}");
    let stats = get(&server.url("/api/workers/stats"));
    assert_eq!(stats.status, 200, "{stats:?}");
    assert_eq!(stats.body["by_type"]["text_processing"]["total"], 1, "{stats:?}");
}

/// BUG: a body with trailing garbage after the JSON object is malformed, yet it is run:
/// `api::read_json` deserializes with `serde_path_to_error::deserialize` on a
/// `serde_json::Deserializer` and never calls `Deserializer::end()`, so whatever follows the
/// first value is ignored. `{"type":"text_processing"} trailing` (or two objects glued
/// together, as a buggy client's retry might send) executes a task instead of a 400.
#[test]
fn a_body_with_trailing_garbage_is_a_400_not_a_task() {
    let server = Server::start(TEXT_ONLY, &[]);
    let url = server.url("/api/workers/execute");
    for body in [
        r#"{"type":"text_processing","data":{"op":"echo"}} trailing"#,
        r#"{"type":"text_processing","data":{"op":"echo"}}{"type":"nope"}"#,
    ] {
        let r = post(&url, body, None);
        assert_eq!(r.status, 400, "{body}: {r:?}");
    }
    let r = post(&server.url("/api/workers/scale/text_processing"), r#"{"action":"up"}]"#, None);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(get(&server.url("/api/workers/stats")).body["tasks_completed"], 0);
}

/// BUG: a 405 must carry `Allow` (RFC 9110 §15.5.6). actix-web's resource adds it, but
/// `api::json_errors` rebuilds the response as JSON from the status alone and drops it.
#[test]
fn a_405_names_the_allowed_methods() {
    let server = Server::start(TEXT_ONLY, &[]);
    let (status, headers, body) =
        raw(&server, "GET /api/workers/execute HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n", b"");
    assert!(status.contains(" 405 "), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("not allowed"), "{body:?}");
    assert!(headers.contains("allow: post"), "no Allow header on a 405: {headers}");
}

/// BUG (low): HEAD on a GET route answers 405 (RFC 9110 §9.1: general-purpose servers MUST
/// support HEAD wherever GET works). Load balancers and uptime checkers often probe
/// `/api/workers/health` with HEAD. The routes in `api::configure` are `.get(..)` only
/// (actix-web's `web::get()` guard does not match HEAD); `.route(web::head().to(..))` or a
/// `guard::Any(Get).or(Head)` route would fix it.
#[test]
fn head_works_where_get_does() {
    let server = Server::start(TEXT_ONLY, &[]);
    for path in ["/api/workers/health", "/api/workers/stats", "/metrics"] {
        let res = agent().head(&server.url(path)).call().unwrap();
        assert_eq!(res.status().as_u16(), 200, "HEAD {path}");
    }
}

/// BUG: the auth scheme is case-insensitive (RFC 9110 §11.1, RFC 6750): `bearer TOKEN` is
/// the same credential as `Bearer TOKEN`. `api::authorize` strips the exact prefix
/// `"Bearer "`, so a right token sent as `bearer` (as some clients and proxies do) gets 401.
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let server = Server::start(TEXT_ONLY, &[("WORKERPOOL_API_TOKEN", "s3cret")]);
    let res = agent()
        .post(&server.url("/api/workers/execute"))
        .header("content-type", "application/json")
        .header("authorization", "bearer s3cret")
        .send(r#"{"type":"text_processing","data":{"op":"echo"}}"#)
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// BUG: an open `/api/workers/events` stream holds the exit after SIGTERM for actix's own
/// `shutdown_timeout(5)` (src/serve.rs): the pool SSE stream never ends on shutdown, so with
/// nothing running the server still needs ~5 s, and with the default 30 s grace a drain that
/// uses all of it exits at ~35 s — past a typical orchestrator's 30 s kill. The stream should
/// end when the shutdown begins (or at the latest when the drain is over).
#[test]
fn an_open_pool_event_stream_does_not_delay_the_exit() {
    let mut server = Server::start(TEXT_ONLY, &[]);
    let (head, mut reader) = sse(&server, "/api/workers/events", Duration::from_secs(15));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let start = Instant::now();
    assert_eq!(server.signal_and_wait("-TERM", Duration::from_secs(20)), Some(0));
    let took = start.elapsed();
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(took < Duration::from_secs(3), "an idle server with an SSE client took {took:?} to exit");
}

// ===== edge cases that behave as documented (kept as regression tests) =====

/// SSE for a task queued behind another, then cancelled: `status` (queued), then `result`
/// (cancelled), then the stream ends.
#[test]
fn task_events_of_a_queued_task_that_is_cancelled_end_with_the_result() {
    let server = Server::start(ONE, &[]);
    let first = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "sleep", "ms": 3000}, "options": {"wait": false}}),
    );
    assert_eq!(first.status, 202);
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)));
    let second = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "echo"}, "options": {"wait": false}}),
    );
    let id = second.body["id"].as_str().unwrap().to_string();
    let (head, mut reader) = sse(&server, &format!("/api/tasks/{id}/events"), Duration::from_secs(10));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let first_event = read_events(&mut reader, 1, |_, _| true);
    assert_eq!(first_event[0].0, "status");
    assert_eq!(first_event[0].1["status"], "queued");
    let cancelled = delete(&server.url(&format!("/api/tasks/{id}")), None);
    assert_eq!(cancelled.status, 200);
    let events = read_events(&mut reader, 10, |e, _| e == "result");
    let (name, record) = events.last().expect("an event after the cancel");
    assert_eq!((name.as_str(), record["status"].as_str()), ("result", Some("cancelled")));
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(!rest.contains("event:"), "{rest}");
}

/// SIGTERM: a waiting `execute` gets its result; during the drain a new `execute` gets 503
/// (JSON), `/health` 503 unhealthy, `/types` unavailable "shutting down", scale 503;
/// the server exits 0.
#[test]
fn during_the_drain_new_work_gets_503_and_the_waiting_request_its_result() {
    let mut server = Server::start(ONE, &[]);
    let url = server.url("/api/workers/execute");
    let waiter = std::thread::spawn(move || {
        post(&url, r#"{"type":"text_processing","data":{"op":"sleep","ms":1500}}"#, None)
    });
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)));
    send_signal(&server, "-TERM");
    let health_url = server.url("/api/workers/health");
    assert!(
        wait_for(Duration::from_secs(5), || get(&health_url).status == 503),
        "/health did not turn 503 after SIGTERM"
    );
    let h = get(&health_url);
    assert_eq!(h.body["status"], "unhealthy", "{h:?}");
    let late = execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    assert_eq!(late.status, 503, "{late:?}");
    assert!(late.body["error"].as_str().unwrap().contains("shutting down"), "{late:?}");
    let late = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "echo"}, "options": {"wait": false}}),
    );
    assert_eq!(late.status, 503, "{late:?}");
    let types = get(&server.url("/api/workers/types")).body;
    assert_eq!(types["types"]["text_processing"]["available"], false);
    let reason = types["types"]["text_processing"]["unavailable_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("shutting down"), "{reason:?}");
    let scale = post(&server.url("/api/workers/scale/text_processing"), r#"{"action":"up"}"#, None);
    assert_eq!(scale.status, 503, "{scale:?}");
    let answer = waiter.join().unwrap();
    assert_eq!((answer.status, answer.body["status"].as_str()), (200, Some("completed")), "{answer:?}");
    assert_eq!(server.signal_and_wait("-0", Duration::from_secs(20)), Some(0));
}

/// Odd but valid paths: URL-encoded ids, slashes, unicode, very long ids; unicode type names.
#[test]
fn odd_paths_get_json_404s() {
    let server = Server::start(TEXT_ONLY, &[]);
    let long = "a".repeat(8000);
    let cases = [
        "/api/tasks/a%2Fb".to_string(),
        "/api/tasks/a%2Fb/events".to_string(),
        "/api/tasks/%E2%9C%93".to_string(),
        "/api/tasks/%E2%9C%93/events".to_string(),
        format!("/api/tasks/{long}"),
        "/api/workers/dead-letters/t%C3%ABxt".to_string(),
        "/api/workers/dead-letters/%F0%9F%98%80".to_string(),
        "/api/workers/stats/".to_string(),
    ];
    for path in cases {
        let r = get(&server.url(&path));
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(r.body["error"].is_string(), "{path}: {r:?}");
    }
    let r = post(&server.url("/api/workers/scale/t%C3%ABxt"), r#"{"action":"up"}"#, None);
    assert_eq!((r.status, r.body["type"].as_str()), (404, Some("tëxt")), "{r:?}");
    let r = execute(&server, json!({"type": "tëxt😀"}));
    assert_eq!((r.status, r.body["type"].as_str()), (404, Some("tëxt😀")), "{r:?}");
    let r = post(&server.url("/api/workers/restart/%E2%9C%93-1"), "", None);
    assert_eq!(r.status, 404, "{r:?}");
    let r = delete(&server.url("/api/tasks/%E2%9C%93"), None);
    assert_eq!(r.status, 404, "{r:?}");
}

/// A request head far over actix's limit is refused with a 4xx, never a 500 or a hang.
#[test]
fn a_huge_request_line_is_a_4xx() {
    let server = Server::start(TEXT_ONLY, &[]);
    let long = "a".repeat(200_000);
    let (status, _, _) = raw(
        &server,
        &format!("GET /api/tasks/{long} HTTP/1.1\r\nHost: {{addr}}\r\nConnection: close\r\n\r\n"),
        b"",
    );
    let code: u16 = status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!((400..500).contains(&code), "{status:?}");
    assert_eq!(get(&server.url("/api/workers/stats")).status, 200);
}

/// Bodies that are JSON but not objects, duplicate keys, out-of-range numbers, null options,
/// trailing garbage: each a 400 with a JSON error; numbers past f64 (1e309) included.
#[test]
fn odd_bodies_are_400s() {
    let server = Server::start(TEXT_ONLY, &[]);
    let url = server.url("/api/workers/execute");
    let scale = server.url("/api/workers/scale/text_processing");
    let cases: Vec<(&str, &str)> = vec![
        (&url, "null"),
        (&url, "5"),
        (&url, "\"text_processing\""),
        (&url, "true"),
        (&url, r#"{"type":"text_processing","type":"text_processing"}"#),
        (&url, r#"{"type":"text_processing","options":{"timeout":1e309}}"#),
        (&url, r#"{"type":"text_processing","data":{"x":1e309}}"#),
        (&url, r#"{"type":"text_processing","options":{"timeout":1.5}}"#),
        (&url, r#"{"type":"text_processing","options":{"delay":-1}}"#),
        (&url, r#"{"type":"text_processing","options":[]}"#),
        (&url, "\u{feff}{\"type\":\"text_processing\"}"),
        (&scale, r#"{"action":"up","count":18446744073709551616}"#),
        (&scale, r#"{"action":"up","count":1e309}"#),
        (&scale, r#"{"action":"up","count":1.0}"#),
        (&scale, r#"{"action":"up","count":null}"#),
        (&scale, r#"{"action":"UP"}"#),
        (&scale, "[]"),
    ];
    for (u, body) in cases {
        let r = post(u, body, None);
        assert_eq!(r.status, 400, "{u} {body}: {r:?}");
        assert!(r.body["error"].is_string(), "{body}: {r:?}");
        assert!(r.content_type.starts_with("application/json"), "{body}: {r:?}");
    }
    // Scale up by a huge count is a clear 400 too (no overflow on the `up` side).
    let r = post(&scale, r#"{"action":"up","count":18446744073709551615}"#, None);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(get(&server.url("/api/workers/stats")).status, 200);
}

/// `data` of every JSON type is accepted and reaches the worker (never a 500); a body sent as
/// text/plain or with no content type is read as JSON all the same.
#[test]
fn data_of_every_json_type_runs() {
    let server = Server::start(TEXT_ONLY, &[]);
    for data in [json!(null), json!(1), json!(-2.5), json!("s"), json!(true), json!([1, 2]), json!({})] {
        let r = execute(&server, json!({"type": "text_processing", "data": data}));
        assert!(r.status == 200 || r.status == 502, "{data}: {r:?}");
        assert!(r.body["id"].is_string() && r.body["status"].is_string(), "{data}: {r:?}");
    }
    let body = br#"{"type":"text_processing","data":{"op":"echo"}}"#;
    for content_type in ["", "Content-Type: text/plain\r\n"] {
        let (status, _, _) = raw(
            &server,
            &format!(
                "POST /api/workers/execute HTTP/1.1\r\nHost: {{addr}}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            body,
        );
        assert!(status.contains(" 200 "), "{content_type:?}: {status}");
    }
}

/// A waited `execute` on a full queue answers 429 with `Retry-After`, like the queued one.
#[test]
fn a_waited_execute_on_a_full_queue_gets_429_with_retry_after() {
    let server = Server::start(ONE, &[]);
    let sleep =
        json!({"type": "text_processing", "data": {"op": "sleep", "ms": 3000}, "options": {"wait": false}});
    assert_eq!(execute(&server, sleep.clone()).status, 202);
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)));
    assert_eq!(execute(&server, sleep.clone()).status, 202);
    assert_eq!(execute(&server, sleep).status, 202);
    let full = execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    assert_eq!(full.status, 429, "{full:?}");
    assert_eq!(full.retry_after.as_deref(), Some("1"));
}

/// `/metrics`: Prometheus content type, and every contract family after some traffic (a
/// completed task, a crash-and-retry, a resource sample with a worker).
#[test]
fn metrics_expose_every_contract_family() {
    let server = Server::start(ONE, &[]);
    assert_eq!(execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}})).status, 200);
    execute(&server, json!({"type": "text_processing", "data": {"op": "crash"}}));
    assert!(wait_for(Duration::from_secs(10), || {
        get(&server.url("/metrics"))
            .body
            .as_str()
            .is_some_and(|t| t.contains("workerpool_worker_memory_bytes{"))
    }));
    let r = get(&server.url("/metrics"));
    assert_eq!(r.content_type, "text/plain; version=0.0.4", "{}", r.content_type);
    let text = r.body.as_str().unwrap();
    for family in [
        "workerpool_workers{",
        "workerpool_queue_length{",
        "workerpool_tasks_total{",
        "workerpool_task_duration_seconds_bucket{",
        "workerpool_task_wait_seconds_bucket{",
        "workerpool_worker_restarts_total{",
        "workerpool_worker_memory_bytes{",
        "workerpool_worker_cpu_percent{",
    ] {
        assert!(text.lines().any(|l| l.starts_with(family)), "{family} missing from /metrics");
    }
    assert!(text.contains("# TYPE workerpool_task_duration_seconds histogram"));
    assert!(text.contains("# TYPE workerpool_task_wait_seconds histogram"));
}

/// The pool SSE events carry the configured `INSTANCE_ID`, as `/status` does.
#[test]
fn pool_events_carry_the_instance_id() {
    let server = Server::start(TEXT_ONLY, &[("INSTANCE_ID", "review-7")]);
    let (head, mut reader) = sse(&server, "/api/workers/events", Duration::from_secs(20));
    assert!(head.to_lowercase().contains("cache-control: no-cache"), "{head}");
    execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    let events = read_events(&mut reader, 30, |e, _| e == "task_completed");
    assert!(!events.is_empty());
    for (name, data) in &events {
        assert_eq!(data["instance_id"], "review-7", "{name}: {data}");
        assert_eq!(data["event"].as_str(), Some(name.as_str()));
        assert!(data["timestamp"].is_u64() && data["data"].is_object(), "{data}");
    }
    assert_eq!(get(&server.url("/api/workers/status")).body["instance_id"], "review-7");
}

/// A task that already ended gets only `result`; a running one `status`, then `result`.
#[test]
fn task_events_of_an_ended_task_are_just_the_result() {
    let server = Server::start(TEXT_ONLY, &[]);
    let r = execute(&server, json!({"type": "text_processing", "data": {"op": "fail", "retryable": false}}));
    assert_eq!(r.status, 502);
    let id = r.body["id"].as_str().unwrap().to_string();
    let (_, mut reader) = sse(&server, &format!("/api/tasks/{id}/events"), Duration::from_secs(10));
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert_eq!(rest.matches("event: ").count(), 1, "{rest}");
    assert!(rest.contains("event: result"), "{rest}");
}
