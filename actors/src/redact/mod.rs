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
//! - `url.rs`: [`redact_url`], [`scrub`] and the parsing behind them.
//! - `secret.rs`: [`Secret`] and [`SecretUrl`].

mod secret;
mod url;

pub use secret::{Secret, SecretUrl};
pub use url::{MASK, MIN_SCRUBBED_LEN, redact_url, scrub, url_secrets};
