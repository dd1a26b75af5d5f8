//! `workerpool submit`: queues a task, then follows it to its end (the event stream first,
//! polling the record when the stream breaks) and prints its result.

use std::io::BufReader;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ureq::http::Response;

use super::args::SubmitArgs;
use super::error::ClientError;
use super::http::Client;
use super::output::{format_duration_ms, print_stdout, truncate};
use super::progress::Bar;
use super::record::{is_final, status_of};
use super::sse::{SseParser, read_line};

/// How often the fallback polls the task record.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// `workerpool submit`: queues a task; unless `--no-wait`, follows it to the end with a
/// progress bar and prints its result to stdout.
pub fn submit(args: &SubmitArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let mut options = serde_json::Map::new();
    options.insert("wait".into(), json!(false));
    let optional = [
        ("priority", args.priority.map(Value::from)),
        ("timeout", args.timeout.map(Value::from)),
        ("max_retries", args.max_retries.map(Value::from)),
        ("delay", args.delay.map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            options.insert(key.into(), v);
        }
    }
    let body = json!({ "type": args.task_type, "data": args.data, "options": options });
    let queued = client.post_json("/api/workers/execute", &body)?;
    let Some(id) = queued.get("id").and_then(Value::as_str).map(str::to_string) else {
        return Err(ClientError::Unexpected {
            url: client.url("/api/workers/execute"),
            reason: format!("no task id in {queued}"),
        });
    };
    let status = queued.get("status").and_then(Value::as_str).unwrap_or("queued");
    if args.no_wait {
        return print_stdout(&json!({ "id": id, "status": status }).to_string());
    }
    if !args.quiet {
        eprintln!("task {id} submitted ({}), waiting for it to finish", args.task_type);
    }
    let bar = Bar::new(args.quiet);
    let started = Instant::now();
    let record = follow(&client, &id, &bar)?;
    let note = bar.visible();
    drop(bar);
    finish(&id, &record, started, note)
}

/// Prints the result of a final record, or turns a failure into [`ClientError::TaskEnded`].
fn finish(id: &str, record: &Value, started: Instant, note: bool) -> Result<(), ClientError> {
    let status = status_of(record);
    if status != "completed" {
        let error = record.get("error").and_then(Value::as_str).map(str::to_string);
        return Err(ClientError::TaskEnded { id: id.to_string(), status: status.to_string(), error });
    }
    let result = record.get("result").cloned().unwrap_or(Value::Null);
    let text = serde_json::to_string_pretty(&result).unwrap_or_else(|_| result.to_string());
    if note {
        eprintln!("task {id} completed in {}", format_duration_ms(started.elapsed().as_millis() as u64));
    }
    print_stdout(&text)
}

/// Follows a task to its final record: the event stream first, polling when it breaks.
fn follow(client: &Client, id: &str, bar: &Bar) -> Result<Value, ClientError> {
    match client.open_events(id) {
        Ok(Some(res)) => match read_events(client, id, res, bar) {
            Ok(Some(record)) => return Ok(record),
            Ok(None) => log::debug!("the event stream of {id} ended without a result; polling"),
            Err(e) => log::debug!("the event stream of {id} broke ({e}); polling"),
        },
        Ok(None) => {}
        Err(e @ (ClientError::Server { .. } | ClientError::Unreachable { .. })) => return Err(e),
        Err(e) => log::debug!("cannot open the event stream of {id} ({e}); polling"),
    }
    poll(client, id, bar)
}

/// Reads an event stream until its `result` event; `Ok(None)` when it ends without a final
/// record. At each keep-alive (a quiet stream) the task record is looked at too, so a lost
/// event cannot keep the client waiting.
fn read_events(
    client: &Client,
    id: &str,
    res: Response<ureq::Body>,
    bar: &Bar,
) -> std::io::Result<Option<Value>> {
    let mut reader = BufReader::new(res.into_body().into_reader());
    let mut parser = SseParser::new();
    while let Some(line) = read_line(&mut reader)? {
        if line.starts_with(':')
            && let Ok(record) = client.get_json(&format!("/api/tasks/{id}"))
            && is_final(&record)
        {
            return Ok(Some(record));
        }
        let Some(event) = parser.feed(&line) else { continue };
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            log::debug!("ignoring an event with data that is not JSON: {}", truncate(&event.data, 100));
            continue;
        };
        match event.event.as_str() {
            "progress" => bar.progress(&data),
            "result" | "status" if is_final(&data) => return Ok(Some(data)),
            // The server may announce the end before its record says so: ask the record.
            "result" => return Ok(None),
            "status" => bar.record(&data),
            _ => {}
        }
    }
    Ok(None)
}

/// Polls the task record every [`POLL_EVERY`] until it is final.
fn poll(client: &Client, id: &str, bar: &Bar) -> Result<Value, ClientError> {
    let path = format!("/api/tasks/{id}");
    loop {
        let record = client.get_json(&path)?;
        if is_final(&record) {
            return Ok(record);
        }
        bar.record(&record);
        std::thread::sleep(POLL_EVERY);
    }
}
