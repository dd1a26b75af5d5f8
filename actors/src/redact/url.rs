//! [`redact_url`] and [`scrub`]: where a secret sits in a URL, and hiding it there and in
//! free text.

use std::borrow::Cow;
use std::ops::Range;

/// What a secret is shown as.
pub const MASK: &str = "***";

/// Known secrets shorter than this are not searched for in free text ([`scrub`]): hiding
/// every `a` of a log line would make it unreadable, and such a secret protects nothing.
/// They are still hidden where their place is known (a URL's password, a [`Secret`]).
///
/// [`Secret`]: super::Secret
pub const MIN_SCRUBBED_LEN: usize = 4;

/// Query keys whose values are hidden (matched anywhere in the key, in any case).
const SECRET_KEYS: [&str; 5] = ["pass", "pwd", "secret", "token", "auth"];

/// `url` with its secrets shown as [`MASK`]: the password of its user information (with a
/// user name, `redis://user:***@host/`; a lone name, which some clients read as the
/// password, is hidden whole: `redis://***@host/`), and the values of query keys that name
/// a password, secret, token or auth. A URL without them is returned unchanged. Malformed
/// input never panics; what cannot be told apart from a password is hidden (everything
/// before the last `@`).
///
/// # Examples
///
/// ```
/// use workerpool_actors::redact::redact_url;
///
/// assert_eq!(redact_url("redis://:s3cret@127.0.0.1:6379/"), "redis://:***@127.0.0.1:6379/");
/// assert_eq!(redact_url("rediss://app:s3cret@cache:6380/0"), "rediss://app:***@cache:6380/0");
/// assert_eq!(redact_url("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
/// ```
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut at = 0;
    for span in hidden_spans(url) {
        out.push_str(&url[at..span.start]);
        out.push_str(MASK);
        at = span.end;
    }
    out.push_str(&url[at..]);
    out
}

/// The secrets of `url` that [`redact_url`] hides, as written and (where it differs)
/// percent-decoded, for [`scrub`] to look for elsewhere.
///
/// # Examples
///
/// ```
/// use workerpool_actors::redact::url_secrets;
///
/// assert_eq!(url_secrets("redis://:p%40ss@host/"), ["p%40ss", "p@ss"]);
/// assert!(url_secrets("redis://host/").is_empty());
/// ```
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for span in hidden_spans(url) {
        let raw = &url[span];
        out.push(raw.to_string());
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        if decoded != raw {
            out.push(decoded.into_owned());
        }
    }
    out
}

/// `text` with every occurrence of each of `secrets` (those of at least [`MIN_SCRUBBED_LEN`]
/// characters) replaced by [`MASK`], and every URL in it passed through [`redact_url`].
/// Borrows `text` when there is nothing to hide.
///
/// # Examples
///
/// ```
/// use workerpool_actors::redact::scrub;
///
/// let said = "cannot connect to redis://:hunter22@db:6379/: refused (auth hunter22)";
/// assert_eq!(scrub(said, &["hunter22"]), "cannot connect to redis://:***@db:6379/: refused (auth ***)");
/// assert_eq!(scrub("all fine", &["hunter22"]), "all fine");
/// ```
pub fn scrub<'a, S: AsRef<str>>(text: &'a str, secrets: &[S]) -> Cow<'a, str> {
    let mut text = Cow::Borrowed(text);
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.chars().count() >= MIN_SCRUBBED_LEN && text.contains(secret) {
            text = Cow::Owned(text.replace(secret, MASK));
        }
    }
    if !text.contains("://") {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(sep) = rest.find("://") {
        let start = rest[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[sep..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    if out == *text { text } else { Cow::Owned(out) }
}

/// Where the secrets of `url` are, in order and apart.
fn hidden_spans(url: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let Some(sep) = url.find("://") else {
        // Not a URL: whatever comes before an `@` may be a password.
        if let Some(at) = url.rfind('@').filter(|&at| at > 0) {
            spans.push(0..at);
        }
        return spans;
    };
    let authority = sep + 3;
    // The last `@`: a password may hold `@`, `/` or `?` that its writer did not encode.
    let after_userinfo = match url[authority..].rfind('@') {
        Some(i) => {
            let (info, at) = (authority..authority + i, authority + i);
            match url[info.clone()].split_once(':') {
                // `user:` with no password: nothing to hide.
                Some((user, "")) if !user.contains('/') => {}
                Some((user, _)) if !user.contains('/') => spans.push(info.start + user.len() + 1..at),
                _ if !info.is_empty() => spans.push(info),
                _ => {}
            }
            at
        }
        None => authority,
    };
    if let Some(q) = url[after_userinfo..].find('?') {
        let mut pos = after_userinfo + q + 1;
        let end = url[pos..].find('#').map_or(url.len(), |i| pos + i);
        for pair in url[pos..end].split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                let key = key.to_ascii_lowercase();
                if !value.is_empty() && SECRET_KEYS.iter().any(|k| key.contains(k)) {
                    let start = pos + key.len() + 1;
                    spans.push(start..start + value.len());
                }
            }
            pos += pair.len() + 1;
        }
    }
    spans
}

#[cfg(test)]
#[path = "url_tests.rs"]
mod tests;
