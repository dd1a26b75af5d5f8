//! `workerpool events`: the tail of the pool's events (`GET /api/workers/events`), a line
//! each, or the server's JSON; filtered by task type and event name.

use std::io::BufReader;

use serde_json::Value;

use super::args::EventsArgs;
use super::error::ClientError;
use super::http::Client;
use super::output::{one_line, print_stdout};
use super::sse::{SseParser, read_line};

const PATH: &str = "/api/workers/events";

/// `workerpool events`: prints events as they happen until interrupted, `--count` of them
/// were printed, or the stream ends (an error: the server went away).
pub fn events(args: &EventsArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let Some(res) = client.open_stream(PATH)? else {
        return Err(ClientError::Unexpected { url: client.url(PATH), reason: "no event stream".into() });
    };
    let mut reader = BufReader::new(res.into_body().into_reader());
    let mut parser = SseParser::new();
    let mut printed = 0u64;
    let broken = |reason: String| ClientError::Transport { url: client.url(PATH), reason };
    while args.count.is_none_or(|n| printed < n) {
        let Some(line) = read_line(&mut reader).map_err(|e| broken(e.to_string()))? else {
            return Err(broken("the server ended the event stream".into()));
        };
        let Some(event) = parser.feed(&line) else { continue };
        let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
            log::debug!("ignoring an event whose data is not JSON");
            continue;
        };
        if event.event == "lagged" {
            let lost = message.get("lost_events").and_then(Value::as_u64).unwrap_or(0);
            eprintln!("workerpool: {lost} events were lost: this client fell behind");
            continue;
        }
        if !wanted(args, &event.event, &message) {
            continue;
        }
        let text = if args.json { message.to_string() } else { event_line(&event.event, &message) };
        print_stdout(&text)?;
        printed += 1;
    }
    Ok(())
}

/// Whether an event passes `--type` and `--event`.
fn wanted(args: &EventsArgs, name: &str, message: &Value) -> bool {
    let of_type = match &args.task_type {
        Some(t) => message.pointer("/data/task_type").and_then(Value::as_str) == Some(t.as_str()),
        None => true,
    };
    of_type && (args.events.is_empty() || args.events.iter().any(|e| e == name))
}

/// One event as a line: its UTC time, name and type, then its other fields as `key=value`.
pub(super) fn event_line(name: &str, message: &Value) -> String {
    let name = one_line(name);
    let mut line = match message.get("timestamp").and_then(Value::as_u64) {
        Some(ms) => format!("{} {name}", utc_time(ms)),
        None => name,
    };
    let data = message.get("data").and_then(Value::as_object);
    if let Some(t) = data.and_then(|d| d.get("task_type")).and_then(Value::as_str) {
        line.push(' ');
        line.push_str(&one_line(t));
    }
    for (key, value) in data.into_iter().flatten().filter(|(k, _)| *k != "task_type") {
        match value {
            Value::String(s) => line.push_str(&format!(" {key}={}", one_line(s))),
            other => line.push_str(&format!(" {key}={other}")),
        }
    }
    line
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
fn utc_time(ms: u64) -> String {
    let secs = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}.{:03}", secs / 3600, secs % 3600 / 60, secs % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(task_type: Option<&str>, events: &[&str]) -> EventsArgs {
        EventsArgs {
            task_type: task_type.map(str::to_string),
            events: events.iter().map(|e| e.to_string()).collect(),
            count: None,
            json: false,
            connect: crate::client::ConnectArgs {
                server: crate::client::DEFAULT_SERVER.into(),
                token: None,
                ca_file: None,
            },
        }
    }

    #[test]
    fn events_read_as_lines() {
        let m = json!({"event": "task_completed", "timestamp": 1_795_511_249_546u64, "instance_id": "i",
            "data": {"task_type": "text_processing", "task_id": "t-1", "worker_id": "w-1", "duration_ms": 4}});
        assert_eq!(
            event_line("task_completed", &m),
            "09:07:29.546 task_completed text_processing duration_ms=4 task_id=t-1 worker_id=w-1"
        );
        let m = json!({"data": {"task_type": "t", "error": "two\nlines \u{1b}[2J"}});
        assert_eq!(event_line("task_failed", &m), "task_failed t error=two\\nlines \\u{1b}[2J");
        let m = json!({"data": {"total": 2, "busy": 0, "queued": 0}});
        assert_eq!(event_line("pool_status", &m), "pool_status busy=0 queued=0 total=2");
    }

    #[test]
    fn filters_take_type_and_name() {
        let m = json!({"data": {"task_type": "a"}});
        assert!(wanted(&args(None, &[]), "task_failed", &m));
        assert!(wanted(&args(Some("a"), &["task_failed"]), "task_failed", &m));
        assert!(!wanted(&args(Some("b"), &[]), "task_failed", &m));
        assert!(!wanted(&args(None, &["task_completed"]), "task_failed", &m));
        // An event of no type (pool_status) is not one of type "a".
        assert!(!wanted(&args(Some("a"), &[]), "pool_status", &json!({"data": {"total": 1}})));
    }
}
