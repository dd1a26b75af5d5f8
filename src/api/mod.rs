//! The REST API (contract §5): the route table, the shared state, errors and body parsing.
//!
//! Every error answers `{"error": "...", ...}` with a 4xx/5xx status; a client's mistake never
//! gets a 500. The status of each library error kind is decided in one place,
//! [`ApiError::from`].

mod body;
mod events;
mod tasks;
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse, ResponseError, dev, web};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use workerpool_actors::{ErrorKind, PoolHandle};

use crate::settings::Settings;

/// The largest request body accepted (1 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What every handler can reach.
pub struct AppState {
    /// The actor tree.
    pub pool: PoolHandle,
    /// The server's settings.
    pub settings: Settings,
    /// When the server started.
    pub started: Instant,
    /// Set once a shutdown began: `execute` answers 503, `/health` unhealthy.
    pub shutting_down: AtomicBool,
    /// Turns true when the server stops, ending the SSE streams so the listener can close.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// New state around a started pool.
    pub fn new(pool: PoolHandle, settings: Settings) -> Arc<AppState> {
        Arc::new(AppState {
            pool,
            settings,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    fn stopping(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// The route table; `state` is shared by every HTTP worker.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state))
            .service(
                web::scope("/api/workers")
                    .service(
                        web::resource("/stats").get(workers::stats).route(web::head().to(workers::stats)),
                    )
                    .service(
                        web::resource("/status").get(workers::status).route(web::head().to(workers::status)),
                    )
                    .service(
                        web::resource("/types").get(workers::types).route(web::head().to(workers::types)),
                    )
                    .service(web::resource("/execute").post(workers::execute))
                    .service(web::resource("/scale/{type}").post(workers::scale))
                    .service(web::resource("/restart/{worker_id}").post(workers::restart))
                    .service(
                        web::resource("/health").get(workers::health).route(web::head().to(workers::health)),
                    )
                    .service(
                        web::resource("/queues").get(workers::queues).route(web::head().to(workers::queues)),
                    )
                    .service(
                        web::resource("/resources")
                            .get(workers::resources)
                            .route(web::head().to(workers::resources)),
                    )
                    .service(web::resource("/events").get(events::pool_events))
                    .service(web::resource("/dead-letters/{type}").get(workers::dead_letters)),
            )
            .service(
                web::scope("/api/tasks")
                    .service(
                        web::resource("/{id}")
                            .get(tasks::get)
                            .route(web::head().to(tasks::get))
                            .delete(tasks::cancel),
                    )
                    .service(web::resource("/{id}/events").get(events::task_events))
                    .service(web::resource("/{id}/requeue").post(tasks::requeue)),
            )
            .service(web::resource("/api/openapi.json").get(openapi).route(web::head().to(openapi)))
            .service(
                web::resource("/metrics")
                    .get(crate::metrics::metrics)
                    .route(web::head().to(crate::metrics::metrics)),
            );
    }
}

/// Turns the framework's own error pages (unknown route, wrong method) into JSON bodies.
pub fn json_errors() -> ErrorHandlers<actix_web::body::BoxBody> {
    ErrorHandlers::new().default_handler(|res: dev::ServiceResponse| {
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
        let mut body = HttpResponse::build(status).json(json!({ "error": message }));
        // Keep what the framework said besides the body (e.g. `Allow` on a 405).
        if let Some(allow) = old.headers().get(header::ALLOW) {
            body.headers_mut().insert(header::ALLOW, allow.clone());
        }
        Ok(ErrorHandlerResponse::Response(dev::ServiceResponse::new(req, body).map_into_right_body()))
    })
}

/// The OpenAPI document of this API.
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// The OpenAPI document, kept beside the API docs.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

// ===== errors =====

/// An error answer: a status and a JSON body with at least `error`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

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

// ===== requests =====

/// Reads a JSON object body of at most [`MAX_BODY_BYTES`]; the error names the field at fault.
pub async fn read_json<T: DeserializeOwned>(mut payload: web::Payload) -> Result<T, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(ApiError::bad_request("the body is empty: expected a JSON object"));
    };
    // Every body is an object; serde's derived struct reader would also take an array of the
    // fields in order.
    if *first == b'[' {
        return Err(ApiError::bad_request("invalid JSON body: expected a JSON object, got an array"));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." || path == "?" || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("{path}: {inner}")).with("field", path)
        }
    })?;
    // One JSON value, and nothing after it but white space.
    de.end().map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// Middleware for `WORKERPOOL_PROTECT_READS`: every request needs the token, reads too.
pub async fn guard_everything(
    req: dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
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
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        let mut err = ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        err.www_authenticate = true;
        Err(err)
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
