//! `workerpool serve`: the actor tree behind actix-web, until SIGTERM or SIGINT, then a
//! graceful shutdown (contract §2).

use std::sync::atomic::Ordering;

use actix_web::{App, HttpServer, middleware};
use anyhow::Context as _;
use workerpool_actors::{EventKind, PoolBuilder, PoolHandle};

use crate::api::{self, AppState};
use crate::settings::Settings;

/// Runs the server until a termination signal; returns after the graceful shutdown.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    if let Some(url) = &settings.redis_url {
        // The password, if any, stays out of the log.
        let host = url.rsplit('@').next().unwrap_or(url);
        log::info!(
            "shared queues in Redis at {host} (keys under {{{}}}), instance {}",
            settings.pool.redis.prefix,
            settings.instance_id
        );
    }
    let pool = start(&settings)?;
    actix_rt::spawn(log_events(pool.clone()));
    let state = AppState::new(pool.clone(), settings.clone());
    let app_state = state.clone();
    let protect_reads = settings.protect_reads && settings.api_token.is_some();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(api::json_errors())
            .wrap(middleware::Condition::new(protect_reads, middleware::from_fn(api::guard_everything)))
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("workerpool::http"))
            .configure(api::configure(app_state.clone()))
    })
    .disable_signals()
    .shutdown_timeout(5)
    .bind(&settings.bind)
    .with_context(|| format!("cannot listen on {}", settings.bind))?;
    for addr in server.addrs() {
        log::info!("listening on http://{addr}");
    }
    let server = server.run();
    let handle = server.handle();
    let serving = actix_rt::spawn(server);

    let signal = wait_for_signal().await?;
    log::info!("{signal} received: shutting down (grace {} ms)", settings.pool.graceful_shutdown_timeout_ms);
    state.shutting_down.store(true, Ordering::Release);
    let report = pool.shutdown().await;
    log::info!(
        "shutdown complete: {} finished in the grace period, {} running and {} waiting failed with reason shutdown",
        report.finished_in_grace,
        report.failed_running,
        report.failed_waiting
    );
    // Waiting requests were answered by the drain; the event streams end, then the listener
    // can go.
    state.closing.send_replace(true);
    handle.stop(true).await;
    let _ = serving.await;
    Ok(())
}

/// Starts the actor tree with the settings' configuration and its metrics.
pub fn start(settings: &Settings) -> anyhow::Result<PoolHandle> {
    let pool = PoolBuilder::new(settings.pool.clone()).start().context("cannot start the pool")?;
    log::info!(
        "workerpool {} started: {} types, max_workers {}, config {}",
        settings.instance_id,
        settings.pool.types.len(),
        settings.pool.max_workers,
        settings.config_path.as_ref().map_or("(built-in defaults)".into(), |p| p.display().to_string()),
    );
    Ok(pool)
}

/// Logs every pool event, one line each with its worker and task ids: worker events at info,
/// task events at debug (`RUST_LOG=workerpool::events=debug` shows them).
async fn log_events(pool: PoolHandle) {
    let mut rx = pool.subscribe();
    loop {
        match rx.recv().await {
            Ok(event) => {
                let level = match event.kind {
                    EventKind::TaskAssigned { .. }
                    | EventKind::TaskProgress { .. }
                    | EventKind::TaskCompleted { .. } => log::Level::Debug,
                    _ => log::Level::Info,
                };
                if log::log_enabled!(target: "workerpool::events", level) {
                    let data = serde_json::to_string(&event.kind).unwrap_or_default();
                    log::log!(target: "workerpool::events", level, "{} {data}", event.kind.name());
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                log::warn!(target: "workerpool::events", "{n} events not logged (the log fell behind)");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Waits for SIGTERM or SIGINT and says which came.
pub async fn wait_for_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}
