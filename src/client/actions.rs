//! The commands that act on a running server and report in a line: `cancel`, `requeue`,
//! `scale`, `restart`; and `watch`, which follows a task already submitted.

use serde_json::{Value, json};

use super::args::{Direction, RestartArgs, ScaleArgs, TaskArgs, WatchArgs};
use super::error::ClientError;
use super::follow::follow_to_end;
use super::http::{Client, segment, task_path};
use super::output::{num, report};
use super::waiting::OnInterrupt;

/// `workerpool cancel ID`: cancels a waiting or running task.
pub fn cancel(args: &TaskArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let record = client.delete_json(&task_path(segment(&args.id)?))?;
    report(args.json, &record, || cancelled_line(&args.id, &record))
}

/// `workerpool requeue ID`: queues a dead-lettered task again, with fresh attempts.
pub fn requeue(args: &TaskArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let answer = client.post_json(&format!("{}/requeue", task_path(segment(&args.id)?)), None)?;
    report(args.json, &answer, || format!("task {} queued again", args.id))
}

/// `workerpool scale TYPE up|down N`.
pub fn scale(args: &ScaleArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let action = match args.direction {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    let body = json!({ "action": action, "count": args.count });
    let answer =
        client.post_json(&format!("/api/workers/scale/{}", segment(&args.task_type)?), Some(&body))?;
    report(args.json, &answer, || scaled_line(&args.task_type, args.direction, &answer))
}

/// `workerpool restart WORKER`: replaces one worker; its task goes back to the queue.
pub fn restart(args: &RestartArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let answer = client.post_json(&format!("/api/workers/restart/{}", segment(&args.worker)?), None)?;
    report(args.json, &answer, || format!("worker {} restarted", args.worker))
}

/// `workerpool watch ID`: follows a task to its end, as `submit` does after queuing it.
pub fn watch(args: &WatchArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    // The task must exist before the wait (and its --wait-timeout) starts: an unknown id is
    // the server's 404.
    client.get_json(&task_path(segment(&args.id)?))?;
    follow_to_end(&client, &args.id, &args.wait, OnInterrupt::Leave, None)
}

/// The line `cancel` prints for the record the server answered.
fn cancelled_line(id: &str, record: &Value) -> String {
    match record.get("worker_id").and_then(Value::as_str) {
        Some(worker) => format!("task {id} cancelled (its worker {worker} is replaced)"),
        None => format!("task {id} cancelled"),
    }
}

/// The line `scale` prints for the server's `{"type","workers","started","waiting","gpu_wait"}`.
fn scaled_line(task_type: &str, direction: Direction, answer: &Value) -> String {
    let count = |k: &str| num(answer, k);
    if direction == Direction::Down {
        return format!("{task_type}: {} workers", count("workers"));
    }
    let mut line = format!("{task_type}: {} workers ({} starting now", count("workers"), count("started"));
    if count("waiting") > 0 {
        line.push_str(&format!(", {} waiting", count("waiting")));
    }
    line.push(')');
    if let Some(why) = answer.get("gpu_wait").and_then(Value::as_str) {
        line.push_str(&format!("; {why}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_happened() {
        let scaled = json!({"type": "t", "workers": 2, "started": 1, "waiting": 1, "gpu_wait": "waiting for GPU room"});
        assert_eq!(
            scaled_line("t", Direction::Up, &scaled),
            "t: 2 workers (1 starting now, 1 waiting); waiting for GPU room"
        );
        let scaled = json!({"type": "t", "workers": 0, "started": 0, "waiting": 0, "gpu_wait": null});
        assert_eq!(scaled_line("t", Direction::Up, &scaled), "t: 0 workers (0 starting now)");
        assert_eq!(scaled_line("t", Direction::Down, &scaled), "t: 0 workers");
        assert_eq!(
            cancelled_line("x", &json!({"worker_id": "t-1"})),
            "task x cancelled (its worker t-1 is replaced)"
        );
        assert_eq!(cancelled_line("x", &json!({"worker_id": null})), "task x cancelled");
    }
}
