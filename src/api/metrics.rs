//! `GET /metrics`: the Prometheus text exposition of the pool's registry.

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, TextEncoder};

use super::error::ApiError;
use super::state::AppState;

/// Refreshes the gauges (reading stats does) and renders every `workerpool_*` family.
pub(super) async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.pool.stats().await?;
    let families = state.pool.metrics().registry().gather();
    let mut out = Vec::with_capacity(8192);
    TextEncoder::new().encode(&families, &mut out).map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
    })?;
    Ok(HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(out))
}
