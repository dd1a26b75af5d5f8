//! A task's hash in Redis read as a [`TaskRecord`] (the fields are listed in `docs/REDIS.md`,
//! "Task hash fields"). The hash is written only by the scripts; this is its one reader.

use std::collections::HashMap;

use serde_json::Value;

use crate::task::{Progress, TaskId, TaskRecord, TaskResources, TaskStatus};

/// A task record from its hash; `None` for a missing (or unreadable) task.
pub(super) fn record_from_hash(id: &TaskId, h: &HashMap<String, String>) -> Option<TaskRecord> {
    let status = status_from(h.get("status")?)?;
    let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok());
    let json = |k: &str| h.get(k).and_then(|v| serde_json::from_str::<Value>(v).ok());
    Some(TaskRecord {
        id: id.clone(),
        task_type: h.get("type").cloned().unwrap_or_default(),
        status,
        priority: h.get("priority").and_then(|v| v.parse().ok()).unwrap_or(0),
        attempts: num("attempts").unwrap_or(0) as u32,
        max_retries: num("max_retries").unwrap_or(0) as u32,
        created_at: num("created_at").unwrap_or(0),
        started_at: num("started_at"),
        finished_at: num("finished_at"),
        progress: h.get("progress").and_then(|v| serde_json::from_str::<Progress>(v).ok()),
        result: if status == TaskStatus::Completed { json("result") } else { None },
        error: h.get("error").filter(|e| !e.is_empty()).cloned(),
        worker_id: h.get("worker_id").filter(|w| !w.is_empty()).cloned(),
        worker_pid: None,
        instance_id: h.get("instance").filter(|i| !i.is_empty()).cloned(),
        resources: h.get("resources").and_then(|v| serde_json::from_str::<TaskResources>(v).ok()),
    })
}

/// A status as the hash stores it (`TaskStatus::as_str`); `None` for anything else.
fn status_from(text: &str) -> Option<TaskStatus> {
    Some(match text {
        "queued" => TaskStatus::Queued,
        "running" => TaskStatus::Running,
        "completed" => TaskStatus::Completed,
        "failed" => TaskStatus::Failed,
        "timed_out" => TaskStatus::TimedOut,
        "cancelled" => TaskStatus::Cancelled,
        "dead" => TaskStatus::Dead,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(fields: &[(&str, &str)]) -> HashMap<String, String> {
        fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_completed_hash_reads_as_its_record() {
        let id = TaskId::from("t1".to_string());
        let h = hash(&[
            ("type", "echo"),
            ("status", "completed"),
            ("priority", "5"),
            ("attempts", "2"),
            ("max_retries", "3"),
            ("created_at", "10"),
            ("finished_at", "20"),
            ("result", r#"{"ok":true}"#),
            ("progress", r#"{"progress":100,"stage":"done"}"#),
            ("error", ""),
            ("worker_id", "w-1"),
            ("instance", "a"),
        ]);
        let r = record_from_hash(&id, &h).expect("a record");
        assert_eq!((r.status, r.priority, r.attempts, r.max_retries), (TaskStatus::Completed, 5, 2, 3));
        assert_eq!((r.created_at, r.started_at, r.finished_at), (10, None, Some(20)));
        assert_eq!(r.result, Some(serde_json::json!({"ok": true})));
        assert_eq!(r.progress.map(|p| p.progress), Some(100));
        assert_eq!(
            (r.error, r.worker_id.as_deref(), r.instance_id.as_deref()),
            (None, Some("w-1"), Some("a"))
        );
    }

    #[test]
    fn a_missing_or_unknown_status_is_no_record() {
        let id = TaskId::from("t1".to_string());
        assert_eq!(record_from_hash(&id, &hash(&[])), None);
        assert_eq!(record_from_hash(&id, &hash(&[("status", "lost")])), None);
        // A result is read only from a completed task.
        let failed =
            record_from_hash(&id, &hash(&[("status", "failed"), ("result", "1")])).expect("a record");
        assert_eq!(failed.result, None);
    }
}
