//! The real `workerpool` binary as a server on a free loopback port, and a small HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    _config: TempFile,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Server {
    /// Starts `workerpool serve` with `config` (TOML text) and extra environment variables,
    /// and waits (at most 30 s) until it listens.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Server {
        Server::start_with(config, env, false)
    }

    /// As [`Server::start`], in a process group of its own (as a shell gives a foreground
    /// command), so a test can signal the whole group like a terminal's Ctrl-C.
    pub fn start_grouped(config: &str, env: &[(&str, &str)]) -> Server {
        Server::start_with(config, env, true)
    }

    fn start_with(config: &str, env: &[(&str, &str)], grouped: bool) -> Server {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wp-test-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, config).expect("write the test config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_workerpool"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env_remove("WORKERPOOL_API_TOKEN")
            .env_remove("WORKERPOOL_READ_TOKEN")
            .env_remove("WORKERPOOL_PROTECT_READS")
            .env_remove("MAX_WORKERS")
            .env_remove("WORKER_POOL_SIZE")
            .env_remove("LOG_FORMAT")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_HOST")
            .env_remove("REDIS_PASSWORD")
            .env_remove("INSTANCE_ID")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if grouped {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let mut child = cmd.spawn().expect("spawn workerpool");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    // A JSON line (`LOG_FORMAT=json`) ends the message with `"}`.
                    let addr = addr.split('"').next().unwrap_or(addr);
                    let _ = tx.send(addr.trim().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not start: {:#?}", log.lock().unwrap());
            }
        };
        Server { child, base, log, _config: TempFile(path) }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal and returns at once.
    pub fn signal(&self, signal: &str) {
        let ok =
            Command::new("kill").args([signal, &self.child.id().to_string()]).status().map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill {signal} failed");
    }

    /// Kills the server at once (SIGKILL): no shutdown of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal and waits (at most `limit`) for the exit code.
    pub fn signal_and_wait(&mut self, signal: &str, limit: Duration) -> Option<i32> {
        self.signal_target_and_wait(signal, &self.child.id().to_string(), limit)
    }

    /// Sends a signal to the server's whole process group (see [`Server::start_grouped`]).
    pub fn signal_group_and_wait(&mut self, signal: &str, limit: Duration) -> Option<i32> {
        let group = format!("-{}", self.child.id());
        self.signal_target_and_wait(signal, &group, limit)
    }

    fn signal_target_and_wait(&mut self, signal: &str, target: &str, limit: Duration) -> Option<i32> {
        let ok = Command::new("kill").args([signal, "--", target]).status().map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill {signal} failed");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the server did not exit after {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An HTTP client that returns every status as a value, never as an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A response: status, headers we care about, and the body as JSON (or a string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
    pub retry_after: Option<String>,
}

fn reply(mut res: ureq::http::Response<ureq::Body>) -> Reply {
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let text = res.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status: res.status().as_u16(), body, content_type, retry_after }
}

/// `GET url`.
pub fn get(url: &str) -> Reply {
    get_with(url, None)
}

/// `GET url` with an optional bearer token; the body is read to its end.
pub fn get_with(url: &str, token: Option<&str>) -> Reply {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    reply(req.call().expect("GET"))
}

/// `POST url` with a raw body and optional bearer token.
pub fn post(url: &str, body: &str, token: Option<&str>) -> Reply {
    let mut req = agent().post(url).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    reply(req.send(body).expect("POST"))
}

/// `DELETE url` with an optional bearer token.
pub fn delete(url: &str, token: Option<&str>) -> Reply {
    let mut req = agent().delete(url);
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    reply(req.call().expect("DELETE"))
}

/// A config with one process type `text_processing` on the demo worker (no GPU needed).
pub const TEXT_ONLY: &str = "[pool]\nmax_workers = 4\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 2000\n\n[types.text_processing]\nmax_concurrent = 2\nqueue_size = 20\nretry_delay_ms = 20\ncpu_threshold = 100\n";

/// `POST /api/workers/execute` with a JSON body.
pub fn execute(server: &Server, body: Value) -> Reply {
    post(&server.url("/api/workers/execute"), &body.to_string(), None)
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; says which.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Whether `text_processing` has a task running.
pub fn text_busy(server: &Server) -> bool {
    get(&server.url("/api/workers/stats")).body["by_type"]["text_processing"]["busy"] == 1
}

// ===== server-sent events =====

/// Opens an SSE stream and returns the head and a reader positioned after it.
pub fn sse(server: &Server, path: &str, timeout: Duration) -> (String, BufReader<TcpStream>) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    (head, reader)
}

/// Reads SSE messages until `stop` says so, `limit` messages, EOF or the read timeout.
pub fn read_events(
    reader: &mut BufReader<TcpStream>,
    limit: usize,
    stop: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut event = String::new();
    let mut line = String::new();
    while out.len() < limit {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end();
        if let Some(name) = l.strip_prefix("event: ") {
            event = name.to_string();
        } else if let Some(data) = l.strip_prefix("data: ") {
            let value = serde_json::from_str(data).unwrap_or(Value::Null);
            let done = stop(&event, &value);
            out.push((event.clone(), value));
            if done {
                break;
            }
        }
    }
    out
}
