//! `workerpool serve`: the actor tree behind actix-web, until SIGTERM or SIGINT, then a
//! graceful shutdown (contract §2).
//!
//! What can fail at start fails before the pool starts: the TLS files are read, the
//! listening sockets bound and the signal handlers installed first, so a server that cannot
//! listen (or whose certificate or key is unusable) exits with code 2 and one line, having
//! started no worker.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::{App, HttpServer, middleware};
use anyhow::Context as _;
use workerpool_actors::{EventKind, PoolBuilder, PoolHandle};

use crate::api::{self, AppState};
use crate::logging;
use crate::settings::{ConfigError, Settings};
use crate::tls::ServerTls;

/// Pending connections the kernel keeps per listening socket (actix-web's default).
const BACKLOG: i32 = 1024;

/// Runs the server until a termination signal; returns after the graceful shutdown.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let tls = settings.tls.as_ref().map(crate::tls::load).transpose()?;
    let listeners = listen(&settings.bind)?;
    let signals = Signals::new()?;
    if let Some(url) = &settings.redis_url {
        // Shown redacted: `redis://:***@host:port/`.
        log::info!(
            "shared queues in Redis at {url} (keys under {{{}}}), instance {}",
            settings.pool.redis.prefix,
            settings.instance_id
        );
    }
    let pool = start(&settings)?;
    actix_rt::spawn(log_events(pool.clone()));
    let state = AppState::new(pool.clone(), settings.clone());
    let server = match http_server(&state, listeners, tls) {
        Ok(server) => server,
        Err(e) => {
            // The workers run already: stop them before the error ends the process.
            pool.shutdown().await;
            return Err(e);
        }
    };
    let handle = server.handle();
    let serving = actix_rt::spawn(server);

    let signal = signals.recv().await;
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

/// The HTTP server on `listeners` (HTTPS with `tls`), running once polled.
fn http_server(
    state: &Arc<AppState>,
    listeners: Vec<TcpListener>,
    tls: Option<ServerTls>,
) -> anyhow::Result<actix_web::dev::Server> {
    let settings = &state.settings;
    let tokens = settings.api_token.is_some();
    let app_state = state.clone();
    let cors_origins = settings.cors_origins.clone();
    let mut server = HttpServer::new(move || {
        let cors = api::cors(&cors_origins);
        // Innermost first: the token, then CORS (a preflight is answered before the token is
        // asked for, and a 401 gets the allow headers), then error bodies as JSON (the
        // framework's and a refused preflight's, keeping the CORS headers), then the log, then
        // the request metrics (which see every final status).
        App::new()
            .wrap(middleware::Condition::new(tokens, middleware::from_fn(api::guard)))
            .wrap(middleware::Condition::new(cors.is_some(), cors.unwrap_or_default()))
            .wrap(api::json_errors())
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("workerpool::http"))
            .wrap(middleware::from_fn(api::record_http))
            .configure(api::configure(app_state.clone()))
    })
    .disable_signals()
    .shutdown_timeout(5);
    for listener in listeners {
        server = match &tls {
            #[cfg(feature = "tls")]
            Some(config) => server.listen_rustls_0_23(listener, config.clone()),
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
            None => server.listen(listener),
        }
        .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", settings.bind)))?;
    }
    for (addr, scheme) in server.addrs_with_scheme() {
        log::info!("listening on {scheme}://{addr}");
    }
    Ok(server.run())
}

/// Binds every address `bind` names (`HOST:PORT`; a host name may resolve to several), as
/// actix-web's own `bind` does; fails when none can be bound, naming the address and why.
fn listen(bind: &str) -> Result<Vec<TcpListener>, ConfigError> {
    let refuse = |why: String| ConfigError(format!("cannot listen on {bind}: {why}"));
    let has_port = bind.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && !port.is_empty());
    if !has_port {
        return Err(refuse("no port given (expected HOST:PORT, e.g. 127.0.0.1:3002)".into()));
    }
    let addrs: Vec<SocketAddr> = bind.to_socket_addrs().map_err(|e| refuse(e.to_string()))?.collect();
    let mut listeners = Vec::new();
    let mut last_error = None;
    for addr in &addrs {
        match bind_one(*addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) if listeners.is_empty() => Err(refuse(e.to_string())),
        _ if listeners.is_empty() => Err(refuse("the name resolves to no address".into())),
        _ => Ok(listeners),
    }
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted server can listen at once although connections of the last one linger.
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
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
                    | EventKind::TaskCompleted { .. }
                    // The pool logs failed starts itself, once while they repeat.
                    | EventKind::StartBackoff { .. } => log::Level::Debug,
                    _ => log::Level::Info,
                };
                if log::log_enabled!(target: "workerpool::events", level) {
                    log_event(&event.kind, level);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                log::warn!(target: "workerpool::events", "{n} events not logged (the log fell behind)");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// One event as a log record: its fields as the record's structured fields (the top level of
/// a JSON line); the message is the event's name, and in text lines its data as well.
fn log_event(kind: &EventKind, level: log::Level) {
    let value = serde_json::to_value(kind).unwrap_or_default();
    let message = if logging::is_json() { String::new() } else { value.to_string() };
    let fields = logging::Fields(logging::event_fields(value));
    log::logger().log(
        &log::Record::builder()
            .target("workerpool::events")
            .level(level)
            .module_path_static(Some(module_path!()))
            .args(format_args!("{}{}{message}", kind.name(), if message.is_empty() { "" } else { " " }))
            .key_values(&fields)
            .build(),
    );
}

/// The termination signals, listened for from the start so that none is missed.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
            let int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
            Ok(Signals { term, int })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for SIGTERM or SIGINT and says which came.
    async fn recv(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
