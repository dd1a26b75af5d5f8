//! The wire format: parsing a line from the pool and writing the worker's answers.
//!
//! Parsing is a single `serde_json` pass over the line's bytes. The `id` and `type` strings
//! borrow from the line buffer (unless they contain escapes), so the echo hot path allocates
//! nothing beyond the task's `data`. Every answer is serialised straight into the output writer
//! and flushed with its newline.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One line from the pool, as it can be recognised.
#[derive(Debug)]
pub(super) enum Line<'a> {
    /// A health check, `{"ping":N}`; `N` is answered back as it came.
    Ping(Value),
    /// A task to run.
    Task(Task<'a>),
}

/// A task line, `{"id","type","data","attempt"}`, with its strings borrowed from the line.
#[derive(Debug)]
pub(super) struct Task<'a> {
    /// The task id the pool assigned; every answer line repeats it.
    pub(super) id: Cow<'a, str>,
    /// The task type, e.g. `text_processing`.
    pub(super) kind: Cow<'a, str>,
    /// The task's parameters: any JSON value, `null` when missing.
    pub(super) data: Value,
    /// Which attempt this is, from 1 (1 when missing).
    pub(super) attempt: u64,
}

/// A line that is not a valid ping or task.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed {
    /// Why the line was refused, for the log and the error answer.
    pub(super) reason: String,
    /// The task id, when one could be recovered from the line.
    pub(super) id: Option<String>,
}

/// A failed task: the message and whether the pool may try it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TaskError {
    /// What went wrong, in lowercase and without a trailing period.
    pub(super) message: String,
    /// Whether running the same task again may succeed.
    pub(super) retryable: bool,
}

/// A task's result, as it goes into `{"id","result"}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum Output<'d> {
    /// `{"echo": data, "pid": pid}`, borrowing the task's data rather than copying it.
    Echo {
        /// The task's `data`, as it came.
        echo: &'d Value,
        /// This process's id.
        pid: u32,
    },
    /// Any other result.
    Json(Value),
}

/// Where a task reports its progress while it runs.
pub(super) trait Progress {
    /// Reports that the task is `percent` (0 to 100) done and is now in `stage`.
    fn report(&mut self, percent: u8, stage: &str);
}

/// A [`Progress`] that writes `{"id","progress","stage"}` lines to the pool.
///
/// A write error is kept rather than returned, so that task code need not deal with I/O; the
/// caller collects it with [`LineProgress::finish`] once the task is over.
pub(super) struct LineProgress<'a, W> {
    out: &'a mut W,
    id: &'a str,
    failed: Option<io::Error>,
}

/// The raw shape of a line, decoded in one pass; [`parse`] turns it into a [`Line`].
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow, default)]
    id: Option<BorrowedStr<'a>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<BorrowedStr<'a>>,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    attempt: Option<u64>,
    #[serde(default)]
    ping: Option<Value>,
}

/// A string that borrows from the input when it holds no escapes.
///
/// The newtype is needed because serde only borrows a `Cow<str>` that is a field of its own,
/// not one inside an `Option`.
#[derive(Deserialize)]
struct BorrowedStr<'a>(#[serde(borrow)] Cow<'a, str>);

/// `{"id","result"}`.
#[derive(Serialize)]
struct ResultLine<'a, T> {
    id: &'a str,
    result: T,
}

/// `{"id","error","retryable"}`.
#[derive(Serialize)]
struct ErrorLine<'a> {
    id: &'a str,
    error: &'a str,
    retryable: bool,
}

/// `{"id","progress","stage"}`.
#[derive(Serialize)]
struct ProgressLine<'a> {
    id: &'a str,
    progress: u8,
    stage: &'a str,
}

/// `{"pong":N}`.
#[derive(Serialize)]
struct Pong<'a> {
    pong: &'a Value,
}

/// Parses one line (without its newline) into a ping or a task.
pub(super) fn parse(line: &[u8]) -> Result<Line<'_>, Malformed> {
    let incoming: Incoming<'_> = match serde_json::from_slice(line) {
        Ok(incoming) => incoming,
        Err(error) => return Err(explain(line, &error)),
    };
    match incoming {
        Incoming { id: Some(BorrowedStr(id)), kind: Some(BorrowedStr(kind)), data, attempt, .. } => {
            Ok(Line::Task(Task { id, kind, data, attempt: attempt.unwrap_or(1) }))
        }
        Incoming { id: Some(BorrowedStr(id)), kind: None, .. } => {
            Err(Malformed { reason: "missing field 'type'".to_owned(), id: Some(id.into_owned()) })
        }
        Incoming { id: None, ping: Some(n), .. } => Ok(Line::Ping(n)),
        Incoming { id: None, .. } => {
            Err(Malformed { reason: "expected a task with an 'id' or a ping".to_owned(), id: None })
        }
    }
}

/// Writes `{"pong":n}`.
pub(super) fn write_pong<W: Write>(out: &mut W, n: &Value) -> io::Result<()> {
    write_line(out, &Pong { pong: n })
}

/// Writes `{"id","result"}`.
pub(super) fn write_result<W: Write, T: Serialize>(out: &mut W, id: &str, result: &T) -> io::Result<()> {
    write_line(out, &ResultLine { id, result })
}

/// Writes `{"id","error","retryable"}`.
pub(super) fn write_error<W: Write>(out: &mut W, id: &str, error: &TaskError) -> io::Result<()> {
    write_line(out, &ErrorLine { id, error: &error.message, retryable: error.retryable })
}

/// Serialises `line` as one JSON line and flushes it, so the pool sees it at once.
fn write_line<W: Write, T: Serialize>(out: &mut W, line: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Works out why `line` did not parse, and recovers its id where it has one.
fn explain(line: &[u8], error: &serde_json::Error) -> Malformed {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(fields)) => {
            let id = fields.get("id");
            let reason = if id.is_some_and(|id| !id.is_string()) {
                "field 'id' must be a string".to_owned()
            } else if fields.get("type").is_some_and(|kind| !kind.is_string()) {
                "field 'type' must be a string".to_owned()
            } else {
                error.to_string()
            };
            Malformed { reason, id: id.and_then(Value::as_str).map(str::to_owned) }
        }
        Ok(_) => Malformed { reason: "expected a JSON object".to_owned(), id: None },
        Err(_) => Malformed { reason: error.to_string(), id: scan_id(line) },
    }
}

/// Finds `"id": "…"` in a line that is not valid JSON, e.g. one cut short.
pub(super) fn scan_id(line: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"id\"";
    let mut rest = line;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        if let Some(id) = quoted_value(rest) {
            return Some(id);
        }
    }
    None
}

/// Reads `: "…"` at the start of `bytes` and decodes the string.
fn quoted_value(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut escaped = false;
    for (i, &byte) in bytes.iter().enumerate().skip(1) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return serde_json::from_slice(&bytes[..=i]).ok(),
            _ => {}
        }
    }
    None
}

// ===== impl TaskError =====

impl TaskError {
    /// A failure that will happen again on a retry, e.g. invalid parameters.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false }
    }

    /// A failure with an explicit retry verdict.
    pub(super) fn new(message: impl Into<String>, retryable: bool) -> Self {
        Self { message: message.into(), retryable }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

// ===== impl LineProgress =====

impl<'a, W: Write> LineProgress<'a, W> {
    /// Reports progress for task `id` on `out`.
    pub(super) fn new(out: &'a mut W, id: &'a str) -> Self {
        Self { out, id, failed: None }
    }

    /// Ends the reporting, returning the first write error, if any.
    pub(super) fn finish(self) -> io::Result<()> {
        self.failed.map_or(Ok(()), Err)
    }
}

impl<W: Write> Progress for LineProgress<'_, W> {
    fn report(&mut self, percent: u8, stage: &str) {
        if self.failed.is_some() {
            return;
        }
        let line = ProgressLine { id: self.id, progress: percent.min(100), stage };
        if let Err(error) = write_line(self.out, &line) {
            self.failed = Some(error);
        }
    }
}

/// Collects reports in memory, for tests.
#[cfg(test)]
impl Progress for Vec<(u8, String)> {
    fn report(&mut self, percent: u8, stage: &str) {
        self.push((percent, stage.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_strings_borrow_from_the_line() {
        let line = br#"{"id":"t1","type":"text_processing","data":{"text":"hi"},"attempt":1}"#;
        let Ok(Line::Task(task)) = parse(line) else {
            panic!("not a task");
        };
        assert!(matches!(task.id, Cow::Borrowed("t1")));
        assert!(matches!(task.kind, Cow::Borrowed("text_processing")));
        assert_eq!(task.data, serde_json::json!({"text": "hi"}));
    }

    #[test]
    fn escaped_id_is_decoded() {
        let Ok(Line::Task(task)) = parse(br#"{"id":"a\"b","type":"x"}"#) else {
            panic!("not a task");
        };
        assert_eq!(task.id, "a\"b");
        assert_eq!(task.data, Value::Null);
    }

    #[test]
    fn ping_keeps_its_number() {
        let Ok(Line::Ping(n)) = parse(br#"{"ping":7}"#) else {
            panic!("not a ping");
        };
        let mut out = Vec::new();
        assert!(write_pong(&mut out, &n).is_ok());
        assert_eq!(out, b"{\"pong\":7}\n");
    }

    #[test]
    fn malformed_lines_keep_their_id_where_possible() {
        let missing_type = parse(br#"{"id":"a"}"#).err();
        assert_eq!(missing_type.and_then(|m| m.id), Some("a".to_owned()));

        let bad_type = parse(br#"{"id":"b","type":5}"#).err();
        assert_eq!(
            bad_type,
            Some(Malformed { reason: "field 'type' must be a string".to_owned(), id: Some("b".to_owned()) })
        );

        let cut_short = parse(br#"{"id" : "c\u0041", "type":"x","data":{"#).err();
        assert_eq!(cut_short.and_then(|m| m.id), Some("cA".to_owned()));

        let no_id = parse(b"not json").err();
        assert_eq!(no_id.map(|m| m.id), Some(None));
        assert_eq!(parse(b"[1,2]").err().map(|m| m.id), Some(None));
    }

    #[test]
    fn progress_lines_are_written_and_clamped() {
        let mut out = Vec::new();
        let mut progress = LineProgress::new(&mut out, "t");
        progress.report(150, "done");
        assert!(progress.finish().is_ok());
        assert_eq!(out, b"{\"id\":\"t\",\"progress\":100,\"stage\":\"done\"}\n");
    }
}
