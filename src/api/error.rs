//! [`ApiError`]: an error answer (a status and a JSON body with at least `error`), the one
//! place where library error kinds become HTTP statuses ([`ApiError::from`]), and
//! [`json_errors`], which gives the framework's own error pages the same JSON shape.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpResponse, ResponseError, dev};
use serde_json::{Value, json};
use workerpool_actors::ErrorKind;

/// An error answer: a status and a JSON body with at least `error`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

// ===== impl ApiError =====

impl ApiError {
    /// An error with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
            retry_after: None,
            www_authenticate: false,
        }
    }

    /// 400, naming the problem.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401, asking for the bearer token (`WWW-Authenticate: Bearer`).
    pub(super) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError { www_authenticate: true, ..ApiError::new(StatusCode::UNAUTHORIZED, message) }
    }

    /// 403: the caller is known and may not do this.
    pub(super) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// Adds a field to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        if let Some(map) = self.body.as_object_mut() {
            map.insert(key.to_string(), value.into());
        }
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        if self.www_authenticate {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        res.json(&self.body)
    }
}

impl From<workerpool_actors::Error> for ApiError {
    fn from(e: workerpool_actors::Error) -> ApiError {
        let status = match e.kind() {
            ErrorKind::UnknownType | ErrorKind::UnknownTask | ErrorKind::UnknownWorker => {
                StatusCode::NOT_FOUND
            }
            ErrorKind::InvalidRequest | ErrorKind::Limit | ErrorKind::Config | ErrorKind::Decode => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::ShuttingDown | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Finished => StatusCode::CONFLICT,
            ErrorKind::TaskFailed => StatusCode::BAD_GATEWAY,
            // Sent to Redis, no answer in time: the task may or may not be queued.
            ErrorKind::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut err = ApiError::new(status, e.message());
        if e.kind() == ErrorKind::QueueFull {
            err.retry_after = Some(1);
        }
        if let Some(id) = e.task_id() {
            err = err.with("id", id.as_str());
        }
        if e.kind() == ErrorKind::OutcomeUnknown {
            err = err.with("status", "unknown");
        }
        err
    }
}

impl From<workerpool_actors::SubmitError> for ApiError {
    fn from(e: workerpool_actors::SubmitError) -> ApiError {
        let task_type = e.error().clone();
        let request = e.into_inner();
        ApiError::from(task_type).with("type", request.task_type)
    }
}

/// Turns the framework's own error pages (unknown route, wrong method) into JSON bodies.
pub fn json_errors<B: actix_web::body::MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: dev::ServiceResponse<B>| {
        let status = res.status();
        let has_json = res
            .response()
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if has_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let message = match status {
            StatusCode::NOT_FOUND => format!("no route {} {}", res.request().method(), res.request().path()),
            StatusCode::METHOD_NOT_ALLOWED => {
                format!("method {} is not allowed on {}", res.request().method(), res.request().path())
            }
            other => other.canonical_reason().unwrap_or("error").to_lowercase(),
        };
        let (req, old) = res.into_parts();
        let mut headers = old.headers().clone();
        headers.remove(header::CONTENT_TYPE);
        headers.remove(header::CONTENT_LENGTH);
        // A refused CORS preflight: the middleware's text says why (origin, method, headers).
        let message = match actix_web::body::MessageBody::try_into_bytes(old.into_body()) {
            Ok(why)
                if req.method() == actix_web::http::Method::OPTIONS && status == StatusCode::BAD_REQUEST =>
            {
                format!("CORS preflight refused: {}", String::from_utf8_lossy(&why))
            }
            _ => message,
        };
        let mut body = HttpResponse::build(status).json(json!({ "error": message }));
        // Keep what was said besides the body (`Allow` on a 405, the CORS headers).
        for (name, value) in headers {
            body.headers_mut().append(name, value);
        }
        Ok(ErrorHandlerResponse::Response(dev::ServiceResponse::new(req, body).map_into_right_body()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_map_to_contract_statuses() {
        use workerpool_actors::Error;
        let cases = [
            (ErrorKind::UnknownType, 404),
            (ErrorKind::QueueFull, 429),
            (ErrorKind::ShuttingDown, 503),
            (ErrorKind::Limit, 400),
            (ErrorKind::Finished, 409),
            (ErrorKind::OutcomeUnknown, 504),
        ];
        for (kind, status) in cases {
            let e = ApiError::from(Error::new(kind, "x"));
            assert_eq!(e.status.as_u16(), status, "{kind:?}");
        }
        let unknown = ApiError::from(Error::new(ErrorKind::OutcomeUnknown, "no answer"));
        assert_eq!(unknown.body["status"], "unknown");
        let full = ApiError::from(Error::new(ErrorKind::QueueFull, "full")).error_response();
        assert_eq!(full.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
