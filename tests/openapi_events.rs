//! The two SSE streams against `docs/openapi.json`: every message of a task's stream and of
//! the pool's stream, as its fields `event` and `data`, matches the stream's documented schema,
//! `data` parsed as JSON against its `contentSchema`. (Schemathesis checks the task stream
//! too; the pool stream never ends, so it is checked here only.)

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::openapi::{check, document};
use support::server::*;

/// The documented schema of one message of the stream at `path`.
fn message_schema(doc: &Value, path: &str) -> Value {
    doc["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"].clone()
}

/// Checks each message as the document describes it: its SSE fields, `data` as sent (text).
fn check_all(doc: &Value, schema: &Value, messages: &[(String, Value)], stream: &str) {
    for (event, data) in messages {
        let message = json!({ "event": event, "data": data.to_string() });
        check(doc, schema, &message, stream).unwrap_or_else(|e| panic!("{e}\nmessage: {message}"));
    }
}

#[test]
fn the_event_streams_send_what_the_document_describes() {
    let doc = document();
    let server = Server::start(TEXT_ONLY, &[]);
    let (_, mut pool_stream) = sse(&server, "/api/workers/events", Duration::from_secs(20));

    // A delayed task with progress: its stream sees it queued, assigned, progressing, done.
    let queued = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "progress", "steps": 3, "step_ms": 20},
               "options": {"wait": false, "delay": 300}}),
    );
    assert_eq!(queued.status, 202, "{queued:?}");
    let id = queued.body["id"].as_str().expect("an id").to_string();
    let (head, mut task_stream) = sse(&server, &format!("/api/tasks/{id}/events"), Duration::from_secs(20));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let task_messages = read_events(&mut task_stream, 100, |event, _| event == "result");
    let names: Vec<&str> = task_messages.iter().map(|(e, _)| e.as_str()).collect();
    for name in ["status", "progress", "result"] {
        assert!(names.contains(&name), "no {name} message: {names:?}");
    }
    check_all(&doc, &message_schema(&doc, "/api/tasks/{id}/events"), &task_messages, "task stream");

    let pool_messages = read_events(&mut pool_stream, 200, |event, data| {
        event == "task_completed" && data["data"]["task_id"] == id.as_str()
    });
    let names: Vec<&str> = pool_messages.iter().map(|(e, _)| e.as_str()).collect();
    for name in ["task_assigned", "task_progress", "task_completed"] {
        assert!(names.contains(&name), "no {name} event: {names:?}");
    }
    check_all(&doc, &message_schema(&doc, "/api/workers/events"), &pool_messages, "pool stream");
}

/// The stream schemas are strict enough to refuse what the server must not send.
#[test]
fn the_stream_schemas_refuse_a_message_of_the_wrong_shape() {
    let doc = document();
    let task = message_schema(&doc, "/api/tasks/{id}/events");
    let pool = message_schema(&doc, "/api/workers/events");
    let bad = [
        (&task, json!({"event": "progress", "data": "{\"id\":\"x\"}"})),
        (&task, json!({"event": "result", "data": "not json"})),
        (&task, json!({"event": "finished", "data": "{}"})),
        (&pool, json!({"event": "lagged", "data": "{\"lost\":3}"})),
        (&pool, json!({"event": "worker_ready", "data": "{\"event\":\"worker_ready\",\"data\":{}}"})),
    ];
    for (schema, message) in bad {
        assert!(check(&doc, schema, &message, "message").is_err(), "accepted: {message}");
    }
}
