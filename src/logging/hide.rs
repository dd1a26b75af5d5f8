//! The secrets the log hides: [`hide`] names them once they are known (after the settings are
//! read), and every record passes through [`Hiding`] on its way to env_logger, which writes it
//! with each of them, and any URL's password, shown as `***`, in its message and its fields.

use std::borrow::Cow;
use std::sync::RwLock;

use serde_json::Value as Json;
use workerpool_actors::redact;

use super::Fields;

/// The secrets known so far.
static HIDDEN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds `secrets` to what the log hides (and [`scrub`] removes); empty ones are ignored.
pub fn hide(secrets: impl IntoIterator<Item = String>) {
    let mut hidden = HIDDEN.write().unwrap_or_else(|e| e.into_inner());
    for secret in secrets {
        if !secret.is_empty() && !hidden.contains(&secret) {
            hidden.push(secret);
        }
    }
}

/// `text` without the secrets named to [`hide`] and without any URL's password: for what is
/// written outside the log (the last error line on stderr).
pub fn scrub(text: &str) -> Cow<'_, str> {
    redact::scrub(text, &HIDDEN.read().unwrap_or_else(|e| e.into_inner()))
}

/// env_logger's logger behind the hiding of secrets.
pub(super) struct Hiding(pub(super) env_logger::Logger);

impl log::Log for Hiding {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.0.matches(record) {
            return;
        }
        let hidden = HIDDEN.read().unwrap_or_else(|e| e.into_inner());
        let text =
            record.args().as_str().map_or_else(|| Cow::Owned(record.args().to_string()), Cow::Borrowed);
        let message = redact::scrub(&text, &hidden);
        let mut fields = Fields::default();
        let mut changed = false;
        if record.key_values().count() > 0 {
            // A source that fails half way still leaves the fields read so far.
            let _ = record.key_values().visit(&mut fields);
            for value in fields.0.values_mut() {
                changed |= scrub_json(value, &hidden);
            }
        }
        drop(hidden);
        let mut builder = record.to_builder();
        if changed {
            builder.key_values(&fields);
        }
        self.0.log(&builder.args(format_args!("{message}")).build());
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Scrubs every string in `value`; says whether any changed.
fn scrub_json(value: &mut Json, secrets: &[String]) -> bool {
    match value {
        Json::String(s) => match redact::scrub(s, secrets) {
            Cow::Owned(clean) => {
                *s = clean;
                true
            }
            Cow::Borrowed(_) => false,
        },
        Json::Array(items) => items.iter_mut().fold(false, |changed, v| scrub_json(v, secrets) | changed),
        Json::Object(map) => map.values_mut().fold(false, |changed, v| scrub_json(v, secrets) | changed),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_in_fields_are_scrubbed() {
        let secrets = vec!["pl4nted".to_string()];
        let mut v = json!({"a": "x pl4nted y", "b": [1, "redis://:pw@h/"], "c": {"d": "clean"}});
        assert!(scrub_json(&mut v, &secrets));
        assert_eq!(v, json!({"a": "x *** y", "b": [1, "redis://:***@h/"], "c": {"d": "clean"}}));
        assert!(!scrub_json(&mut v, &secrets));
    }

    #[test]
    fn named_secrets_leave_free_text() {
        hide(["pl4nted-hide-test".to_string(), String::new()]);
        assert_eq!(scrub("said pl4nted-hide-test at redis://:pw@h/"), "said *** at redis://:***@h/");
    }
}
