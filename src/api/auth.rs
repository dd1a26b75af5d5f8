//! The bearer token: [`authorize`] for requests that change something, and
//! [`guard_everything`] for every request under `WORKERPOOL_PROTECT_READS`.

use actix_web::http::header;
use actix_web::{HttpRequest, dev, web};

use super::error::ApiError;
use super::state::AppState;

/// Middleware for `WORKERPOOL_PROTECT_READS`: every request needs the token, reads too, except
/// the dashboard's own files, which hold no data (the page then asks for the token), and the
/// probes `/healthz` and `/readyz`, which an orchestrator calls without one.
pub async fn guard_everything(
    req: dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>()
        && !super::dashboard::is_page(req.path())
        && !super::probes::is_probe(req.path())
    {
        authorize(req.request(), state)?;
    }
    next.call(req).await
}

/// Checks the bearer token of a request that changes something, when a token is configured.
pub fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(expected) = &state.settings.api_token else { return Ok(()) };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("missing or wrong bearer token"))
    }
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

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
