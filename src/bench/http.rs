//! The HTTP cases: `http-ceiling` (a bare actix-web server in this process) and `http-execute`
//! (the real server, `workerpool serve`, as a child process), both driven by the same load
//! generator.
//!
//! The load generator is [`CONNECTIONS`] tasks on one current-thread tokio runtime (the
//! calling thread), each with one keep-alive HTTP/1.1 connection on which it writes a fixed
//! request and reads the whole response before the next, for a fixed time. Its client is the
//! smallest one that is correct for these servers: status line, headers up to CRLFCRLF,
//! `content-length`, then the body, however the bytes are split over reads; a chunked or
//! unframed response is an error, `connection: close` makes it reconnect.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_rt::net::TcpStream;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::LocalSet;

use super::args::BenchArgs;
use super::case::Case;
use super::driver::{client_runtime, current_exe, warm_then_measure};
use super::report::{CaseResult, Run, Unit};

/// Keep-alive connections of the load generator, each with one request in flight.
pub(crate) const CONNECTIONS: usize = 64;
/// The unmeasured warm-up before the measured runs.
const WARMUP: Duration = Duration::from_secs(1);
/// HTTP workers of the bare server (`workerpool serve` uses actix-web's default: one per core).
const CEILING_WORKERS: usize = 2;
/// The route both cases load.
const EXECUTE_PATH: &str = "/api/workers/execute";
/// The body both cases send.
const EXECUTE_BODY: &str = r#"{"type":"text_processing","data":{"op":"echo"}}"#;
/// Where the body of a completed task says so (the server writes compact JSON).
const COMPLETED: &[u8] = br#""status":"completed""#;
/// The log filter of the server: its `listening on` line, no per-request lines
/// (`workerpool::http` logs every request at info).
const SERVER_LOG: &str = "warn,workerpool=info,workerpool::http=warn";
/// The most a response head may take.
const MAX_HEAD: usize = 64 * 1024;
/// How long the server may take to listen, and its workers to be ready.
const SERVER_START: Duration = Duration::from_secs(30);
/// How long the server may take to exit after SIGTERM before it is killed.
const SERVER_STOP: Duration = Duration::from_secs(15);

/// The fixed request of both cases.
fn execute_request(addr: SocketAddr) -> Rc<[u8]> {
    format!(
        "POST {EXECUTE_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{EXECUTE_BODY}",
        EXECUTE_BODY.len()
    )
    .into_bytes()
    .into()
}

// ===== the client =====

/// What a response head says.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: usize,
    close: bool,
}

/// Parses a response head (status line and headers, without the final CRLFCRLF).
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let text = std::str::from_utf8(head).map_err(|_| bad("a response head that is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split(' ');
    let status = match (words.next(), words.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    }
    .ok_or_else(|| bad(format!("a bad status line {status_line:?}")))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| bad(format!("a bad header {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse().map_err(|_| bad(format!("a bad content-length {value:?}")))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad(format!("transfer-encoding {value:?} is not supported by this client")));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let content_length = match content_length {
        Some(n) => n,
        None if status == 204 || status == 304 => 0,
        None => return Err(bad(format!("a {status} response without content-length"))),
    };
    Ok(Head { status, content_length, close })
}

/// Where a response head ends (just past its CRLFCRLF), if it has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// One keep-alive HTTP/1.1 connection, one request at a time.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Bytes read and not yet consumed; the previous response's are dropped at the next call.
    buf: Vec<u8>,
    consumed: usize,
    /// Connections opened again after the server closed one.
    reconnects: u64,
}

impl Conn {
    async fn open(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = Conn::open(addr).await?;
        Ok(Conn { addr, stream: Some(stream), buf: Vec::with_capacity(4096), consumed: 0, reconnects: 0 })
    }

    /// Reads more bytes into the buffer; the end of the stream is an error.
    async fn fill(&mut self) -> io::Result<()> {
        let stream = self.stream.as_mut().ok_or_else(|| io::Error::other("not connected"))?;
        self.buf.reserve(4096);
        if stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        Ok(())
    }

    /// Writes `request` and reads its whole response: the status and the body.
    async fn roundtrip(&mut self, request: &[u8]) -> io::Result<(u16, &[u8])> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        if self.stream.is_none() {
            self.buf.clear();
            self.stream = Some(Conn::open(self.addr).await?);
            self.reconnects += 1;
        }
        let stream = self.stream.as_mut().ok_or_else(|| io::Error::other("not connected"))?;
        stream.write_all(request).await?;
        let body_start = loop {
            if let Some(end) = head_end(&self.buf) {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "a response head over 64 KiB"));
            }
            self.fill().await?;
        };
        let head = parse_head(&self.buf[..body_start - 4])?;
        let body_end = body_start + head.content_length;
        while self.buf.len() < body_end {
            self.fill().await?;
        }
        self.consumed = body_end;
        if head.close {
            self.stream = None;
        }
        Ok((head.status, &self.buf[body_start..body_end]))
    }
}

/// One GET on a fresh connection: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut conn = Conn::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (status, body) = conn.roundtrip(request.as_bytes()).await?;
    Ok((status, body.to_vec()))
}

// ===== the load generator =====

/// Checks one response; `Err` makes it a failed request.
type Check = fn(u16, &[u8]) -> Result<(), String>;

/// What one connection's loop saw.
#[derive(Default)]
struct ConnResult {
    latencies: Vec<Duration>,
    non_ok: u64,
    failed: u64,
    first_error: Option<String>,
    reconnects: u64,
}

/// Keeps [`CONNECTIONS`] keep-alive connections busy with `request` for `secs`, timing each
/// request from its write to the end of its response; every response goes through `check`.
/// A failed request, or a connection that breaks, makes the run an error. The connections
/// are opened before the clock starts; the run ends when the last one has its last answer.
async fn load(addr: SocketAddr, request: Rc<[u8]>, duration: Duration, check: Check) -> anyhow::Result<Run> {
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        conns.push(Conn::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(k, mut conn)| {
            let request = request.clone();
            tokio::task::spawn_local(async move {
                let mut out = ConnResult::default();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let (status, body) =
                        conn.roundtrip(&request).await.map_err(|e| format!("connection {k}: {e}"))?;
                    out.latencies.push(t0.elapsed());
                    if let Err(e) = check(status, body) {
                        out.failed += 1;
                        out.non_ok += u64::from(status != 200);
                        out.first_error.get_or_insert(e);
                    }
                }
                out.reconnects = conn.reconnects;
                Ok::<_, String>(out)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut failed, mut non_ok, mut reconnects) = (0, 0, 0);
    let mut first_error = None;
    for handle in handles {
        let out = handle.await.context("a connection loop of the load generator panicked")?;
        let out = out.map_err(anyhow::Error::msg)?;
        latencies.extend(out.latencies);
        failed += out.failed;
        non_ok += out.non_ok;
        reconnects += out.reconnects;
        if first_error.is_none() {
            first_error = out.first_error;
        }
    }
    let elapsed = started.elapsed();
    if failed > 0 {
        bail!(
            "{failed} of {} requests failed ({non_ok} not 200); first: {}",
            latencies.len(),
            first_error.unwrap_or_default()
        );
    }
    if reconnects > 0 {
        log::warn!("the server closed {reconnects} keep-alive connections during a run");
    }
    Ok(Run::new(elapsed, latencies))
}

/// The warm-up, then `args.runs` measured runs of `args.http_secs` each, against `addr`.
fn measure(addr: SocketAddr, args: &BenchArgs, check: Check) -> anyhow::Result<Vec<Run>> {
    let rt = client_runtime()?;
    let request = execute_request(addr);
    let run_ms = args.http_secs * 1000;
    let warmup_ms = WARMUP.as_millis() as u64;
    LocalSet::new().block_on(
        &rt,
        warm_then_measure(warmup_ms, run_ms, args.runs, |ms| {
            load(addr, request.clone(), Duration::from_millis(ms), check)
        }),
    )
}

/// A snippet of a body for an error message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    if body.len() > 200 { format!("{text}…") } else { text.into_owned() }
}

// ===== http-ceiling =====

async fn ceiling_execute(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body("{}")
}

fn ceiling_check(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 && body == b"{}" { Ok(()) } else { Err(format!("{status}: {}", snippet(body))) }
}

pub(super) fn http_ceiling(args: &BenchArgs) -> anyhow::Result<CaseResult> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("bench-http-ceiling".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server =
                    HttpServer::new(|| App::new().route(EXECUTE_PATH, web::post().to(ceiling_execute)))
                        .workers(CEILING_WORKERS)
                        .disable_signals()
                        .shutdown_timeout(1)
                        .bind(("127.0.0.1", 0));
                let server = match server {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot listen on 127.0.0.1:0: {e}")));
                        return;
                    }
                };
                let addr = server.addrs()[0];
                let server = server.run();
                let _ = tx.send(Ok((addr, server.handle())));
                let _ = server.await;
            })
        })
        .context("cannot start the server thread")?;
    let (addr, handle) = rx
        .recv_timeout(SERVER_START)
        .context("the bare actix-web server did not start")?
        .map_err(anyhow::Error::msg)?;
    let runs = measure(addr, args, ceiling_check);
    client_runtime()?.block_on(handle.stop(true));
    if thread.join().is_err() {
        bail!("the server thread panicked");
    }
    Ok(CaseResult {
        case: Case::HttpCeiling.name(),
        unit: Unit::Requests,
        runs: runs?,
        window: CONNECTIONS,
        details: format!(
            "warmup={}s secs={} connections={CONNECTIONS} keep-alive client=current-thread \
             server=bare-actix-web(in-process,own-thread) http-workers={CEILING_WORKERS} answer={{}}",
            WARMUP.as_secs(),
            args.http_secs
        ),
    })
}

// ===== http-execute =====

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

fn execute_check(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 && body.windows(COMPLETED.len()).any(|w| w == COMPLETED) {
        Ok(())
    } else {
        Err(format!("{status}: {}", snippet(body)))
    }
}

/// What the server wrote on stderr.
#[derive(Default)]
struct ServerLog {
    lines: u64,
    /// The first warnings and errors.
    notable: Vec<String>,
    /// The last lines, for a server that did not start.
    tail: Vec<String>,
}

/// `workerpool serve` as a child process: SIGTERM and a wait when dropped, then its
/// configuration file removed.
struct ServerChild {
    child: Child,
    config: PathBuf,
    log: Arc<Mutex<ServerLog>>,
    reader: Option<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl ServerChild {
    /// Writes the configuration, starts the server and waits for its `listening on` line.
    fn start(exe: &Path) -> anyhow::Result<(ServerChild, SocketAddr)> {
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
    fn stop(&mut self) -> Option<ExitStatus> {
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

/// Waits until the server's two workers are idle (started and ready).
async fn wait_for_workers(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + SERVER_START;
    loop {
        let (status, body) = get(addr, "/api/workers/stats").await.context("GET /api/workers/stats")?;
        let stats: Value = serde_json::from_slice(&body).unwrap_or_default();
        if status == 200 && stats["by_type"]["text_processing"]["available"].as_u64() >= Some(2) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server's workers are not ready after {SERVER_START:?}: {status} {}", snippet(&body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) fn http_execute(args: &BenchArgs) -> anyhow::Result<CaseResult> {
    let exe = current_exe()?;
    let (mut server, addr) = ServerChild::start(&exe)?;
    client_runtime()?.block_on(wait_for_workers(addr))?;
    let runs = measure(addr, args, execute_check)?;
    let (status, body) =
        client_runtime()?.block_on(get(addr, "/api/workers/stats")).context("GET /api/workers/stats")?;
    let stats: Value = serde_json::from_slice(&body)
        .with_context(|| format!("the server's stats ({status}) are not JSON: {}", snippet(&body)))?;
    let exit = server.stop();
    let log = server.log.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(failed) = stats["tasks_failed"].as_u64()
        && failed > 0
    {
        bail!("the server counted {failed} failed tasks");
    }
    if !log.notable.is_empty() {
        eprintln!("http-execute: the server warned:\n{}", log.notable.join("\n"));
    }
    let exit = exit.map_or("unknown".to_string(), |s| s.code().map_or(s.to_string(), |c| c.to_string()));
    Ok(CaseResult {
        case: Case::HttpExecute.name(),
        unit: Unit::Tasks,
        runs,
        window: CONNECTIONS,
        details: format!(
            "warmup={}s secs={} connections={CONNECTIONS} keep-alive client=current-thread \
             server=child(workerpool-serve) http-workers=default(1-per-core) workers=2 prefetch=8 \
             op=echo server-completed={} server-log-lines={} server-exit={exit}",
            WARMUP.as_secs(),
            args.http_secs,
            stats["tasks_completed"],
            log.lines,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_status_length_and_close() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nContent-Type: application/json";
        assert_eq!(parse_head(head).unwrap(), Head { status: 200, content_length: 2, close: false });
        let head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length:  17 \r\nConnection: close";
        assert_eq!(parse_head(head).unwrap(), Head { status: 503, content_length: 17, close: true });
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content").unwrap().content_length, 0);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK").is_err());
        assert!(parse_head(b"SSH-2.0 hello").is_err());
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\n{}"), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r"), None);
    }

    #[test]
    fn the_client_reads_responses_split_anywhere() {
        let rt = client_runtime().unwrap();
        rt.block_on(async {
            let listener = actix_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                // The first answer comes a byte at a time, the second in one write.
                let _ = s.read(&mut buf).await.unwrap();
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" {
                    s.write_all(&[*b]).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await.unwrap();
            });
            let mut conn = Conn::connect(addr).await.unwrap();
            let (status, body) = conn.roundtrip(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            assert_eq!((status, body), (200, &b"hello"[..]));
            let (status, body) = conn.roundtrip(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            assert_eq!((status, body), (404, &b""[..]));
            server.await.unwrap();
        });
    }

    #[test]
    fn checks_want_200_and_the_right_body() {
        assert!(ceiling_check(200, b"{}").is_ok());
        assert!(ceiling_check(500, b"{}").is_err());
        assert!(execute_check(200, br#"{"id":"x","status":"completed","result":{}}"#).is_ok());
        assert!(execute_check(200, br#"{"status":"failed"}"#).is_err());
        assert_eq!(execute_check(502, b"oops").unwrap_err(), "502: oops");
    }

    #[test]
    fn the_request_is_well_formed() {
        let req = execute_request("127.0.0.1:80".parse().unwrap());
        let text = std::str::from_utf8(&req).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, EXECUTE_BODY);
        assert!(head.starts_with("POST /api/workers/execute HTTP/1.1\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
