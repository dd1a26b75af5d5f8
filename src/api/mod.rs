//! The REST API (contract §5) and the OpenAPI document; the route table with each route's
//! access, the shared state, errors, the bearer tokens, body parsing and the endpoints each
//! have a file of their own.
//!
//! Every error answers `{"error": "...", ...}` with a 4xx/5xx status; a client's mistake never
//! gets a 500. The status of each library error kind is decided in one place,
//! [`ApiError::from`].

mod auth;
mod body;
mod cors;
mod dashboard;
mod error;
mod events;
mod http_metrics;
mod metrics;
mod page;
mod probes;
mod resume;
mod routes;
mod state;
mod tasks;
mod workers;

use std::sync::Arc;

use actix_web::{HttpResponse, web};

pub use auth::{READ_ONLY, Tokens, UNAUTHORIZED, Verdict, decide, guard};
pub use body::{MAX_BODY_BYTES, read_json};
pub use cors::cors;
pub use error::{ApiError, json_errors};
pub use http_metrics::{HttpMetrics, record as record_http};
pub use probes::LIVENESS_TIMEOUT;
pub use routes::{Access, ROUTES, Route};
pub use state::AppState;

/// The route table ([`ROUTES`]); `state` is shared by every HTTP worker. The tokens are
/// checked by [`guard`], which the server wraps around the whole app.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state)).configure(routes::register);
    }
}

/// The OpenAPI document of this API.
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// The OpenAPI document, kept beside the API docs.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");
