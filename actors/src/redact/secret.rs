//! [`Secret`] and [`SecretUrl`]: configuration values that never print what they hold.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::url::{MASK, redact_url, url_secrets};

/// A secret (an API token, a password): `Debug` and `Serialize` show `***`; it has no
/// `Display`. Read from configuration as the plain string.
///
/// # Examples
///
/// ```
/// use workerpool_actors::redact::Secret;
///
/// let token = Secret::new("s3cret-token");
/// assert_eq!(format!("{token:?}"), "Secret(***)");
/// assert_eq!(serde_json::to_string(&token).unwrap(), "\"***\"");
/// assert_eq!(token.expose(), "s3cret-token");
/// ```
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

// ===== impl Secret =====

impl Secret {
    /// Holds `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that uses it (comparing a token, connecting).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// A URL that may carry a password (`redis://:password@host:6379/`): `Debug`, `Display` and
/// `Serialize` show it through [`redact_url`]. Read from configuration as the plain string.
///
/// # Examples
///
/// ```
/// use workerpool_actors::redact::SecretUrl;
///
/// let url = SecretUrl::new("redis://:s3cret@127.0.0.1:6379/");
/// assert_eq!(url.to_string(), "redis://:***@127.0.0.1:6379/");
/// assert_eq!(format!("{url:?}"), "\"redis://:***@127.0.0.1:6379/\"");
/// assert_eq!(serde_json::to_string(&url).unwrap(), "\"redis://:***@127.0.0.1:6379/\"");
/// assert_eq!(url.secrets(), ["s3cret"]);
/// assert_eq!(url.expose(), "redis://:s3cret@127.0.0.1:6379/");
/// ```
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

// ===== impl SecretUrl =====

impl SecretUrl {
    /// Holds `url`.
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL with its password, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// What it hides (the password, as written and decoded), to look for in free text such
    /// as an error message that echoes it ([`scrub`](super::scrub)).
    pub fn secrets(&self) -> Vec<String> {
        url_secrets(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> SecretUrl {
        SecretUrl(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> SecretUrl {
        SecretUrl(url.to_string())
    }
}
