//! `workerpool_http_requests_total{route,status}` and
//! `workerpool_http_request_duration_seconds{route}`: every request, by the route template
//! that matched it (`/api/tasks/{id}`), never by its raw path, so no client can add series
//! without bound; a path no route matches is `route="unmatched"`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::middleware::Next;
use actix_web::{dev, web};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::state::AppState;

/// The `route` of a request no route matches.
pub const UNMATCHED: &str = "unmatched";

/// Buckets of the request duration histogram, in seconds: 1 ms to 60 s (a waited `execute`
/// lasts as long as its task).
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0];

/// The two HTTP collectors.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    /// Creates the collectors and registers them on `registry`.
    pub fn new(registry: &Registry) -> Result<HttpMetrics, prometheus::Error> {
        let m = HttpMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "workerpool_http_requests_total",
                    "HTTP requests answered, by route template and status",
                ),
                &["route", "status"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "workerpool_http_request_duration_seconds",
                    "Time to answer, by route template",
                )
                .buckets(BUCKETS.to_vec()),
                &["route"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        Ok(m)
    }

    fn observe(&self, route: &str, status: u16, started: Instant) {
        let code = status.to_string();
        self.requests.with_label_values(&[route, code.as_str()]).inc();
        self.duration.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    }
}

/// The route label of a request: the template of the resource that matches its path.
pub fn route_label(pattern: Option<String>) -> String {
    pattern.filter(|p| !p.is_empty()).unwrap_or_else(|| UNMATCHED.to_string())
}

/// Middleware: counts and times every request (outermost, so it sees the final status).
pub async fn record(
    req: dev::ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<dev::ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // The resource map matches the path before routing has run.
    let route = route_label(req.match_pattern());
    let metrics = req.app_data::<web::Data<AppState>>().and_then(|s| s.http.clone());
    let res = next.call(req).await;
    if let Some(m) = metrics {
        let status = match &res {
            Ok(res) => res.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        m.observe(&route, status.as_u16(), started);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_no_route_matches_is_unmatched() {
        assert_eq!(route_label(None), "unmatched");
        assert_eq!(route_label(Some(String::new())), "unmatched");
        assert_eq!(route_label(Some("/api/tasks/{id}".into())), "/api/tasks/{id}");
    }

    #[test]
    fn a_request_is_counted_by_route_and_status() {
        let registry = Registry::new();
        let m = HttpMetrics::new(&registry).unwrap();
        m.observe("/api/tasks/{id}", 404, Instant::now());
        let text = format!("{:?}", registry.gather());
        assert!(text.contains("/api/tasks/{id}") && text.contains("404"), "{text}");
        assert!(HttpMetrics::new(&registry).is_err(), "registered twice");
    }
}
