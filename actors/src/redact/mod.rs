//! Secrets kept out of everything the pool shows: answers, events, logs and records.
//!
//! One rule, in one place: a URL's password (and any secret-looking query value) is shown as
//! [`MASK`], `redis://:***@host:6379/` ([`redact_url`]); a known secret is removed from free
//! text, such as a dependency's error message that echoes the URL it was given ([`scrub`]).
//! Configuration values that are secrets are held as [`Secret`] (a token: shown only as
//! `***`) or [`SecretUrl`] (a URL: shown redacted), whose `Debug`, `Display` and `Serialize`
//! never print the secret; only [`Secret::expose`] and [`SecretUrl::expose`] give it out,
//! for the one place that must use it.
//!
//! The server's own secret environment ([`SECRET_VARS`]) is not passed on to workers.
//!
//! - `url.rs`: [`redact_url`], [`scrub`] and the parsing behind them.
//! - `secret.rs`: [`Secret`] and [`SecretUrl`].

mod secret;
mod url;

pub use secret::{Secret, SecretUrl};

/// The environment variables that carry the server's secrets (the API and read tokens, the
/// Redis URL and password). No worker inherits them: a worker runs code the server does not
/// vouch for, and what it prints or returns is shown to any reader of the API.
pub const SECRET_VARS: [&str; 4] =
    ["WORKERPOOL_API_TOKEN", "WORKERPOOL_READ_TOKEN", "REDIS_URL", "REDIS_PASSWORD"];
pub use url::{MASK, MIN_SCRUBBED_LEN, redact_url, scrub, url_secrets};
