//! `WORKERPOOL_READ_TOKEN`, the second bearer token: it opens the reads, the streams and
//! `/metrics` (for dashboards and Prometheus) and nothing that changes the pool. It only makes
//! sense beside `WORKERPOOL_API_TOKEN`: without one every write would be open, so that is a
//! configuration error, and so is the same value for both (a read token that could write).

use super::ConfigError;

/// The read token from the environment, checked against the API token.
pub(super) fn read_token(
    env: &dyn Fn(&str) -> Option<String>,
    api_token: Option<&str>,
    protect_reads: bool,
) -> Result<Option<String>, ConfigError> {
    let Some(read) = env("WORKERPOOL_READ_TOKEN").filter(|t| !t.is_empty()) else { return Ok(None) };
    match api_token {
        None => Err(ConfigError(
            "WORKERPOOL_READ_TOKEN is set without WORKERPOOL_API_TOKEN: every write (execute, scale, \
             restart, cancel, requeue) would be open to anyone; set WORKERPOOL_API_TOKEN too"
                .into(),
        )),
        Some(api) if api == read => Err(ConfigError(
            "WORKERPOOL_READ_TOKEN is the same as WORKERPOOL_API_TOKEN: the read token must differ, or \
             it could write"
                .into(),
        )),
        Some(_) => {
            if !protect_reads {
                log::warn!(
                    "WORKERPOOL_READ_TOKEN is set but reads are open (WORKERPOOL_PROTECT_READS is not set): \
                     the read token changes nothing"
                );
            }
            Ok(Some(read))
        }
    }
}

/// Tokens shorter than this are warned about: they can be guessed.
pub(super) const STRONG_LEN: usize = 16;

/// Logs a [`weak_token`] warning for each of the API and read tokens that is too short.
pub(super) fn warn_if_weak(api_token: Option<&str>, read_token: Option<&str>) {
    let named = [("WORKERPOOL_API_TOKEN", api_token), ("WORKERPOOL_READ_TOKEN", read_token)];
    for (variable, token) in named {
        if let Some(warning) = token.and_then(|t| weak_token(variable, t)) {
            log::warn!("{warning}");
        }
    }
}

/// The warning for a token that is too short to be safe, naming the variable and its length
/// (never its value); `None` for one long enough. A token shorter than
/// [`workerpool_actors::redact::MIN_SCRUBBED_LEN`] cannot be hidden from the log either.
pub(super) fn weak_token(variable: &str, token: &str) -> Option<String> {
    let len = token.chars().count();
    if len >= STRONG_LEN {
        return None;
    }
    let unhidden = if len < workerpool_actors::redact::MIN_SCRUBBED_LEN {
        ", and the log cannot hide one this short"
    } else {
        ""
    };
    Some(format!(
        "{variable} is {len} characters long: a token this short can be guessed{unhidden}; use \
         {STRONG_LEN} or more random characters (`openssl rand -hex 32`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_are_named_by_their_length_never_their_value() {
        assert_eq!(weak_token("T", &"x".repeat(STRONG_LEN)), None);
        let warning = weak_token("WORKERPOOL_API_TOKEN", "hunter2hunter2").expect("a warning");
        assert!(warning.starts_with("WORKERPOOL_API_TOKEN is 14 characters long"), "{warning}");
        assert!(!warning.contains("hunter2") && !warning.contains("cannot hide"), "{warning}");
        let warning = weak_token("WORKERPOOL_READ_TOKEN", "abc").expect("a warning");
        assert!(warning.contains("is 3 characters") && warning.contains("cannot hide"), "{warning}");
    }

    fn env_with(read: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
        move |k| (k == "WORKERPOOL_READ_TOKEN").then_some(read).flatten().map(str::to_string)
    }

    #[test]
    fn a_read_token_needs_a_different_api_token() {
        assert_eq!(read_token(&env_with(None), None, false), Ok(None));
        assert_eq!(read_token(&env_with(Some("")), Some("w"), true), Ok(None));
        assert_eq!(read_token(&env_with(Some("r")), Some("w"), true), Ok(Some("r".into())));
        assert_eq!(read_token(&env_with(Some("r")), Some("w"), false), Ok(Some("r".into())));
        let err = read_token(&env_with(Some("r")), None, true).unwrap_err().0;
        assert!(err.contains("without WORKERPOOL_API_TOKEN"), "{err}");
        let err = read_token(&env_with(Some("same")), Some("same"), true).unwrap_err().0;
        assert!(err.contains("the same as WORKERPOOL_API_TOKEN"), "{err}");
    }
}
