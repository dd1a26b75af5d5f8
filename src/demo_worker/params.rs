//! Typed, bounded access to a task's `data`.
//!
//! Every accessor names the field and what was expected when the value is wrong, so the pool (and
//! the user behind it) gets a non-retryable error it can act on. A missing field and a `null`
//! field both mean "use the default". `data` that is not an object has no fields at all.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use super::{hash::fnv1a64, protocol::TaskError};

/// The fields of a task's `data`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params<'a> {
    fields: Option<&'a Map<String, Value>>,
}

impl<'a> Params<'a> {
    /// Reads fields from `data`.
    pub(super) fn new(data: &'a Value) -> Self {
        Self { fields: data.as_object() }
    }

    /// The value of `field`, unless it is missing or `null`.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.fields?.get(field).filter(|value| !value.is_null())
    }

    /// A string field, if present.
    pub(super) fn str(&self, field: &str) -> Result<Option<&'a str>, TaskError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(expected(field, "a string", other)),
        }
    }

    /// A string field of at most `max_bytes` bytes, or `default`.
    pub(super) fn text_or(
        &self,
        field: &str,
        default: &'a str,
        max_bytes: usize,
    ) -> Result<&'a str, TaskError> {
        let text = self.str(field)?.unwrap_or(default);
        if text.len() > max_bytes {
            return Err(TaskError::invalid(format!(
                "field '{field}' must be at most {max_bytes} bytes long, got {}",
                text.len()
            )));
        }
        Ok(text)
    }

    /// A boolean field, or `default`.
    pub(super) fn bool_or(&self, field: &str, default: bool) -> Result<bool, TaskError> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(other) => Err(expected(field, "a boolean", other)),
        }
    }

    /// A non-negative integer field within `range`, if present.
    pub(super) fn uint(&self, field: &str, range: RangeInclusive<u64>) -> Result<Option<u64>, TaskError> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let number = value.as_u64().ok_or_else(|| expected(field, "a non-negative integer", value))?;
        check_range(field, number, &range)?;
        Ok(Some(number))
    }

    /// A non-negative integer field within `range`, or `default`.
    pub(super) fn uint_or(
        &self,
        field: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<u64, TaskError> {
        Ok(self.uint(field, range)?.unwrap_or(default))
    }

    /// A 32-bit unsigned field within `range` (e.g. a pixel count), or `default`.
    pub(super) fn u32_or(
        &self,
        field: &str,
        default: u32,
        range: RangeInclusive<u32>,
    ) -> Result<u32, TaskError> {
        let wide = u64::from(*range.start())..=u64::from(*range.end());
        let number = self.uint_or(field, u64::from(default), wide)?;
        // The range check above keeps it within `u32`.
        Ok(u32::try_from(number).unwrap_or(*range.end()))
    }

    /// A non-negative integer field within `range` that must be given.
    pub(super) fn required_uint(&self, field: &str, range: RangeInclusive<u64>) -> Result<u64, TaskError> {
        self.uint(field, range)?
            .ok_or_else(|| TaskError::invalid(format!("field '{field}' is required: a non-negative integer")))
    }

    /// A number field within `range`, or `default`.
    pub(super) fn number_or(
        &self,
        field: &str,
        default: f64,
        range: RangeInclusive<f64>,
    ) -> Result<f64, TaskError> {
        let Some(value) = self.get(field) else {
            return Ok(default);
        };
        let number = value.as_f64().ok_or_else(|| expected(field, "a number", value))?;
        check_range(field, number, &range)?;
        Ok(number)
    }

    /// The seed of a generator: `seed` as an integer (negative ones wrap) or a string (hashed),
    /// else the hash of the string field `fallback` (e.g. an image's `prompt`), else 0.
    pub(super) fn seed(&self, fallback: Option<&str>) -> Result<u64, TaskError> {
        if let Some(value) = self.get("seed") {
            return match value {
                Value::String(text) => Ok(fnv1a64(text.as_bytes())),
                // A negative seed is as good a seed as any: keep its bits.
                _ => value
                    .as_u64()
                    .or_else(|| value.as_i64().map(|n| n as u64))
                    .ok_or_else(|| expected("seed", "an integer or a string", value)),
            };
        }
        match fallback {
            Some(field) => Ok(self.str(field)?.map_or(0, |text| fnv1a64(text.as_bytes()))),
            None => Ok(0),
        }
    }
}

/// The error for a field of the wrong JSON type.
pub(super) fn expected(field: &str, what: &str, got: &Value) -> TaskError {
    const MAX_SHOWN: usize = 40;
    let mut shown = got.to_string();
    if shown.len() > MAX_SHOWN {
        let cut = (0..=MAX_SHOWN).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    TaskError::invalid(format!("field '{field}' must be {what}, got {shown}"))
}

/// Checks that `number` lies in `range`, naming the bound it crosses.
fn check_range<T>(field: &str, number: T, range: &RangeInclusive<T>) -> Result<(), TaskError>
where
    T: PartialOrd + std::fmt::Display,
{
    if number < *range.start() {
        Err(TaskError::invalid(format!("field '{field}' must be at least {}, got {number}", range.start())))
    } else if number > *range.end() {
        Err(TaskError::invalid(format!("field '{field}' must be at most {}, got {number}", range.end())))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The message of a failed lookup.
    fn message<T>(result: Result<T, TaskError>) -> Option<String> {
        result.err().map(|e| e.message)
    }

    #[test]
    fn missing_and_null_fields_take_the_default() {
        let data = json!({"ms": null});
        let params = Params::new(&data);
        assert_eq!(params.uint_or("ms", 5, 0..=10), Ok(5));
        assert_eq!(params.uint_or("other", 6, 0..=10), Ok(6));
        assert_eq!(Params::new(&json!("text")).bool_or("flag", true), Ok(true));
    }

    #[test]
    fn wrong_types_name_the_field_and_the_expectation() {
        let data = json!({"ms": "x", "n": -3, "flag": 1, "text": [1]});
        let params = Params::new(&data);
        assert_eq!(
            message(params.uint("ms", 0..=10)),
            Some("field 'ms' must be a non-negative integer, got \"x\"".to_owned())
        );
        assert_eq!(
            message(params.uint("n", 0..=10)),
            Some("field 'n' must be a non-negative integer, got -3".to_owned())
        );
        assert_eq!(
            message(params.bool_or("flag", false)),
            Some("field 'flag' must be a boolean, got 1".to_owned())
        );
        assert_eq!(message(params.str("text")), Some("field 'text' must be a string, got [1]".to_owned()));
    }

    #[test]
    fn bounds_are_named() {
        let data = json!({"width": 2000, "height": 0, "hz": 0.5});
        let params = Params::new(&data);
        assert_eq!(
            params.uint("width", 1..=1024).map_err(|e| e.message),
            Err("field 'width' must be at most 1024, got 2000".to_owned())
        );
        assert_eq!(
            params.uint("height", 1..=1024).map_err(|e| e.message),
            Err("field 'height' must be at least 1, got 0".to_owned())
        );
        assert!(params.number_or("hz", 440.0, 1.0..=100.0).is_err());
        assert!(params.required_uint("ms", 0..=10).is_err());
    }

    #[test]
    fn seeds_come_from_numbers_strings_or_the_fallback() {
        assert_eq!(Params::new(&json!({"seed": 7})).seed(None), Ok(7));
        assert_eq!(Params::new(&json!({"seed": -1})).seed(None), Ok(u64::MAX));
        assert_eq!(Params::new(&json!({"seed": "a"})).seed(None), Ok(fnv1a64(b"a")));
        assert_eq!(Params::new(&json!({"prompt": "a"})).seed(Some("prompt")), Ok(fnv1a64(b"a")));
        assert_eq!(Params::new(&json!({})).seed(Some("prompt")), Ok(0));
        assert!(Params::new(&json!({"seed": 1.5})).seed(None).is_err());
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let data = json!({"ms": "é".repeat(100)});
        let message = message(Params::new(&data).uint("ms", 0..=1)).unwrap_or_default();
        assert!(message.ends_with('…'), "{message}");
        assert!(message.len() < 100, "{message}");
    }
}
