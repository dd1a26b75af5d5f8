//! `workerpool serve`: starts the actor tree and runs until SIGTERM or SIGINT, then shuts down
//! gracefully (contract §2).

use anyhow::Context as _;
use workerpool_actors::{PoolBuilder, PoolHandle};

use crate::settings::Settings;

/// Runs the server until a termination signal; returns after the graceful shutdown.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let pool = start(&settings)?;
    let signal = wait_for_signal().await?;
    log::info!("{signal} received: shutting down (grace {} ms)", settings.pool.graceful_shutdown_timeout_ms);
    let report = pool.shutdown().await;
    log::info!(
        "shutdown complete: {} finished in the grace period, {} running and {} waiting failed with reason shutdown",
        report.finished_in_grace,
        report.failed_running,
        report.failed_waiting
    );
    Ok(())
}

/// Starts the actor tree with the settings' configuration.
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
