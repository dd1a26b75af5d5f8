//! The REST API (contract §5): the route table and the OpenAPI document; the shared state,
//! errors, the bearer token, body parsing and the endpoints each have a file of their own.
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
mod state;
mod tasks;
mod workers;

use std::sync::Arc;

use actix_web::{HttpResponse, web};

pub use auth::{authorize, guard_everything};
pub use body::{MAX_BODY_BYTES, read_json};
pub use cors::cors;
pub use dashboard::is_page;
pub use error::{ApiError, json_errors};
pub use http_metrics::{HttpMetrics, record as record_http};
pub use probes::{LIVENESS_TIMEOUT, is_probe};
pub use state::AppState;

/// The route table; `state` is shared by every HTTP worker.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state))
            .configure(dashboard::routes)
            .service(web::resource("/healthz").get(probes::healthz).route(web::head().to(probes::healthz)))
            .service(web::resource("/readyz").get(probes::readyz).route(web::head().to(probes::readyz)))
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
                        web::resource("/queues/{type}")
                            .get(workers::queue_page)
                            .route(web::head().to(workers::queue_page)),
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
            .service(web::resource("/metrics").get(metrics::metrics).route(web::head().to(metrics::metrics)));
    }
}

/// The OpenAPI document of this API.
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// The OpenAPI document, kept beside the API docs.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");
