//! The request bodies of `execute` and `scale`, read exactly as `docs/openapi.json` describes
//! them: objects only (serde would also take an array of the fields in order), an option that
//! is absent or `null` takes its default, and a whole number may be written with a zero
//! fraction (`466.0`), as JSON Schema's `integer` allows.

use std::fmt;
use std::marker::PhantomData;

use actix_web::http::StatusCode;
use actix_web::web;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Unexpected, Visitor};
use serde_json::Value;
use workerpool_actors::{TaskOptions, TaskRequest};

use super::error::ApiError;

/// The largest request body accepted (1 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Reads a JSON object body of at most [`MAX_BODY_BYTES`]; the error names the field at fault.
pub async fn read_json<T: DeserializeOwned>(mut payload: web::Payload) -> Result<T, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(ApiError::bad_request("the body is empty: expected a JSON object"));
    };
    // Every body is an object; serde's derived struct reader would also take an array of the
    // fields in order.
    if *first == b'[' {
        return Err(ApiError::bad_request("invalid JSON body: expected a JSON object, got an array"));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." || path == "?" || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("{path}: {inner}")).with("field", path)
        }
    })?;
    // One JSON value, and nothing after it but white space.
    de.end().map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// The longest task timeout a request may ask for (one day).
pub(super) const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// The longest delay a request may ask for (seven days).
pub(super) const MAX_DELAY_MS: u64 = 7 * 86_400_000;
/// The most retries a request may ask for.
pub(super) const MAX_RETRIES: u32 = 32;

/// The body of `POST /api/workers/execute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecuteBody {
    #[serde(rename = "type")]
    pub(super) task_type: String,
    #[serde(default)]
    pub(super) data: Value,
    #[serde(default, deserialize_with = "object")]
    pub(super) options: ExecuteOptions,
}

/// `options` of an execute body; each one absent or `null` takes the type's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecuteOptions {
    #[serde(default, deserialize_with = "whole")]
    priority: Option<i32>,
    #[serde(default, deserialize_with = "whole")]
    timeout: Option<u64>,
    #[serde(default, deserialize_with = "whole")]
    max_retries: Option<u32>,
    #[serde(default, deserialize_with = "whole")]
    delay: Option<u64>,
    #[serde(default)]
    wait: Option<bool>,
}

impl ExecuteBody {
    /// Checks what the types alone cannot: the bounds of each option; the error names the field.
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        let field =
            |name: &str, msg: String| ApiError::bad_request(format!("{name}: {msg}")).with("field", name);
        if self.task_type.trim().is_empty() {
            return Err(field("type", "must name a task type".into()));
        }
        let o = &self.options;
        if let Some(t) = o.timeout
            && !(1..=MAX_TIMEOUT_MS).contains(&t)
        {
            return Err(field(
                "options.timeout",
                format!("expected 1 to {MAX_TIMEOUT_MS} milliseconds, got {t}"),
            ));
        }
        if let Some(d) = o.delay
            && d > MAX_DELAY_MS
        {
            return Err(field(
                "options.delay",
                format!("expected at most {MAX_DELAY_MS} milliseconds, got {d}"),
            ));
        }
        if let Some(r) = o.max_retries
            && r > MAX_RETRIES
        {
            return Err(field("options.max_retries", format!("expected at most {MAX_RETRIES}, got {r}")));
        }
        Ok(())
    }

    /// Whether the caller waits for the result (the default).
    pub(super) fn wait(&self) -> bool {
        self.options.wait.unwrap_or(true)
    }

    /// The request for the pool.
    pub(super) fn into_request(self) -> TaskRequest {
        let o = self.options;
        let options = TaskOptions {
            priority: o.priority,
            timeout: o.timeout,
            max_retries: o.max_retries,
            delay: o.delay,
            wait: o.wait,
        };
        TaskRequest { task_type: self.task_type, data: self.data, options }
    }
}

/// The body of `POST /api/workers/scale/{type}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleBody {
    pub(super) action: ScaleDirection,
    #[serde(default = "one")]
    pub(super) count: usize,
}

/// `action` of a scale body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ScaleDirection {
    Up,
    Down,
}

fn one() -> usize {
    1
}

// ===== objects =====

/// Reads a `T` from a JSON object only; serde's derived struct reader alone also takes an
/// array of the fields in order, which the document does not allow.
pub(super) fn object<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    de.deserialize_map(ObjectOnly(PhantomData))
}

struct ObjectOnly<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

// ===== whole numbers =====

/// An integer type an option is read into.
trait WholeNumber: Sized {
    const MIN: i128;
    const MAX: i128;
    /// `v`, known to lie within `MIN..=MAX`.
    fn from_i128(v: i128) -> Option<Self>;
}

macro_rules! whole_number {
    ($($t:ty),*) => {$(
        impl WholeNumber for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
            fn from_i128(v: i128) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
        }
    )*};
}

whole_number!(i32, u32, u64);

/// Reads an optional whole number: `null` is `None`; `466` and `466.0` are 466; `466.5`, a
/// number outside the type's range or any other JSON type is refused, saying what was expected.
fn whole<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: WholeNumber,
{
    de.deserialize_option(Whole(PhantomData))
}

struct Whole<T>(PhantomData<T>);

impl<T: WholeNumber> Whole<T> {
    fn expected() -> String {
        format!("a whole number from {} to {}, or null", T::MIN, T::MAX)
    }

    fn within<E: de::Error>(v: i128, unexpected: Unexpected<'_>) -> Result<Option<T>, E> {
        match T::from_i128(v).filter(|_| (T::MIN..=T::MAX).contains(&v)) {
            Some(n) => Ok(Some(n)),
            None => Err(E::invalid_value(unexpected, &Self::expected().as_str())),
        }
    }
}

impl<'de, T: WholeNumber> Visitor<'de> for Whole<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::expected())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::within(i128::from(v), Unexpected::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::within(i128::from(v), Unexpected::Signed(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // Every f64 with a zero fraction and a magnitude under 2^64 is exactly an i128.
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 18_446_744_073_709_551_616.0 {
            Self::within(v as i128, Unexpected::Float(v))
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &Self::expected().as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(json: &str) -> Result<ExecuteOptions, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_may_have_a_zero_fraction() {
        let o = options(r#"{"delay":466.0,"priority":-3.0,"timeout":1e3,"max_retries":2}"#).unwrap();
        assert_eq!(
            (o.delay, o.priority, o.timeout, o.max_retries),
            (Some(466), Some(-3), Some(1000), Some(2))
        );
        let o = options(r#"{"delay":18446744073709551615}"#).unwrap();
        assert_eq!(o.delay, Some(u64::MAX));
    }

    #[test]
    fn options_are_an_object_only() {
        let body = |json: &str| serde_json::from_str::<ExecuteBody>(json).map_err(|e| e.to_string());
        for json in [r#"{"type":"t","options":[null,null]}"#, r#"{"type":"t","options":[]}"#] {
            let err = body(json).unwrap_err();
            assert!(err.contains("expected a JSON object"), "{json}: {err}");
        }
        assert_eq!(body(r#"{"type":"t","options":{"delay":5.0}}"#).unwrap().options.delay, Some(5));
        let err = body(r#"{"type":"t","options":{"speed":1}}"#).unwrap_err();
        assert!(err.contains("speed"), "{err}");
    }

    #[test]
    fn null_takes_the_default() {
        let o = options(r#"{"priority":null,"timeout":null,"max_retries":null,"delay":null,"wait":null}"#)
            .unwrap();
        assert_eq!((o.priority, o.timeout, o.max_retries, o.delay, o.wait), (None, None, None, None, None));
    }

    #[test]
    fn fractions_ranges_and_other_types_are_refused() {
        for (json, needle) in [
            (r#"{"delay":466.5}"#, "floating point `466.5`"),
            (r#"{"delay":-1}"#, "integer `-1`"),
            (r#"{"delay":-1.0}"#, "floating point `-1.0`"),
            (r#"{"priority":2147483648}"#, "from -2147483648 to 2147483647"),
            (r#"{"max_retries":4294967296.0}"#, "from 0 to 4294967295"),
            (r#"{"timeout":1e20}"#, "floating point"),
            (r#"{"timeout":"5"}"#, "string \"5\""),
            (r#"{"timeout":[]}"#, "sequence"),
        ] {
            let err = options(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
            assert!(err.contains("a whole number"), "{json}: {err}");
        }
    }
}
