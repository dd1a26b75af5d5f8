//! The event streams over real HTTP, as a browser's `EventSource` uses them: a task's
//! progress and result, the pool's events, ids, the retry hint, resuming with
//! `Last-Event-ID`, the end of a task's stream, and a slow pool-stream client told what it
//! lost.

mod support;

use std::io::Read;
use std::time::Duration;

use serde_json::{Value, json};
use support::server::*;
use support::sse::{Message, open, open_with, task_id_order};

const READ: Duration = Duration::from_secs(20);

/// Queues a task of `text_processing` without waiting for it; its id.
fn enqueue(server: &Server, data: Value) -> String {
    let r = execute(server, json!({"type": "text_processing", "data": data, "options": {"wait": false}}));
    assert_eq!(r.status, 202, "{r:?}");
    r.body["id"].as_str().expect("an id").to_string()
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_deref().expect("every event has an id")).collect()
}

fn increasing(ids: &[&str]) -> bool {
    let order: Vec<_> =
        ids.iter().map(|id| task_id_order(id).expect("an id of the documented form")).collect();
    order.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn a_task_stream_has_ids_that_grow_and_resumes_after_the_last_one() {
    let server = Server::start(TEXT_ONLY, &[]);
    let id = enqueue(&server, json!({"op": "progress", "steps": 4, "step_ms": 400}));
    let path = format!("/api/tasks/{id}/events");
    let mut first = open(&server, &path, &[], READ);
    assert_eq!(first.status, 200, "{}", first.head);
    let seen = first.read(20, |m| m.event == "progress" && m.data["progress"] == 50);
    assert_eq!(first.retry, [3000], "the stream opens with a retry hint");
    assert_eq!(seen.first().map(|m| m.event.as_str()), Some("status"), "{seen:?}");
    assert_eq!(seen.last().map(|m| &m.data["progress"]), Some(&json!(50)), "{seen:?}");
    assert!(increasing(&ids(&seen)), "{seen:?}");
    let last = seen.last().and_then(|m| m.id.clone()).expect("an id");
    assert_eq!(last, "1.1.50");
    drop(first);

    // Reconnect as EventSource does: only what came after 50.
    let mut again = open(&server, &path, &[("Last-Event-ID", &last)], READ);
    assert_eq!(again.status, 200, "{}", again.head);
    let rest = again.read(20, |m| m.event == "result");
    assert_eq!(rest.last().map(|m| m.event.as_str()), Some("result"), "{rest:?}");
    let mut all = vec![last.as_str()];
    all.extend(ids(&rest));
    assert!(increasing(&all), "only later events after {last}: {rest:?}");
    assert!(!rest.iter().any(|m| m.event == "progress" && m.data["progress"] == 50), "{rest:?}");
    assert!(again.ends(), "the stream ends after the result");
}

#[test]
fn an_ended_task_sends_its_result_once_and_a_reconnect_with_its_id_gets_204() {
    let server = Server::start(TEXT_ONLY, &[]);
    let done = execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    assert_eq!(done.status, 200, "{done:?}");
    let path = format!("/api/tasks/{}/events", done.body["id"].as_str().unwrap());

    let mut stream = open(&server, &path, &[], READ);
    assert_eq!(stream.status, 200, "{}", stream.head);
    let messages = stream.read(10, |_| false);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0].event.as_str(), &messages[0].data["status"]), ("result", &json!("completed")));
    assert_eq!(stream.retry, [3000]);
    let final_id = messages[0].id.clone().expect("the result has an id");
    assert_eq!(final_id, "1.end");

    let reconnect = open(&server, &path, &[("Last-Event-ID", &final_id)], READ);
    assert_eq!(reconnect.status, 204, "{}", reconnect.head);

    // Without the header (or with another id) a new request still gets the result once.
    for headers in [vec![], vec![("Last-Event-ID", "1.1.100")]] {
        let mut stream = open(&server, &path, &headers, READ);
        let messages = stream.read(10, |_| false);
        let names: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
        assert_eq!(names, ["result"], "{headers:?}");
    }
}

#[test]
fn a_garbage_last_event_id_gets_the_current_state() {
    let server = Server::start(TEXT_ONLY, &[]);
    let id = enqueue(&server, json!({"op": "sleep", "ms": 30_000}));
    assert!(wait_for(
        Duration::from_secs(20),
        || get(&server.url(&format!("/api/tasks/{id}"))).body["status"] == "running"
    ));
    let path = format!("/api/tasks/{id}/events");
    for garbage in ["garbage", "1.1.999", "", "9999999999999999999.end", "\u{e9}t\u{e9}"] {
        let mut stream = open(&server, &path, &[("Last-Event-ID", garbage)], READ);
        assert_eq!(stream.status, 200, "{garbage:?}: {}", stream.head);
        let first = stream.read(1, |_| true);
        assert_eq!(first.len(), 1, "{garbage:?}");
        assert_eq!((first[0].event.as_str(), &first[0].data["status"]), ("status", &json!("running")));
        assert_eq!(first[0].id.as_deref(), Some("1.1"), "{garbage:?}");
    }
    // An id the client has already: nothing until something happens (the cancel's result).
    let mut current = open(&server, &path, &[("Last-Event-ID", "1.1")], READ);
    assert_eq!(current.status, 200);
    assert_eq!(delete(&server.url(&format!("/api/tasks/{id}")), None).status, 200);
    let after = current.read(5, |m| m.event == "result");
    let names: Vec<&str> = after.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(names, ["result"], "{after:?}");
    assert_eq!(after[0].data["status"], "cancelled");
}

#[test]
fn a_slow_pool_stream_client_is_told_how_many_events_it_lost() {
    let server = Server::start(TEXT_ONLY, &[]);
    // A small receive window, and no reading until the pool has sent far more events than
    // the stream buffers (8192): the server's writes stall and its subscription falls behind.
    let mut stream = open_with(&server, "/api/workers/events", &[], READ, |s| {
        s.set_recv_buffer_size(4096).expect("a receive buffer size");
    });
    assert_eq!(stream.status, 200, "{}", stream.head);
    for _ in 0..5 {
        let r = execute(
            &server,
            json!({"type": "text_processing", "data": {"op": "progress", "steps": 10_000, "step_ms": 0}}),
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    let messages = stream.read(60_000, |m| m.event == "lagged");
    let lagged = messages.iter().position(|m| m.event == "lagged").expect("a lagged event");
    let lost = messages[lagged].data["lost_events"].as_u64().expect("lost_events");
    assert!(lost > 0, "{:?}", messages[lagged]);
    // Ids count the connection's events, the lost ones included.
    let number = |m: &Message| m.id.as_deref().and_then(|id| id.parse::<u64>().ok()).expect("a numeric id");
    let numbers: Vec<u64> = messages.iter().map(number).collect();
    assert!(numbers[..lagged].iter().enumerate().all(|(i, n)| *n == i as u64 + 1), "ids from 1, one apart");
    assert_eq!(numbers[lagged], lagged as u64 + lost + 1);
    assert_eq!(stream.retry, [3000]);
}

#[test]
fn task_progress_streams_over_sse() {
    let server = Server::start(TEXT_ONLY, &[]);
    let r = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "progress", "steps": 4, "step_ms": 50}, "options": {"wait": false}}),
    );
    let id = r.body["id"].as_str().unwrap().to_string();
    let (head, mut reader) = sse(&server, &format!("/api/tasks/{id}/events"), Duration::from_secs(20));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("content-type: text/event-stream"), "{head}");
    let events = read_events(&mut reader, 50, |e, _| e == "result");
    let progress: Vec<u64> =
        events.iter().filter(|(e, _)| e == "progress").filter_map(|(_, d)| d["progress"].as_u64()).collect();
    assert!(!progress.is_empty() && progress.windows(2).all(|w| w[0] < w[1]), "{events:?}");
    assert_eq!(progress.last(), Some(&100));
    let (last, record) = events.last().unwrap();
    assert_eq!((last.as_str(), record["status"].as_str()), ("result", Some("completed")));
    // The stream ends after the result.
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(!rest.contains("event:"), "{rest}");
}

#[test]
fn pool_events_stream_over_sse() {
    let server = Server::start(TEXT_ONLY, &[]);
    let (head, mut reader) = sse(&server, "/api/workers/events", Duration::from_secs(20));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    let events = read_events(&mut reader, 20, |e, _| e == "task_completed");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "task_completed");
    assert_eq!(data["event"], "task_completed");
    assert_eq!(data["data"]["task_type"], "text_processing");
    assert!(data["instance_id"].is_string() && data["timestamp"].is_u64(), "{data}");
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert!(names.contains(&"task_assigned"), "{names:?}");
}
