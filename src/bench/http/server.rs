//! The server of `http-execute`: `workerpool serve` as a child process with a configuration
//! file of its own, its stderr read on a thread, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The log filter of the server: its `listening on` line, no per-request lines
/// (`workerpool::http` logs every request at info).
const SERVER_LOG: &str = "warn,workerpool=info,workerpool::http=warn";
/// How long the server may take to listen, and its workers to be ready.
pub(super) const SERVER_START: Duration = Duration::from_secs(30);
/// How long the server may take to exit after SIGTERM before it is killed.
const SERVER_STOP: Duration = Duration::from_secs(15);

/// The server's configuration: one type, two warm prefetching demo workers.
const SERVER_CONFIG: &str = "\
# written by `workerpool bench http-execute`; removed when it ends
[pool]
max_workers = 2
min_workers = 2
graceful_shutdown_timeout_ms = 2000

[types.text_processing]
max_concurrent = 2
queue_size = 1000
cpu_threshold = 100
prefetch = 8
";

/// Variables of the server's settings that would change what is measured.
const SERVER_ENV_REMOVED: [&str; 13] = [
    "WORKERPOOL_API_TOKEN",
    "WORKERPOOL_BIND",
    "MAX_WORKERS",
    "WORKER_POOL_SIZE",
    "MIN_WORKERS",
    "WORKER_TIMEOUT",
    "WORKER_QUEUE_SIZE",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "INSTANCE_ID",
    "LOG_FORMAT",
];
/// What the server wrote on stderr.
#[derive(Default)]
pub(super) struct ServerLog {
    pub(super) lines: u64,
    /// The first warnings and errors.
    pub(super) notable: Vec<String>,
    /// The last lines, for a server that did not start.
    tail: Vec<String>,
}

/// `workerpool serve` as a child process: SIGTERM and a wait when dropped, then its
/// configuration file removed.
pub(super) struct ServerChild {
    child: Child,
    config: PathBuf,
    pub(super) log: Arc<Mutex<ServerLog>>,
    reader: Option<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl ServerChild {
    /// Writes the configuration, starts the server and waits for its `listening on` line.
    pub(super) fn start(exe: &Path) -> anyhow::Result<(ServerChild, SocketAddr)> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let config = std::env::temp_dir().join(format!(
            "workerpool-bench-{}-{}.toml",
            std::process::id(),
            nanos.subsec_nanos()
        ));
        std::fs::write(&config, SERVER_CONFIG)
            .with_context(|| format!("cannot write the server's configuration {}", config.display()))?;
        let mut command = Command::new(exe);
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env("RUST_LOG", SERVER_LOG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for name in SERVER_ENV_REMOVED {
            command.env_remove(name);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&config);
                return Err(e).with_context(|| format!("cannot start {} serve", exe.display()));
            }
        };
        let stderr = child.stderr.take().context("the server's stderr was not piped")?;
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let (tx, rx) = mpsc::channel();
        let reader_log = log.clone();
        let reader = std::thread::Builder::new().name("bench-server-log".into()).spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                    let _ = tx.send(addr);
                }
                let mut log = reader_log.lock().unwrap_or_else(|e| e.into_inner());
                log.lines += 1;
                if (line.contains(" WARN ") || line.contains(" ERROR ")) && log.notable.len() < 5 {
                    log.notable.push(line.clone());
                }
                log.tail.push(line);
                if log.tail.len() > 20 {
                    log.tail.remove(0);
                }
            }
        });
        let mut server = ServerChild { child, config, log, reader: reader.ok(), exit: None };
        let addr = match rx.recv_timeout(SERVER_START) {
            Ok(addr) => addr,
            Err(_) => {
                server.stop();
                let tail = server.log.lock().unwrap_or_else(|e| e.into_inner()).tail.join("\n");
                bail!(
                    "the server did not say where it listens (exit: {:?}); its stderr:\n{tail}",
                    server.exit
                );
            }
        };
        let addr = addr.parse().with_context(|| format!("the server listens on {addr:?}, not an address"))?;
        Ok((server, addr))
    }

    /// SIGTERM (through `kill`, as std has no signals but SIGKILL), a wait for the graceful
    /// shutdown, SIGKILL after [`SERVER_STOP`]; then the log reader and the file go.
    pub(super) fn stop(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            let pid = self.child.id().to_string();
            let termed = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
            let deadline = Instant::now() + if termed { SERVER_STOP } else { Duration::ZERO };
            self.exit = loop {
                match self.child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        log::warn!("the server did not exit after SIGTERM; killing it");
                        let _ = self.child.kill();
                        break self.child.wait().ok();
                    }
                }
            };
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
            let _ = std::fs::remove_file(&self.config);
        }
        self.exit
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self.stop();
    }
}
