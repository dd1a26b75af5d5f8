//! The log: stderr, filtered by `RUST_LOG`; `LOG_FORMAT=json` writes one JSON object per
//! line, with a record's structured fields (the pool events' `event`, `worker_id`,
//! `task_id`, `type`, …) at the top level of the line beside `ts`, `level`, `target` and
//! `message`, never as a JSON string inside `message`. Known secrets and any URL's password
//! are shown as `***` in every line (`hide.rs`).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use log::kv::{self, Key, Source, Value, VisitSource};
use serde_json::{Map, Value as Json};

mod hide;

pub use hide::{hide, scrub};

/// Whether lines are JSON (`LOG_FORMAT=json`), set once by [`init`].
static JSON: AtomicBool = AtomicBool::new(false);

/// The keys every JSON line has; a field of the same name is written as `data_<name>`.
const RESERVED: [&str; 4] = ["ts", "level", "target", "message"];

/// Logs to stderr, filtered by `RUST_LOG` (else `default_filter`); `LOG_FORMAT=json` writes
/// one JSON object per line instead of env_logger's text.
pub fn init(default_filter: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    let json = format.eq_ignore_ascii_case("json");
    if json {
        builder.format(|buf, record| {
            let ts = buf.timestamp_millis().to_string();
            writeln!(buf, "{}", json_line(&ts, record))
        });
    }
    JSON.store(json, Ordering::Relaxed);
    let logger = builder.build();
    let level = logger.filter();
    if log::set_boxed_logger(Box::new(hide::Hiding(logger))).is_ok() {
        log::set_max_level(level);
    }
    if !json && !format.is_empty() && !format.eq_ignore_ascii_case("text") {
        log::warn!("LOG_FORMAT={format:?} is not known (expected json or text); writing text");
    }
}

/// Whether the log writes JSON lines, so a caller can leave out of the message what the
/// record's fields carry.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One log record as a JSON object: `ts`, `level`, `target`, `message`, in that order, then
/// the record's fields.
pub fn json_line(ts: &str, record: &log::Record<'_>) -> String {
    let field = |s: &str| Json::from(s).to_string();
    let mut line = format!(
        "{{\"ts\":{},\"level\":{},\"target\":{},\"message\":{}",
        field(ts),
        field(record.level().as_str()),
        field(record.target()),
        field(&record.args().to_string()),
    );
    let mut fields = Fields(Map::new());
    // A source that fails half way still leaves the fields read so far.
    let _ = record.key_values().visit(&mut fields);
    for (k, v) in fields.0 {
        let key = if RESERVED.contains(&k.as_str()) { format!("data_{k}") } else { k };
        line.push_str(&format!(",{}:{v}", field(&key)));
    }
    line.push('}');
    line
}

/// A pool event (as `EventKind` serializes: `{"event", "data"}`) as flat fields: `event`,
/// then each field of `data`, with `task_type` named `type`; data that is not an object
/// stays under `data`.
pub fn event_fields(kind: Json) -> Map<String, Json> {
    let mut out = Map::new();
    let Json::Object(mut kind) = kind else { return out };
    if let Some(event) = kind.remove("event") {
        out.insert("event".into(), event);
    }
    match kind.remove("data") {
        Some(Json::Object(data)) => {
            for (k, v) in data {
                let key = if k == "task_type" { "type".to_string() } else { k };
                out.entry(key).or_insert(v);
            }
        }
        Some(Json::Null) | None => {}
        Some(other) => {
            out.insert("data".into(), other);
        }
    }
    out
}

/// Structured fields of a record, for `log::RecordBuilder::key_values`, and what
/// [`json_line`] reads them into.
#[derive(Debug, Default)]
pub struct Fields(pub Map<String, Json>);

impl Source for Fields {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        for (k, v) in &self.0 {
            let value = match v {
                Json::String(s) => Value::from(s.as_str()),
                Json::Bool(b) => Value::from(*b),
                Json::Number(n) if n.is_u64() => Value::from(n.as_u64().unwrap_or_default()),
                Json::Number(n) if n.is_i64() => Value::from(n.as_i64().unwrap_or_default()),
                Json::Number(n) => Value::from(n.as_f64().unwrap_or_default()),
                // Objects, arrays and null: their JSON text, read back as JSON.
                other => Value::from_display(other),
            };
            visitor.visit_pair(Key::from_str(k), value)?;
        }
        Ok(())
    }
}

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let json = if let Some(s) = value.to_borrowed_str() {
            Json::from(s)
        } else if let Some(b) = value.to_bool() {
            Json::from(b)
        } else if let Some(n) = value.to_u64() {
            Json::from(n)
        } else if let Some(n) = value.to_i64() {
            Json::from(n)
        } else if let Some(n) = value.to_f64() {
            Json::from(n)
        } else {
            let text = value.to_string();
            serde_json::from_str(&text).unwrap_or(Json::String(text))
        };
        self.0.insert(key.as_str().to_string(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_log_lines_are_json_objects() {
        let line = json_line(
            "2024-01-02T03:04:05.678Z",
            &log::Record::builder()
                .level(log::Level::Warn)
                .target("workerpool::x")
                .args(format_args!("a \"quoted\"\nline"))
                .build(),
        );
        assert!(line.starts_with("{\"ts\":\"2024-01-02T03:04:05.678Z\",\"level\":\"WARN\""), "{line}");
        let v: Json = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["message"], "a \"quoted\"\nline");
        assert_eq!(v["target"], "workerpool::x");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn an_events_fields_are_at_the_top_level() {
        let kind = json!({"event": "task_failed", "data": {
            "task_id": "t-1", "task_type": "text", "worker_id": "text-1", "attempt": 2,
            "error": "boom", "message": "clash", "resources": {"wall_ms": 5}, "retry": null,
        }});
        let fields = Fields(event_fields(kind));
        let line = json_line(
            "ts",
            &log::Record::builder()
                .level(log::Level::Info)
                .target("workerpool::events")
                .args(format_args!("task_failed"))
                .key_values(&fields)
                .build(),
        );
        let v: Json = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["message"], "task_failed");
        assert_eq!((v["event"].as_str(), v["type"].as_str()), (Some("task_failed"), Some("text")));
        assert_eq!((v["task_id"].as_str(), v["worker_id"].as_str()), (Some("t-1"), Some("text-1")));
        assert_eq!((v["attempt"].as_u64(), v["resources"]["wall_ms"].as_u64()), (Some(2), Some(5)));
        assert_eq!(v["data_message"], "clash", "a reserved key is renamed, not lost");
        assert!(v.get("retry").is_some_and(Json::is_null));
        assert!(v.get("task_type").is_none());
    }

    #[test]
    fn data_that_is_not_an_object_stays_under_data() {
        assert_eq!(
            Json::Object(event_fields(json!({"event": "x", "data": 3}))),
            json!({"event": "x", "data": 3})
        );
        assert_eq!(Json::Object(event_fields(json!({"event": "x"}))), json!({"event": "x"}));
        assert!(event_fields(json!("not an event")).is_empty());
    }
}
