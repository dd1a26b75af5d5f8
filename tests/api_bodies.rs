//! Request bodies and path ids read as `docs/openapi.json` describes them: `null` options take
//! their default, whole numbers may carry a zero fraction, bodies are objects only, and an id
//! too long to be any task's gets a short JSON 404.

mod support;

use serde_json::json;
use support::server::*;

#[test]
fn null_options_take_their_default() {
    let server = Server::start(TEXT_ONLY, &[]);
    let r = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "echo"},
               "options": {"wait": null, "priority": null, "timeout": null, "max_retries": null, "delay": null}}),
    );
    // `wait: null` waits, as an absent `wait` does.
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("completed")), "{r:?}");
    assert_eq!(r.body["priority"], 0, "{r:?}");
}

#[test]
fn whole_numbers_may_be_written_with_a_zero_fraction() {
    let server = Server::start(TEXT_ONLY, &[]);
    let url = server.url("/api/workers/execute");
    let body = r#"{"type":"text_processing","data":{"op":"echo"},"options":{"delay":46.0,"priority":7.0,"timeout":20000.0,"max_retries":1.0}}"#;
    let r = post(&url, body, None);
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("completed")), "{r:?}");
    assert_eq!((r.body["priority"].as_i64(), r.body["max_retries"].as_i64()), (Some(7), Some(1)), "{r:?}");
    for (body, field) in [
        (r#"{"type":"text_processing","options":{"delay":466.5}}"#, "options.delay"),
        (r#"{"type":"text_processing","options":{"priority":0.25}}"#, "options.priority"),
        (r#"{"type":"text_processing","options":{"max_retries":-1.0}}"#, "options.max_retries"),
    ] {
        let r = post(&url, body, None);
        assert_eq!((r.status, r.body["field"].as_str()), (400, Some(field)), "{body}: {r:?}");
        assert!(r.body["error"].as_str().is_some_and(|e| e.contains("a whole number")), "{body}: {r:?}");
    }
}

#[test]
fn bodies_and_options_are_objects_not_arrays() {
    let server = Server::start(TEXT_ONLY, &[]);
    let execute_url = server.url("/api/workers/execute");
    let scale_url = server.url("/api/workers/scale/text_processing");
    for (url, body) in [
        (&execute_url, r#"["text_processing"]"#),
        (&execute_url, r#" ["text_processing",{"op":"echo"}]"#),
        (&execute_url, r#"{"type":"text_processing","options":[null,null]}"#),
        (&scale_url, r#"["up",1]"#),
    ] {
        let r = post(url, body, None);
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(
            r.body["error"].as_str().is_some_and(|e| e.contains("expected a JSON object")),
            "{body}: {r:?}"
        );
    }
    let stats = get(&server.url("/api/workers/stats"));
    assert_eq!(stats.body["tasks_completed"], 0, "an array body ran a task: {stats:?}");
}

/// Ids up to the HTTP layer's limit on a request target (65,534 bytes, the `http` crate's)
/// reach the server, which answers a short JSON 404 that names the problem and does not
/// echo the id. Longer targets are refused by actix-http before any route is found
/// (`a_huge_request_line_is_a_4xx`).
#[test]
fn an_id_too_long_for_any_task_is_a_short_json_404() {
    let server = Server::start(TEXT_ONLY, &[]);
    let long = "a".repeat(60_000);
    for (method, path) in [
        ("GET", format!("/api/tasks/{long}")),
        ("GET", format!("/api/tasks/{long}/events")),
        ("DELETE", format!("/api/tasks/{long}")),
        ("POST", format!("/api/tasks/{long}/requeue")),
    ] {
        let url = server.url(&path);
        let r = match method {
            "GET" => get(&url),
            "DELETE" => delete(&url, None),
            _ => post(&url, "", None),
        };
        assert_eq!(r.status, 404, "{method}: {}", r.status);
        assert!(r.content_type.starts_with("application/json"), "{method}: {r:?}");
        let error = r.body["error"].as_str().unwrap_or_else(|| panic!("{method}: {r:?}"));
        assert!(error.contains("id of 60000 bytes"), "{method}: {error}");
        assert!(r.body.to_string().len() < 200, "{method}: the id was echoed");
    }
}
