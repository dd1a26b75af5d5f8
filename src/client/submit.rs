//! `workerpool submit`: queues a task, then follows it to its end and prints its result.

use serde_json::{Value, json};

use super::args::SubmitArgs;
use super::error::ClientError;
use super::follow::follow_to_end;
use super::http::Client;
use super::output::print_stdout;
use super::waiting::OnInterrupt;

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
    let queued = client.post_json("/api/workers/execute", Some(&body))?;
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
    let note = format!("task {id} submitted ({}), waiting for it to finish", args.task_type);
    let interrupt = if args.cancel_on_interrupt { OnInterrupt::Cancel } else { OnInterrupt::Leave };
    follow_to_end(&client, &id, &args.wait, interrupt, Some(note))
}
