//! `workerpool dead-letters TYPE`: the tasks of a type that ran out of attempts, as a table
//! (`GET /api/workers/dead-letters/{type}`), or the server's JSON.

use serde_json::Value;

use super::args::DeadLettersArgs;
use super::error::ClientError;
use super::http::{Client, segment};
use super::output::{format_duration_ms, one_line, report, text, truncate};
use super::table::Table;

/// The longest error shown in a row; `--json` has them whole.
const ERROR_WIDTH: usize = 60;

/// `workerpool dead-letters TYPE`.
pub fn dead_letters(args: &DeadLettersArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let body = client.get_json(&format!("/api/workers/dead-letters/{}", segment(&args.task_type)?))?;
    report(args.json, &body, || render_dead_letters(&args.task_type, &body, now_ms()).trim_end().to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The table of dead letters, newest last, with how long ago each ended (`now_ms` is the
/// current Unix time in ms).
pub(super) fn render_dead_letters(task_type: &str, body: &Value, now_ms: u64) -> String {
    let tasks = body.get("tasks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if tasks.is_empty() {
        return format!("no dead letters for {task_type}\n");
    }
    let mut table = Table::new(&["ID", "STATUS", "ATTEMPTS", "ENDED", "ERROR"]);
    for t in tasks {
        let text = |k: &str| text(t, k).to_string();
        let ended = t
            .get("finished_at")
            .and_then(Value::as_u64)
            .map_or("-".to_string(), |at| format!("{} ago", format_duration_ms(now_ms.saturating_sub(at))));
        let error = one_line(&truncate(&text("error"), ERROR_WIDTH));
        let attempts = t.get("attempts").and_then(Value::as_u64).map_or("-".to_string(), |a| a.to_string());
        table.row(vec![text("id"), text("status"), attempts, ended, error]);
    }
    let mut out =
        format!("{} dead letters for {task_type} (requeue one: workerpool requeue ID)\n\n", tasks.len());
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dead_letters_render_as_a_table() {
        let body = json!({"type": "t", "tasks": [
            {"id": "a-1", "status": "dead", "attempts": 2, "finished_at": 1_000, "error": "requested failure"},
            {"id": "a-3", "status": "dead", "attempts": 1, "finished_at": 1_000, "error": "two\nlines"},
            {"id": "a-2", "status": "timed_out", "attempts": 1, "finished_at": null, "error": null}
        ]});
        let out = render_dead_letters("t", &body, 61_000);
        assert!(out.starts_with("3 dead letters for t"), "{out}");
        assert!(out.contains("two\\nlines"), "{out}");
        assert!(out.contains("a-1  dead              2  1m 00s ago  requested failure"), "{out}");
        assert!(out.contains("a-2  timed_out         1  -           -"), "{out}");
        assert_eq!(render_dead_letters("t", &json!({"tasks": []}), 0), "no dead letters for t\n");
    }
}
