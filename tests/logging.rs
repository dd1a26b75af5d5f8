//! `LOG_FORMAT=json` over the real binary's stderr: every line is one JSON object, and a pool
//! event's fields are at its top level, not a JSON string inside `message`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::server::*;

#[test]
fn json_lines_carry_event_fields_at_the_top_level() {
    let env = [("LOG_FORMAT", "json"), ("RUST_LOG", "info,workerpool::events=debug")];
    let server = Server::start(TEXT_ONLY, &env);
    let done = execute(&server, json!({"type": "text_processing", "data": {"text": "a b"}}));
    assert_eq!(done.status, 200, "{done:?}");
    let failed = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "fail", "retryable": false, "message": "bad"}}),
    );
    assert_eq!(failed.status, 502, "{failed:?}");
    let id = failed.body["id"].as_str().expect("an id").to_string();
    let event = |lines: &[Value], name: &str| lines.iter().find(|l| l["event"] == name).cloned();
    let mut lines = Vec::new();
    let logged = wait_for(Duration::from_secs(10), || {
        lines = server.log().iter().map(|l| serde_json::from_str(l).unwrap_or(Value::Null)).collect();
        event(&lines, "task_failed").is_some() && event(&lines, "task_completed").is_some()
    });
    assert!(logged, "{:#?}", server.log());
    assert!(lines.iter().all(Value::is_object), "a line is not one JSON object: {:#?}", server.log());
    let f = event(&lines, "task_failed").expect("task_failed");
    assert_eq!(
        (f["task_id"].as_str(), f["type"].as_str()),
        (Some(id.as_str()), Some("text_processing")),
        "{f}"
    );
    assert_eq!(
        (f["target"].as_str(), f["message"].as_str()),
        (Some("workerpool::events"), Some("task_failed"))
    );
    assert!(f["worker_id"].as_str().is_some_and(|w| w.starts_with("text_processing")), "{f}");
    let c = event(&lines, "task_completed").expect("task_completed");
    assert!(c["duration_ms"].is_u64(), "{c}");
    let created = event(&lines, "worker_created").expect("worker_created");
    assert!(created["worker_id"].is_string(), "{created}");
    assert!(
        lines.iter().all(|l| !l["message"].as_str().unwrap_or_default().contains('{')),
        "JSON inside a message"
    );
}
