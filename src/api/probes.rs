//! `GET /healthz` and `GET /readyz`: the probes of an orchestrator, open without the token and
//! cheap (no resource sampling, no Redis round trip of their own).
//!
//! Liveness asks only whether the process serves HTTP and its actor tree answers; readiness
//! whether this instance should get traffic now. Neither looks at error rates: a type whose
//! tasks fail is `/api/workers/health`'s business, and restarting the server would not help it.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::state::AppState;

/// How long `/healthz` waits for the actor tree to answer before calling it dead.
pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(1);

/// What readiness is decided from: read from the state, the backend and the stats.
#[derive(Debug, Default)]
pub(super) struct ReadinessInput {
    /// A shutdown began.
    pub shutting_down: bool,
    /// Why the shared backend cannot be reached, if so.
    pub backend_down: Option<String>,
    /// Per configured type: why it cannot run a task now, if so.
    pub types: Vec<(String, Option<String>)>,
}

/// Ready when not shutting down, the backend answers and at least one type can run; else the
/// reasons, one per cause.
pub(super) fn readiness(input: &ReadinessInput) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    if input.shutting_down {
        reasons.push("shutting down".to_string());
    }
    if let Some(why) = &input.backend_down {
        reasons.push(format!("Redis unavailable: {why}"));
    }
    if input.types.iter().all(|(_, why)| why.is_some()) {
        let each: Vec<String> = input
            .types
            .iter()
            .map(|(name, why)| format!("{name}: {}", why.as_deref().unwrap_or_default()))
            .collect();
        if each.is_empty() {
            reasons.push("no task type is configured".to_string());
        } else {
            reasons.push(format!("no task type can run ({})", each.join("; ")));
        }
    }
    if reasons.is_empty() { Ok(()) } else { Err(reasons) }
}

/// `GET /healthz`: 200 while the actor tree answers a stats call within
/// [`LIVENESS_TIMEOUT`], else 503.
pub(super) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match tokio::time::timeout(LIVENESS_TIMEOUT, state.pool.stats()).await {
        Ok(Ok(_)) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Ok(Err(e)) => probe_failed(vec![format!("the actor tree answered with an error: {e}")]),
        Err(_) => probe_failed(vec![format!(
            "the actor tree did not answer within {} ms",
            LIVENESS_TIMEOUT.as_millis()
        )]),
    }
}

/// `GET /readyz`: 200 when [`readiness`] says ready, else 503 with the reasons.
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let stats = match tokio::time::timeout(LIVENESS_TIMEOUT, state.pool.stats()).await {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => return probe_failed(vec![format!("the actor tree answered with an error: {e}")]),
        Err(_) => return probe_failed(vec!["the actor tree did not answer".to_string()]),
    };
    let types = state
        .pool
        .config()
        .types
        .keys()
        .map(|name| {
            let why = match state.pool.availability(name) {
                Err(e) => Some(e.message().to_string()),
                Ok(()) if stats.by_type.get(name).is_some_and(|t| t.cannot_start) => {
                    Some("gave up starting workers".to_string())
                }
                Ok(()) => None,
            };
            (name.clone(), why)
        })
        .collect();
    let input =
        ReadinessInput { shutting_down: state.stopping(), backend_down: state.pool.backend_down(), types };
    match readiness(&input) {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "reasons": []})),
        Err(reasons) => probe_failed(reasons),
    }
}

fn probe_failed(reasons: Vec<String>) -> HttpResponse {
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
        .json(json!({"status": "unavailable", "reasons": reasons}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(types: &[(&str, Option<&str>)]) -> ReadinessInput {
        ReadinessInput {
            types: types.iter().map(|(n, w)| (n.to_string(), w.map(str::to_string))).collect(),
            ..ReadinessInput::default()
        }
    }

    #[test]
    fn ready_while_one_type_can_run() {
        assert_eq!(readiness(&input(&[("a", Some("needs a GPU")), ("b", None)])), Ok(()));
    }

    #[test]
    fn not_ready_when_no_type_can_run() {
        let reasons = readiness(&input(&[("a", Some("needs a GPU")), ("b", Some("gave up"))])).unwrap_err();
        assert_eq!(reasons, ["no task type can run (a: needs a GPU; b: gave up)"]);
        assert_eq!(readiness(&input(&[])).unwrap_err(), ["no task type is configured"]);
    }

    #[test]
    fn not_ready_while_shutting_down_or_the_backend_is_down() {
        let mut i = input(&[("a", None)]);
        i.shutting_down = true;
        i.backend_down = Some("connection refused".into());
        assert_eq!(readiness(&i).unwrap_err(), ["shutting down", "Redis unavailable: connection refused"]);
    }
}
