//! Executors: how a worker runs a task.
//!
//! - The process executor talks the contract's JSON-lines protocol (§4) with a long-lived
//!   child process: [`encode_task`] writes a task line, [`parse_line`] reads what the worker
//!   says. The child is spawned without a shell by [`crate::worker`].
//! - The in-process executor calls an async [`HandlerFn`] registered through the library.
//!
//! **Architecture Invariant:** child processes are only touched here and in `worker.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::task::TaskId;

/// An error a task returns: a message and whether another attempt may succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    /// What went wrong.
    pub message: String,
    /// Whether the pool may retry the task.
    pub retryable: bool,
}

impl TaskError {
    /// A retryable error.
    pub fn retryable(message: impl Into<String>) -> TaskError {
        TaskError { message: message.into(), retryable: true }
    }

    /// An error that no retry can fix.
    pub fn fatal(message: impl Into<String>) -> TaskError {
        TaskError { message: message.into(), retryable: false }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// The future an in-process handler returns. It runs on the pool's thread and need not be
/// `Send`.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, TaskError>>>>;

/// An in-process handler: called once per task attempt.
pub type HandlerFn = Arc<dyn Fn(TaskContext) -> HandlerFuture + Send + Sync>;

/// What an in-process handler gets: the task and a way to report progress.
pub struct TaskContext {
    pub(crate) id: TaskId,
    pub(crate) task_type: Arc<str>,
    pub(crate) data: Arc<Value>,
    pub(crate) attempt: u32,
    pub(crate) progress: Box<dyn Fn(u8, Option<String>) + Send>,
}

impl TaskContext {
    /// The task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The task's type.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }

    /// The input.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The input decoded into `T`; a shape mismatch is a non-retryable error naming the type.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        T::deserialize(&*self.data)
            .map_err(|e| TaskError::fatal(format!("invalid input for {}: {e}", self.task_type)))
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Reports progress (0–100, clamped) and an optional stage.
    pub fn progress(&self, percent: u8, stage: Option<&str>) {
        (self.progress)(percent.min(100), stage.map(str::to_string));
    }
}

/// Wraps a typed async function as a [`HandlerFn`].
pub(crate) fn typed_handler<I, O, F, Fut>(f: F) -> HandlerFn
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    F: Fn(I, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, TaskError>> + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |ctx: TaskContext| {
        let f = f.clone();
        Box::pin(async move {
            let input: I = ctx.input()?;
            let out = f(input, ctx).await?;
            serde_json::to_value(out).map_err(|e| TaskError::fatal(format!("cannot encode the result: {e}")))
        }) as HandlerFuture
    })
}

// ===== the JSON-lines protocol =====

/// One line a process worker wrote, understood.
#[derive(Debug, PartialEq)]
pub(crate) enum Line {
    Pong(u64),
    Progress { id: TaskId, progress: u8, stage: Option<String> },
    Result { id: TaskId, result: Value },
    Error { id: TaskId, error: String, retryable: bool },
    Invalid(String),
}

#[derive(Serialize)]
struct TaskLine<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    task_type: &'a str,
    data: &'a Value,
    attempt: u32,
}

/// The line that hands a task to a process worker, newline included.
pub(crate) fn encode_task(id: &TaskId, task_type: &str, data: &Value, attempt: u32) -> Vec<u8> {
    let line = TaskLine { id: id.as_str(), task_type, data, attempt };
    let mut buf = Vec::with_capacity(96);
    // Serialising a `Value` into a Vec cannot fail: its map keys are strings.
    let _ = serde_json::to_writer(&mut buf, &line);
    buf.push(b'\n');
    buf
}

/// The ping line.
pub(crate) fn encode_ping(n: u64) -> Vec<u8> {
    format!("{{\"ping\":{n}}}\n").into_bytes()
}

/// Reads one line written by a process worker (its bytes, without the newline).
pub(crate) fn parse_line(line: &[u8]) -> Line {
    let invalid = |why: &str| {
        let shown = String::from_utf8_lossy(&line[..line.len().min(800)]);
        Line::Invalid(format!("{why}: {}", truncate(&shown, 200)))
    };
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(line) else {
        return invalid("not a JSON object");
    };
    if let Some(pong) = map.get("pong") {
        return match pong.as_u64() {
            Some(n) => Line::Pong(n),
            None => invalid("pong is not a number"),
        };
    }
    let id = match map.remove("id") {
        Some(Value::String(id)) => TaskId::from(id),
        _ => return invalid("no string \"id\""),
    };
    if let Some(result) = map.remove("result") {
        return Line::Result { id, result };
    }
    if let Some(error) = map.remove("error") {
        let error = match error {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let retryable = map.get("retryable").and_then(Value::as_bool).unwrap_or(true);
        return Line::Error { id, error, retryable };
    }
    if let Some(p) = map.get("progress") {
        let Some(p) = p.as_f64() else {
            return invalid("progress is not a number");
        };
        let stage = map.remove("stage").and_then(|s| match s {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        return Line::Progress { id, progress: p.clamp(0.0, 100.0) as u8, stage };
    }
    invalid("none of result, error, progress")
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_every_kind_of_line() {
        assert_eq!(parse_line(br#"{"pong":7}"#), Line::Pong(7));
        assert_eq!(
            parse_line(br#"{"id":"a","progress":150,"stage":"x"}"#),
            Line::Progress { id: "a".into(), progress: 100, stage: Some("x".into()) }
        );
        assert_eq!(
            parse_line(br#"{"id":"a","result":null}"#),
            Line::Result { id: "a".into(), result: Value::Null }
        );
        assert_eq!(
            parse_line(br#"{"id":"a","error":"boom","retryable":false}"#),
            Line::Error { id: "a".into(), error: "boom".into(), retryable: false }
        );
        assert_eq!(
            parse_line(br#"{"id":"a","error":"boom"}"#),
            Line::Error { id: "a".into(), error: "boom".into(), retryable: true }
        );
        for bad in ["", "[]", "{\"id\":1,\"result\":2}", "{\"id\":\"a\"}", "{\"pong\":\"x\"}", "\u{fffd}"] {
            assert!(matches!(parse_line(bad.as_bytes()), Line::Invalid(_)), "{bad}");
        }
        // Bytes that are not UTF-8 are an invalid line, not an error of the reader.
        assert!(matches!(parse_line(b"{\"id\":\"\xff\"}"), Line::Invalid(_)));
    }

    #[test]
    fn encodes_a_task_line() {
        let line = encode_task(&"t1".into(), "text", &json!({"a": 1}), 2);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v, json!({"id": "t1", "type": "text", "data": {"a": 1}, "attempt": 2}));
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
