//! The bearer tokens. [`decide`] is the whole rule, a pure function of a route's [`Access`],
//! the configured [`Tokens`] and the token a request presents; [`guard`] is the middleware
//! that applies it to every request, before the body is read.
//!
//! - Without `WORKERPOOL_API_TOKEN` nothing needs a token.
//! - With it, a write needs that token: none or a wrong one is a 401, the read token a 403
//!   (the caller is known, and may not do this).
//! - Reads need a token only with `WORKERPOOL_PROTECT_READS`; then the API token or the read
//!   token (`WORKERPOOL_READ_TOKEN`) opens them.
//! - The probes and the dashboard's files never need one.

use actix_web::http::header;
use actix_web::{HttpRequest, dev, web};

use super::error::ApiError;
use super::routes::{self, Access};
use super::state::AppState;
use workerpool_actors::redact::Secret;

/// The answer to a 401.
pub const UNAUTHORIZED: &str = "missing or wrong bearer token";

/// The answer to a 403: the read token on a write.
pub const READ_ONLY: &str = "the read token (WORKERPOOL_READ_TOKEN) opens reads only: this request \
                             changes the pool and needs the API token (WORKERPOOL_API_TOKEN)";

/// The tokens a server was started with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens<'a> {
    /// `WORKERPOOL_API_TOKEN`: everything.
    pub api: Option<&'a str>,
    /// `WORKERPOOL_READ_TOKEN`: reads, the streams and `/metrics`.
    pub read: Option<&'a str>,
    /// `WORKERPOOL_PROTECT_READS`: reads need a token too.
    pub protect_reads: bool,
}

/// What [`decide`] says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// 401: no token, or one the server does not know.
    Unauthorized,
    /// 403: the read token, on a route that needs the API token.
    Forbidden,
}

/// The rule: may a request for a route of `access`, presenting `presented` (the bearer
/// token, if any), pass on a server with `tokens`?
pub fn decide(access: Access, tokens: Tokens<'_>, presented: Option<&str>) -> Verdict {
    let Some(api) = tokens.api else { return Verdict::Allow };
    // Both comparisons always run, so the time taken does not tell which token was near.
    let given = presented.unwrap_or("");
    let is_api = presented.is_some() & constant_time_eq(given.as_bytes(), api.as_bytes());
    let is_read = presented.is_some()
        & tokens.read.is_some_and(|read| constant_time_eq(given.as_bytes(), read.as_bytes()));
    match access {
        Access::Open => Verdict::Allow,
        Access::Read if !tokens.protect_reads || is_api || is_read => Verdict::Allow,
        Access::Write if is_api => Verdict::Allow,
        Access::Write if is_read => Verdict::Forbidden,
        Access::Read | Access::Write => Verdict::Unauthorized,
    }
}

/// Middleware applying [`decide`] to every request, by the access the route table gives the
/// route it matches. `serve` installs it whenever `WORKERPOOL_API_TOKEN` is set.
pub async fn guard(
    req: dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        // The pattern of the path the router will match: the decoded one (`match_info`), not
        // the raw one `match_pattern` would read before routing (`/api/workers/%65xecute` is
        // the execute route).
        let pattern = req.resource_map().match_pattern(req.match_info().as_str());
        let access = routes::access(req.method(), pattern.as_deref());
        authorize(req.request(), state, access)?;
    }
    next.call(req).await
}

/// Checks one request against the server's tokens for a route of `access`.
fn authorize(req: &HttpRequest, state: &AppState, access: Access) -> Result<(), ApiError> {
    let settings = &state.settings;
    let tokens = Tokens {
        api: settings.api_token.as_ref().map(Secret::expose),
        read: settings.read_token.as_ref().map(Secret::expose),
        protect_reads: settings.protect_reads,
    };
    match decide(access, tokens, bearer(req)) {
        Verdict::Allow => Ok(()),
        Verdict::Unauthorized => Err(ApiError::unauthorized(UNAUTHORIZED)),
        Verdict::Forbidden => Err(ApiError::forbidden(READ_ONLY)),
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case), if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Compares without stopping at the first difference, so the time taken does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use Access::{Open, Read, Write};
    use Verdict::{Allow, Forbidden, Unauthorized};

    const NONE: Tokens<'static> = Tokens { api: None, read: None, protect_reads: false };
    const API: Tokens<'static> = Tokens { api: Some("w"), read: None, protect_reads: false };
    const BOTH: Tokens<'static> = Tokens { api: Some("w"), read: Some("r"), protect_reads: false };

    fn protected(t: Tokens<'static>) -> Tokens<'static> {
        Tokens { protect_reads: true, ..t }
    }

    #[test]
    fn without_an_api_token_everything_is_open() {
        for access in [Open, Read, Write] {
            for presented in [None, Some(""), Some("w"), Some("x")] {
                assert_eq!(decide(access, NONE, presented), Allow);
                assert_eq!(decide(access, protected(NONE), presented), Allow);
            }
        }
    }

    #[test]
    fn open_routes_never_ask() {
        for tokens in [API, BOTH, protected(API), protected(BOTH)] {
            for presented in [None, Some("r"), Some("x")] {
                assert_eq!(decide(Open, tokens, presented), Allow);
            }
        }
    }

    #[test]
    fn writes_need_the_api_token_and_refuse_the_read_token() {
        for tokens in [API, BOTH, protected(API), protected(BOTH)] {
            assert_eq!(decide(Write, tokens, Some("w")), Allow);
            assert_eq!(decide(Write, tokens, None), Unauthorized);
            assert_eq!(decide(Write, tokens, Some("")), Unauthorized);
            assert_eq!(decide(Write, tokens, Some("x")), Unauthorized);
            assert_eq!(decide(Write, tokens, Some("w2")), Unauthorized);
        }
        assert_eq!(decide(Write, BOTH, Some("r")), Forbidden);
        assert_eq!(decide(Write, protected(BOTH), Some("r")), Forbidden);
        // Without a read token configured, "r" is just a wrong token.
        assert_eq!(decide(Write, API, Some("r")), Unauthorized);
    }

    #[test]
    fn reads_are_open_unless_protected_then_either_token_opens_them() {
        for presented in [None, Some("w"), Some("r"), Some("x")] {
            assert_eq!(decide(Read, API, presented), Allow);
            assert_eq!(decide(Read, BOTH, presented), Allow);
        }
        assert_eq!(decide(Read, protected(BOTH), Some("w")), Allow);
        assert_eq!(decide(Read, protected(BOTH), Some("r")), Allow);
        assert_eq!(decide(Read, protected(BOTH), None), Unauthorized);
        assert_eq!(decide(Read, protected(BOTH), Some("x")), Unauthorized);
        assert_eq!(decide(Read, protected(API), Some("w")), Allow);
        assert_eq!(decide(Read, protected(API), Some("r")), Unauthorized);
        // An empty read token is never configured; an empty presented one is no token.
        assert_eq!(decide(Read, protected(API), Some("")), Unauthorized);
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
