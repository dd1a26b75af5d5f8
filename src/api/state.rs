//! [`AppState`]: what every handler can reach (the pool, the settings, the stopping flags).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use workerpool_actors::PoolHandle;

use super::http_metrics::HttpMetrics;
use crate::settings::Settings;

fn registered(m: Result<HttpMetrics, prometheus::Error>) -> Option<HttpMetrics> {
    m.inspect_err(|e| log::warn!("cannot register the HTTP metrics: {e}")).ok()
}

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
    /// The HTTP request metrics, on the pool's registry (`None` if they could not be
    /// registered there, e.g. a second state on the same registry).
    pub http: Option<HttpMetrics>,
}

impl AppState {
    /// New state around a started pool.
    pub fn new(pool: PoolHandle, settings: Settings) -> Arc<AppState> {
        let registry = pool.metrics().registry().clone();
        let registry = &registry;
        if let Err(e) = crate::build_info::register(registry) {
            log::warn!("cannot register the build and process metrics: {e}");
        }
        Arc::new(AppState {
            pool,
            settings,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            closing: tokio::sync::watch::Sender::new(false),
            http: registered(HttpMetrics::new(registry)),
        })
    }

    /// Whether a shutdown began.
    pub(super) fn stopping(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}
