//! What a task record (`GET /api/tasks/{id}`, or the data of a `status` event) says to the
//! client: its status, whether it is final, and the line that describes a task still going.

use serde::Deserialize;
use serde_json::Value;
use workerpool_actors::TaskStatus;

use super::output::{one_line, truncate};

/// The record's `status`, or `""` when it has none.
pub(super) fn status_of(record: &Value) -> &str {
    record.get("status").and_then(Value::as_str).unwrap_or("")
}

/// Whether the record is the task's last: it ended and will not change any more. The rule
/// is the library's ([`TaskStatus::is_final`]); a status this client does not know is not
/// final.
pub(super) fn is_final(record: &Value) -> bool {
    record.get("status").and_then(|s| TaskStatus::deserialize(s).ok()).is_some_and(TaskStatus::is_final)
}

/// The progress bar's message for a (non-final) task record, on one line.
pub(super) fn record_message(record: &Value) -> String {
    one_line(&describe(record))
}

fn describe(record: &Value) -> String {
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

    #[test]
    fn final_is_the_library_rule_on_the_status_name() {
        for status in ["completed", "failed", "timed_out", "cancelled", "dead"] {
            assert!(is_final(&json!({ "status": status })), "{status}");
        }
        for status in ["queued", "running", "Completed", "finished", ""] {
            assert!(!is_final(&json!({ "status": status })), "{status}");
        }
        assert!(!is_final(&json!({})));
        assert!(!is_final(&json!({ "status": 3 })));
    }
}
