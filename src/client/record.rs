//! What a task record (`GET /api/tasks/{id}`, or the data of a `status` event) says to the
//! client: its status, whether it is final, and the line that describes a task still going.

use serde_json::Value;

use super::output::truncate;

/// Statuses after which a task does not change any more.
const FINAL_STATUSES: [&str; 5] = ["completed", "failed", "timed_out", "cancelled", "dead"];

/// The record's `status`, or `""` when it has none.
pub(super) fn status_of(record: &Value) -> &str {
    record.get("status").and_then(Value::as_str).unwrap_or("")
}

/// Whether the record is the task's last: it ended and will not change any more.
pub(super) fn is_final(record: &Value) -> bool {
    FINAL_STATUSES.contains(&status_of(record))
}

/// The progress bar's message for a (non-final) task record.
pub(super) fn record_message(record: &Value) -> String {
    let attempts = record.get("attempts").and_then(Value::as_u64).unwrap_or(0);
    let stage = record.pointer("/progress/stage").and_then(Value::as_str);
    match (status_of(record), stage) {
        ("queued", _) if attempts > 0 => match record.get("error").and_then(Value::as_str) {
            Some(e) => format!("waiting to retry (attempt {attempts} failed: {})", truncate(e, 60)),
            None => "waiting to retry".to_string(),
        },
        ("queued", _) => "queued".to_string(),
        ("running", Some(stage)) => stage.to_string(),
        ("running", None) if attempts > 1 => format!("running (attempt {attempts})"),
        ("running", None) => "running".to_string(),
        (other, _) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn record_messages_follow_the_task() {
        assert_eq!(record_message(&json!({"status": "queued", "attempts": 0})), "queued");
        assert_eq!(
            record_message(&json!({"status": "queued", "attempts": 1, "error": "boom"})),
            "waiting to retry (attempt 1 failed: boom)"
        );
        assert_eq!(
            record_message(&json!({"status": "running", "attempts": 2, "progress": null})),
            "running (attempt 2)"
        );
        assert_eq!(
            record_message(
                &json!({"status": "running", "attempts": 1, "progress": {"progress": 50, "stage": "step 2/4"}})
            ),
            "step 2/4"
        );
        assert!(is_final(&json!({"status": "dead"})));
        assert!(!is_final(&json!({"status": "running"})));
    }
}
