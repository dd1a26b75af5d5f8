//! The Redis URL from the environment: `REDIS_URL`, or `REDIS_HOST` / `REDIS_PORT` /
//! `REDIS_PASSWORD` (seed 004). The password goes into the URL percent-encoded, so that any
//! character it holds (`@`, `/`, `#`, `%`, `:`) stays the password. `REDIS_PASSWORD` is read
//! only with `REDIS_HOST`, when no URL is given; a variable that is set but not read is warned
//! about ([`ignored_vars`]).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The URL the variables name, if any.
pub(super) fn redis_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(url) = env("REDIS_URL").filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let host = env("REDIS_HOST").filter(|h| !h.is_empty())?;
    let port = env("REDIS_PORT").unwrap_or_else(|| "6379".into());
    Some(match env("REDIS_PASSWORD").filter(|p| !p.is_empty()) {
        Some(pw) => format!("redis://:{}@{host}:{port}/", userinfo(&pw)),
        None => format!("redis://{host}:{port}/"),
    })
}

/// The warning for Redis variables that are set but name nothing, because something ahead of
/// them names the server (`--redis`, then `REDIS_URL`, then `REDIS_HOST`); `None` when every
/// one set is used. Only names are told, never values.
pub(super) fn ignored_vars(env: &dyn Fn(&str) -> Option<String>, flag: bool) -> Option<String> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    let parts = ["REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD"];
    let (ignored, why): (Vec<&str>, &str) = if flag {
        (["REDIS_URL"].into_iter().chain(parts).filter(|v| set(v)).collect(), "--redis names the server")
    } else if set("REDIS_URL") {
        (parts.into_iter().filter(|v| set(v)).collect(), "REDIS_URL names the server")
    } else if !set("REDIS_HOST") {
        (parts[1..].iter().copied().filter(|v| set(v)).collect(), "they are read only with REDIS_HOST")
    } else {
        (Vec::new(), "")
    };
    (!ignored.is_empty()).then(|| format!("{} ignored: {why}", ignored.join(", ")))
}

/// Every byte but the unreserved characters (RFC 3986), for a URL's userinfo.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` percent-encoded for a URL's userinfo.
fn userinfo(text: &str) -> String {
    utf8_percent_encode(text, USERINFO).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_url_comes_from_its_parts() {
        let url = redis_from_env(&env_of(&[("REDIS_HOST", "h"), ("REDIS_PASSWORD", "pw")]));
        assert_eq!(url.as_deref(), Some("redis://:pw@h:6379/"));
        let url =
            redis_from_env(&env_of(&[("REDIS_HOST", "h"), ("REDIS_PORT", "7"), ("REDIS_PASSWORD", "")]));
        assert_eq!(url.as_deref(), Some("redis://h:7/"));
        let url = redis_from_env(&env_of(&[("REDIS_URL", "redis://u/"), ("REDIS_HOST", "h")]));
        assert_eq!(url.as_deref(), Some("redis://u/"));
        assert_eq!(redis_from_env(&env_of(&[("REDIS_PASSWORD", "pw")])), None);
    }

    #[test]
    fn variables_that_name_nothing_are_told() {
        let all = &[("REDIS_URL", "redis://u/"), ("REDIS_HOST", "h"), ("REDIS_PASSWORD", "pw")];
        let said = ignored_vars(&env_of(all), true).expect("a warning");
        assert_eq!(said, "REDIS_URL, REDIS_HOST, REDIS_PASSWORD ignored: --redis names the server");
        let said = ignored_vars(&env_of(all), false).expect("a warning");
        assert_eq!(said, "REDIS_HOST, REDIS_PASSWORD ignored: REDIS_URL names the server");
        let said = ignored_vars(&env_of(&[("REDIS_PASSWORD", "pw")]), false).expect("a warning");
        assert_eq!(said, "REDIS_PASSWORD ignored: they are read only with REDIS_HOST");
        assert!(!said.contains("pw "), "{said}");
        // Each one set is used, or none is set (an empty one counts as unset).
        assert_eq!(ignored_vars(&env_of(&[("REDIS_HOST", "h"), ("REDIS_PASSWORD", "pw")]), false), None);
        assert_eq!(ignored_vars(&env_of(&[("REDIS_URL", "redis://u/"), ("REDIS_HOST", "")]), false), None);
        assert_eq!(ignored_vars(&env_of(&[]), true), None);
    }

    #[test]
    fn a_password_keeps_every_character() {
        let url = redis_from_env(&env_of(&[("REDIS_HOST", "h"), ("REDIS_PASSWORD", "a@b/c#d?e%41:f é")]));
        assert_eq!(url.as_deref(), Some("redis://:a%40b%2Fc%23d%3Fe%2541%3Af%20%C3%A9@h:6379/"));
    }
}
