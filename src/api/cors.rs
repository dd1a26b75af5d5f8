//! Cross-origin requests from browsers (`[server] cors_origins`), through `actix-cors`.
//!
//! With origins configured, a preflight `OPTIONS` on any path is answered by the middleware
//! (before the token is checked: a preflight never carries it), and every answer to a listed
//! origin, errors, 401s, `/metrics` and the event streams included, carries
//! `Access-Control-Allow-Origin`. An unlisted origin is served as before, with no allow
//! headers, so its browser keeps the answer from the page; its preflight is refused (400).
//! Without origins the middleware is not installed at all.

use actix_cors::Cors;
use actix_web::http::{Method, header};

use crate::settings::CorsOrigins;

/// How long a browser may keep a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 3600;

/// The request headers a page may send: the token, a JSON body, and an event stream's
/// resume (`Last-Event-ID`), besides those browsers add to `EventSource` requests.
const ALLOWED_HEADERS: [header::HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::HeaderName::from_static("last-event-id"),
    header::ACCEPT,
    header::CACHE_CONTROL,
];

/// The CORS middleware for `origins`; `None` when no origin is configured.
pub fn cors(origins: &CorsOrigins) -> Option<Cors> {
    let base = match origins {
        CorsOrigins::Off => return None,
        CorsOrigins::Any => Cors::default().allow_any_origin().send_wildcard(),
        CorsOrigins::Listed(list) => list.iter().fold(Cors::default(), |cors, o| cors.allowed_origin(o)),
    };
    Some(
        base.allowed_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE, Method::OPTIONS])
            .allowed_headers(ALLOWED_HEADERS)
            .expose_headers([header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE)
            // An unlisted origin's plain request is served (without allow headers), as it
            // was before CORS was configured; only its preflight is refused.
            .block_on_origin_mismatch(false),
    )
}
