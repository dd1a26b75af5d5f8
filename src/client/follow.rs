//! Following one task to its end (`submit` and `watch`): the event stream first, polling the
//! record when the stream breaks; then its result on stdout, or its failure as an error.

use std::io::BufReader;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::Response;

use super::args::WaitArgs;
use super::error::ClientError;
use super::http::{Client, task_path};
use super::output::{format_duration_ms, print_stdout, truncate};
use super::progress::Bar;
use super::record::{is_final, status_of};
use super::sse::{SseParser, read_line};
use super::waiting::{OnInterrupt, Waiting};

/// How often the fallback polls the task record.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Follows task `id` to its end with a progress bar, then prints its result (or, with
/// `--json`, its final record). Ctrl-C and `--wait-timeout` end the wait as `interrupt` and
/// [`Waiting`] say; `note` goes to stderr (unless `--quiet`) once Ctrl-C is caught.
pub(super) fn follow_to_end(
    client: &Client,
    id: &str,
    wait: &WaitArgs,
    interrupt: OnInterrupt,
    note: Option<String>,
) -> Result<(), ClientError> {
    let waiting = Waiting::new(client, id, interrupt);
    waiting.arm(wait.wait_timeout.map(Duration::from_secs));
    if let Some(note) = note.filter(|_| !wait.quiet) {
        eprintln!("{note}");
    }
    let bar = Bar::new(wait.quiet);
    waiting.show(bar.handle());
    let started = Instant::now();
    let outcome = follow(client, id, &bar);
    waiting.disarm();
    let record = outcome?;
    let note = bar.visible();
    drop(bar);
    finish(id, &record, started, note, wait.json)
}

/// Prints the result of a final record (or the whole record with `json`), or turns a failure
/// into [`ClientError::TaskEnded`].
fn finish(id: &str, record: &Value, started: Instant, note: bool, json: bool) -> Result<(), ClientError> {
    let status = status_of(record);
    if json {
        print_stdout(&record.to_string())?;
    }
    if status != "completed" {
        let error = record.get("error").and_then(Value::as_str).map(str::to_string);
        return Err(ClientError::TaskEnded { id: id.to_string(), status: status.to_string(), error });
    }
    if note {
        eprintln!("task {id} completed in {}", format_duration_ms(started.elapsed().as_millis() as u64));
    }
    if json {
        return Ok(());
    }
    let result = record.get("result").cloned().unwrap_or(Value::Null);
    let text = serde_json::to_string_pretty(&result).unwrap_or_else(|_| result.to_string());
    print_stdout(&text)
}

/// Follows a task to its final record: the event stream first, polling when it breaks.
fn follow(client: &Client, id: &str, bar: &Bar) -> Result<Value, ClientError> {
    match client.open_stream(&format!("{}/events", task_path(id))) {
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
            && let Ok(record) = client.get_json(&task_path(id))
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
    let path = task_path(id);
    loop {
        let record = client.get_json(&path)?;
        if is_final(&record) {
            return Ok(record);
        }
        bar.record(&record);
        std::thread::sleep(POLL_EVERY);
    }
}
