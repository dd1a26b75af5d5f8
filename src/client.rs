//! The command-line client of a running server: `workerpool submit` and `workerpool status`.
//!
//! It speaks the REST API of contract §5 over plain HTTP with `ureq`. `submit` queues a task
//! (`"wait": false`), then follows `GET /api/tasks/{id}/events` (server-sent events) with a
//! progress bar on stderr, and falls back to polling `GET /api/tasks/{id}` when the stream
//! breaks. `status` prints `GET /api/workers/status` as aligned tables.
//!
//! Every failure is a [`ClientError`]; its [`ClientError::exit_code`] is 2 for usage mistakes
//! and 1 for the rest (the server cannot be reached, it refused the request, the task failed).

use std::fmt;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use ureq::http::{Response, StatusCode};

/// The server used when neither `--server` nor `WORKERPOOL_URL` names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3002";
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ordinary request (everything but the event stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest silence on the event stream: the server sends a keep-alive every 15 s.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// How often the fallback polls the task record.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The longest line accepted on the event stream.
const MAX_EVENT_LINE: u64 = 64 << 20;

// ===== arguments =====

/// Where the server is and how to authenticate (shared by `submit` and `status`).
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The server's base URL.
    #[arg(long, value_name = "URL", env = "WORKERPOOL_URL", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token sent with every request (the server's WORKERPOOL_API_TOKEN).
    #[arg(long, value_name = "TOKEN", env = "WORKERPOOL_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Arguments of `workerpool submit`.
#[derive(clap::Args, Debug, Clone)]
pub struct SubmitArgs {
    /// The task type (e.g. text_processing).
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: String,
    /// The task's input: JSON text, or @FILE to read it from a file.
    #[arg(long, value_name = "JSON", default_value = "{}", value_parser = parse_data)]
    pub data: Value,
    /// Priority; higher runs first (default 0).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Timeout of each attempt in milliseconds (default: the type's).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Retries after the first attempt (default: the type's).
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Milliseconds to wait before the task may run.
    #[arg(long, value_name = "MS")]
    pub delay: Option<u64>,
    /// Print `{"id","status"}` and return at once instead of waiting for the result.
    #[arg(long)]
    pub no_wait: bool,
    /// No progress bar and no notes on stderr (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `workerpool status`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Print the server's JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Parses `--data`: JSON text, or `@FILE` holding JSON.
fn parse_data(arg: &str) -> Result<Value, String> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            (text, format!(" in {path}"))
        }
        None => (arg.to_string(), String::new()),
    };
    serde_json::from_str(&text).map_err(|e| format!("not valid JSON{origin}: {e}"))
}

// ===== errors =====

/// Why a client command failed.
#[derive(Debug)]
pub enum ClientError {
    /// A mistake in the command line (exit 2).
    Usage(String),
    /// No connection to the server could be made.
    Unreachable {
        /// The server's base URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A connection was made but the exchange failed (timeout, broken stream, not HTTP).
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error status.
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's `error` message (or the body's start).
        message: String,
        /// The `Retry-After` header, when given.
        retry_after: Option<String>,
    },
    /// The server answered something this client does not understand.
    Unexpected {
        /// The URL asked.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The task ended without a result.
    TaskEnded {
        /// The task.
        id: String,
        /// Its final status (`failed`, `dead`, `timed_out`, `cancelled`).
        status: String,
        /// The error in its record.
        error: Option<String>,
    },
    /// Writing to stdout failed.
    Output(std::io::Error),
}

impl ClientError {
    /// The process exit code for this error: 2 for usage mistakes, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Usage(message) => f.write_str(message),
            ClientError::Unreachable { url, reason } => write!(
                f,
                "cannot reach the workerpool server at {url}: {reason} \
                 (is it running? start it with `workerpool serve`)"
            ),
            ClientError::Transport { url, reason } => write!(f, "request to {url} failed: {reason}"),
            ClientError::Server { status, message, retry_after } => {
                let reason =
                    StatusCode::from_u16(*status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
                write!(f, "the server answered {status} {reason}: {message}")?;
                if *status == 401 {
                    f.write_str(" (set WORKERPOOL_API_TOKEN or --token to the server's token)")?;
                }
                if let Some(after) = retry_after {
                    write!(f, " (retry after {after} s)")?;
                }
                Ok(())
            }
            ClientError::Unexpected { url, reason } => write!(f, "unexpected answer from {url}: {reason}"),
            ClientError::TaskEnded { id, status, error } => {
                write!(f, "task {id} {status}")?;
                match error {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
            ClientError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

// ===== HTTP =====

/// A connection to one server: base URL, bearer token and an HTTP agent.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server `connect` names (`http://host:port`; no scheme means http).
    pub fn new(connect: &ConnectArgs) -> Result<Client, ClientError> {
        let base = normalize_base(&connect.server)?;
        let token = connect.token.clone().filter(|t| !t.is_empty());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(Client { agent, base, token })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// `GET path`, expecting a 2xx JSON answer.
    pub fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.get(self.url(path)).header("accept", "application/json");
        if let Some(auth) = self.authorization() {
            req = req.header("authorization", auth);
        }
        let res = req.call().map_err(|e| self.transport(path, e))?;
        self.json_answer(path, res)
    }

    /// `POST path` with a JSON body, expecting a 2xx JSON answer.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let mut req = self.agent.post(self.url(path)).header("content-type", "application/json");
        if let Some(auth) = self.authorization() {
            req = req.header("authorization", auth);
        }
        let res = req.send(body.to_string()).map_err(|e| self.transport(path, e))?;
        self.json_answer(path, res)
    }

    /// Opens the event stream of a task; `Ok(None)` when the server does not offer one
    /// (an answer other than an event stream that is not a plain client error).
    fn open_events(&self, id: &str) -> Result<Option<Response<ureq::Body>>, ClientError> {
        let path = format!("/api/tasks/{id}/events");
        let mut req = self
            .agent
            .get(self.url(&path))
            .header("accept", "text/event-stream")
            .config()
            .timeout_global(None)
            .timeout_per_read(Some(STREAM_SILENCE))
            .build();
        if let Some(auth) = self.authorization() {
            req = req.header("authorization", auth);
        }
        let res = req.call().map_err(|e| self.transport(&path, e))?;
        let status = res.status().as_u16();
        let is_stream = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if (200..300).contains(&status) && is_stream {
            return Ok(Some(res));
        }
        if matches!(status, 401 | 403 | 404) {
            return Err(self.json_answer(&path, res).err().unwrap_or_else(|| ClientError::Unexpected {
                url: self.url(&path),
                reason: format!("status {status} without an event stream"),
            }));
        }
        log::debug!("no event stream from {path} ({status}); polling instead");
        Ok(None)
    }

    /// Reads a JSON answer; a non-2xx status becomes [`ClientError::Server`].
    fn json_answer(&self, path: &str, mut res: Response<ureq::Body>) -> Result<Value, ClientError> {
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = res.body_mut().read_to_string().map_err(|e| ClientError::Transport {
            url: self.url(path),
            reason: format!("cannot read the answer: {}", describe_ureq(&e)),
        })?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Server { status, message: error_message(&text), retry_after });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Unexpected {
            url: self.url(path),
            reason: format!("not JSON ({e}): {}", truncate(&text, 200)),
        })
    }

    /// Classifies a failed exchange: no connection at all, or a broken one.
    fn transport(&self, path: &str, e: ureq::Error) -> ClientError {
        use std::io::ErrorKind as K;
        let unreachable = match &e {
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
            ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve),
            ureq::Error::Io(io) => matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::AddrNotAvailable
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::NotFound
            ),
            _ => false,
        };
        if unreachable {
            ClientError::Unreachable { url: self.base.clone(), reason: describe_ureq(&e) }
        } else {
            ClientError::Transport { url: self.url(path), reason: describe_ureq(&e) }
        }
    }
}

/// Checks and normalises `--server`: a scheme-less `host:port` means `http://host:port`; no
/// trailing slash.
fn normalize_base(server: &str) -> Result<String, ClientError> {
    let server = server.trim();
    let url = if server.contains("://") { server.to_string() } else { format!("http://{server}") };
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(ClientError::Usage(format!(
            "--server: {server:?} is not supported: this client speaks plain http:// only"
        )));
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(ClientError::Usage(format!("--server: {server:?} names no host")));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A readable reason for a ureq error.
fn describe_ureq(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        other => other.to_string(),
    }
}

/// The `error` of a JSON error body, or the start of the body.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => match v.get("error").and_then(Value::as_str) {
            Some(msg) => msg.to_string(),
            None => truncate(&v.to_string(), 300),
        },
        Err(_) if body.trim().is_empty() => "(no message)".to_string(),
        Err(_) => truncate(body.trim(), 300),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// ===== server-sent events =====

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when none was given).
    pub event: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Assembles server-sent events from lines (the WHATWG `text/event-stream` rules, without
/// `id` and `retry`, which this client does not use).
#[derive(Debug, Default)]
pub struct SseParser {
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// A parser with nothing pending.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds one line (with or without its line ending); returns the event a blank line
    /// completes. Comments (`:` lines) and unknown fields are ignored.
    pub fn feed(&mut self, line: &str) -> Option<SseEvent> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            // An event without data is not dispatched.
            return data.map(|data| SseEvent { event: event.unwrap_or_else(|| "message".to_string()), data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

/// Reads one line of at most [`MAX_EVENT_LINE`] bytes; `Ok(None)` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(MAX_EVENT_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n as u64 == MAX_EVENT_LINE && buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "an event line is too long"));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

// ===== submit =====

/// Statuses after which a task does not change any more.
const FINAL_STATUSES: [&str; 5] = ["completed", "failed", "timed_out", "cancelled", "dead"];

fn status_of(record: &Value) -> &str {
    record.get("status").and_then(Value::as_str).unwrap_or("")
}

fn is_final(record: &Value) -> bool {
    FINAL_STATUSES.contains(&status_of(record))
}

/// The progress bar's message for a (non-final) task record.
fn record_message(record: &Value) -> String {
    let attempts = record.get("attempts").and_then(Value::as_u64).unwrap_or(0);
    let stage = record.pointer("/progress/stage").and_then(Value::as_str);
    match (status_of(record), stage) {
        ("queued", _) if attempts > 0 => match record.get("error").and_then(Value::as_str) {
            Some(e) => format!("waiting to retry (attempt {attempts} failed: {})", truncate(e, 60)),
            None => "waiting to retry".to_string(),
        },
        ("queued", _) => "queued".to_string(),
        ("running", Some(stage)) => stage.to_string(),
        ("running", None) if attempts > 1 => format!("running (attempt {attempts})"),
        ("running", None) => "running".to_string(),
        (other, _) => other.to_string(),
    }
}

/// The bar on stderr: hidden when stderr is not a terminal or with `--quiet`.
struct Bar(ProgressBar);

impl Bar {
    fn new(quiet: bool) -> Bar {
        let visible = !quiet && std::io::stderr().is_terminal();
        if !visible {
            return Bar(ProgressBar::hidden());
        }
        let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {pos:>3}% {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("queued");
        Bar(bar)
    }

    fn visible(&self) -> bool {
        !self.0.is_hidden()
    }

    fn record(&self, record: &Value) {
        if let Some(p) = record.pointer("/progress/progress").and_then(Value::as_u64) {
            self.0.set_position(p.min(100));
        } else if status_of(record) == "queued" {
            self.0.set_position(0);
        }
        self.0.set_message(record_message(record));
    }

    fn progress(&self, event: &Value) {
        if let Some(p) = event.get("progress").and_then(Value::as_u64) {
            self.0.set_position(p.min(100));
        }
        match event.get("stage").and_then(Value::as_str) {
            Some(stage) => self.0.set_message(stage.to_string()),
            None => self.0.set_message("running"),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// `workerpool submit`: queues a task; unless `--no-wait`, follows it to the end with a
/// progress bar and prints its result to stdout.
pub fn submit(args: &SubmitArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let mut options = serde_json::Map::new();
    options.insert("wait".into(), json!(false));
    let optional = [
        ("priority", args.priority.map(Value::from)),
        ("timeout", args.timeout.map(Value::from)),
        ("max_retries", args.max_retries.map(Value::from)),
        ("delay", args.delay.map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            options.insert(key.into(), v);
        }
    }
    let body = json!({ "type": args.task_type, "data": args.data, "options": options });
    let queued = client.post_json("/api/workers/execute", &body)?;
    let Some(id) = queued.get("id").and_then(Value::as_str).map(str::to_string) else {
        return Err(ClientError::Unexpected {
            url: client.url("/api/workers/execute"),
            reason: format!("no task id in {queued}"),
        });
    };
    let status = queued.get("status").and_then(Value::as_str).unwrap_or("queued");
    if args.no_wait {
        return print_stdout(&json!({ "id": id, "status": status }).to_string());
    }
    if !args.quiet {
        eprintln!("task {id} submitted ({}), waiting for it to finish", args.task_type);
    }
    let bar = Bar::new(args.quiet);
    let started = Instant::now();
    let record = follow(&client, &id, &bar)?;
    let note = bar.visible();
    drop(bar);
    finish(&id, &record, started, note)
}

/// Prints the result of a final record, or turns a failure into [`ClientError::TaskEnded`].
fn finish(id: &str, record: &Value, started: Instant, note: bool) -> Result<(), ClientError> {
    let status = status_of(record);
    if status != "completed" {
        let error = record.get("error").and_then(Value::as_str).map(str::to_string);
        return Err(ClientError::TaskEnded { id: id.to_string(), status: status.to_string(), error });
    }
    let result = record.get("result").cloned().unwrap_or(Value::Null);
    let text = serde_json::to_string_pretty(&result).unwrap_or_else(|_| result.to_string());
    if note {
        eprintln!("task {id} completed in {}", format_duration_ms(started.elapsed().as_millis() as u64));
    }
    print_stdout(&text)
}

fn print_stdout(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(ClientError::Output)
}

/// Follows a task to its final record: the event stream first, polling when it breaks.
fn follow(client: &Client, id: &str, bar: &Bar) -> Result<Value, ClientError> {
    match client.open_events(id) {
        Ok(Some(res)) => match read_events(client, id, res, bar) {
            Ok(Some(record)) => return Ok(record),
            Ok(None) => log::debug!("the event stream of {id} ended without a result; polling"),
            Err(e) => log::debug!("the event stream of {id} broke ({e}); polling"),
        },
        Ok(None) => {}
        Err(e @ (ClientError::Server { .. } | ClientError::Unreachable { .. })) => return Err(e),
        Err(e) => log::debug!("cannot open the event stream of {id} ({e}); polling"),
    }
    poll(client, id, bar)
}

/// Reads an event stream until its `result` event; `Ok(None)` when it ends without a final
/// record. At each keep-alive (a quiet stream) the task record is looked at too, so a lost
/// event cannot keep the client waiting.
fn read_events(
    client: &Client,
    id: &str,
    res: Response<ureq::Body>,
    bar: &Bar,
) -> std::io::Result<Option<Value>> {
    let mut reader = BufReader::new(res.into_body().into_reader());
    let mut parser = SseParser::new();
    while let Some(line) = read_line(&mut reader)? {
        if line.starts_with(':')
            && let Ok(record) = client.get_json(&format!("/api/tasks/{id}"))
            && is_final(&record)
        {
            return Ok(Some(record));
        }
        let Some(event) = parser.feed(&line) else { continue };
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            log::debug!("ignoring an event with data that is not JSON: {}", truncate(&event.data, 100));
            continue;
        };
        match event.event.as_str() {
            "progress" => bar.progress(&data),
            "result" | "status" if is_final(&data) => return Ok(Some(data)),
            // The server may announce the end before its record says so: ask the record.
            "result" => return Ok(None),
            "status" => bar.record(&data),
            _ => {}
        }
    }
    Ok(None)
}

/// Polls the task record every [`POLL_EVERY`] until it is final.
fn poll(client: &Client, id: &str, bar: &Bar) -> Result<Value, ClientError> {
    let path = format!("/api/tasks/{id}");
    loop {
        let record = client.get_json(&path)?;
        if is_final(&record) {
            return Ok(record);
        }
        bar.record(&record);
        std::thread::sleep(POLL_EVERY);
    }
}

// ===== status =====

/// `workerpool status`: the server's workers, queues and resources as tables (or its JSON).
pub fn status(args: &StatusArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    let body = client.get_json("/api/workers/status")?;
    if args.json {
        let text = serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string());
        return print_stdout(&text);
    }
    print_stdout(render_status(&body).trim_end())
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn float(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// The human-readable report of `GET /api/workers/status`.
pub fn render_status(s: &Value) -> String {
    let mut out = String::new();
    let total = num(s, "total");
    out.push_str(&format!(
        "instance {}, up {}: {} workers ({} busy, {} idle), {} tasks completed, {} failed\n",
        text(s, "instance_id"),
        format_duration_ms(num(s, "uptime_ms")),
        total,
        num(s, "busy"),
        num(s, "available"),
        num(s, "tasks_completed"),
        num(s, "tasks_failed"),
    ));

    let mut types =
        Table::new(&["TYPE", "WORKERS", "BUSY", "IDLE", "QUEUED", "COMPLETED", "FAILED", "AVG MS"]);
    if let Some(by_type) = s.get("by_type").and_then(Value::as_object) {
        for (name, t) in by_type {
            types.row(vec![
                name.clone(),
                num(t, "total").to_string(),
                num(t, "busy").to_string(),
                num(t, "available").to_string(),
                num(t, "queued").to_string(),
                num(t, "tasks_completed").to_string(),
                num(t, "tasks_failed").to_string(),
                float(t, "avg_task_ms").map_or("-".to_string(), |ms| format!("{ms:.1}")),
            ]);
        }
    }
    out.push('\n');
    out.push_str(&types.render());

    let usage: Vec<&Value> = s
        .pointer("/resources/workers")
        .and_then(Value::as_array)
        .map(|w| w.iter().collect())
        .unwrap_or_default();
    let usage_of = |id: &str| usage.iter().find(|u| u.get("worker_id").and_then(Value::as_str) == Some(id));
    let workers = s.get("workers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let with_gpu = usage.iter().any(|u| u.get("gpu_memory_bytes").is_some_and(|g| !g.is_null()));
    let mut header = vec!["WORKER", "TYPE", "PID", "STATE", "TASKS", "CPU%", "RSS MiB"];
    if with_gpu {
        header.push("GPU MiB");
    }
    let mut table = Table::new(&header);
    for w in workers {
        let id = text(w, "id");
        let u = usage_of(id);
        let mut row = vec![
            id.to_string(),
            text(w, "task_type").to_string(),
            w.get("pid").and_then(Value::as_u64).map_or("-".to_string(), |p| p.to_string()),
            text(w, "state").to_string(),
            num(w, "tasks_done").to_string(),
            u.and_then(|u| float(u, "cpu_percent")).map_or("-".to_string(), |c| format!("{c:.1}")),
            u.and_then(|u| u.get("memory_bytes")?.as_u64()).map_or("-".to_string(), format_mib),
        ];
        if with_gpu {
            row.push(u.and_then(|u| u.get("gpu_memory_bytes")?.as_u64()).map_or("-".to_string(), format_mib));
        }
        table.row(row);
    }
    out.push('\n');
    if workers.is_empty() {
        out.push_str("no workers running\n");
    } else {
        out.push_str(&table.render());
    }

    out.push('\n');
    out.push_str(&render_resources(s.get("resources").unwrap_or(&Value::Null)));
    out
}

/// The system lines of the status report.
fn render_resources(r: &Value) -> String {
    if num(r, "sampled_at") == 0 {
        return "resources: not sampled yet\n".to_string();
    }
    let sys = r.get("system").unwrap_or(&Value::Null);
    let mut out = format!(
        "system: CPU {:.1}% of {} CPUs, memory {} used of {} ({} available)\n",
        float(sys, "cpu_percent").unwrap_or(0.0),
        num(sys, "cpus"),
        format_bytes(num(sys, "memory_used_bytes")),
        format_bytes(num(sys, "memory_total_bytes")),
        format_bytes(num(sys, "memory_available_bytes")),
    );
    let gpu = r.get("gpu").unwrap_or(&Value::Null);
    if gpu.get("available").and_then(Value::as_bool).unwrap_or(false) {
        let gpus = r.get("gpus").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if gpus.is_empty() {
            out.push_str("gpu: available\n");
        }
        for g in gpus {
            out.push_str(&format!(
                "gpu {}: {}, {:.0}% busy, memory {} used of {}\n",
                num(g, "index"),
                text(g, "name"),
                float(g, "utilization_percent").unwrap_or(0.0),
                format_bytes(num(g, "memory_used_bytes")),
                format_bytes(num(g, "memory_total_bytes")),
            ));
        }
    } else {
        let reason = gpu.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
        out.push_str(&format!("gpu: unavailable ({reason})\n"));
    }
    out
}

/// A plain text table: columns separated by two spaces, numbers right-aligned.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are blank, extra ones dropped).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text, one line per row after the title line, each ending in `\n`.
    /// A column whose cells are all numbers (or `-`) is right-aligned.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let width = |i: usize| {
            let cells = self.rows.iter().map(|r| r[i].chars().count());
            cells.chain([self.header[i].chars().count()]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..n).map(width).collect();
        let numeric: Vec<bool> = (0..n)
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| is_number_cell(&r[i])))
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = (0..n)
                .map(|i| {
                    let w = widths[i];
                    if numeric[i] { format!("{:>w$}", row[i]) } else { format!("{:<w$}", row[i]) }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

fn is_number_cell(cell: &str) -> bool {
    cell == "-" || (!cell.is_empty() && cell.parse::<f64>().is_ok())
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Bytes as MiB with one decimal (the worker table's RSS column).
pub fn format_mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// A duration for people: `850ms`, `12.3s`, `3m 12s`, `2h 05m`, `3d 04h`.
pub fn format_duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(parser: &mut SseParser, text: &str) -> Vec<SseEvent> {
        text.split_inclusive('\n').filter_map(|l| parser.feed(l)).collect()
    }

    #[test]
    fn sse_parser_reads_events_and_skips_comments() {
        let mut p = SseParser::new();
        let stream =
            "event: status\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: progress\r\ndata:{\"p\":2}\r\n\r\n";
        let events = feed_all(&mut p, stream);
        assert_eq!(
            events,
            vec![
                SseEvent { event: "status".into(), data: "{\"a\":1}".into() },
                SseEvent { event: "progress".into(), data: "{\"p\":2}".into() },
            ]
        );
    }

    #[test]
    fn sse_parser_joins_data_lines_and_defaults_the_name() {
        let mut p = SseParser::new();
        let events = feed_all(&mut p, "data: one\ndata:  two\nid: 7\nretry: 10\n\n");
        assert_eq!(events, vec![SseEvent { event: "message".into(), data: "one\n two".into() }]);
        // An event name without data is dropped at the blank line, and does not leak.
        assert_eq!(feed_all(&mut p, "event: lonely\n\ndata: x\n\n")[0].event, "message");
        // A field without a colon is a field with an empty value.
        assert_eq!(feed_all(&mut p, "data\n\n")[0].data, "");
        // Nothing is dispatched before the blank line.
        assert!(feed_all(&mut p, "event: result\ndata: {}\n").is_empty());
        assert_eq!(p.feed("\n").map(|e| e.event), Some("result".to_string()));
    }

    #[test]
    fn read_line_bounds_and_ends() {
        let mut r = BufReader::new(&b"a\nb"[..]);
        assert_eq!(read_line(&mut r).ok().flatten().as_deref(), Some("a\n"));
        assert_eq!(read_line(&mut r).ok().flatten().as_deref(), Some("b"));
        assert!(matches!(read_line(&mut r), Ok(None)));
    }

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let mut t = Table::new(&["NAME", "N", "AVG"]);
        t.row(vec!["text_processing".into(), "2".into(), "12.5".into()]);
        t.row(vec!["a".into(), "10".into(), "-".into()]);
        assert_eq!(
            t.render(),
            "NAME              N   AVG\ntext_processing   2  12.5\na                10     -\n"
        );
        let empty = Table::new(&["A", "B"]);
        assert_eq!(empty.render(), "A  B\n");
    }

    #[test]
    fn bytes_and_durations_read_well() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 * 1024 + 200 * 1024 * 1024), "3.2 GiB");
        assert_eq!(format_bytes(u64::MAX), "16384.0 PiB");
        assert_eq!(format_mib(12 * 1024 * 1024 + 512 * 1024), "12.5");
        assert_eq!(format_duration_ms(850), "850ms");
        assert_eq!(format_duration_ms(12_345), "12.3s");
        assert_eq!(format_duration_ms(192_000), "3m 12s");
        assert_eq!(format_duration_ms(7_500_000), "2h 05m");
        assert_eq!(format_duration_ms(3 * 86_400_000 + 4 * 3_600_000), "3d 04h");
    }

    #[test]
    fn data_must_be_json() {
        assert_eq!(parse_data(r#"{"op":"echo"}"#), Ok(json!({"op": "echo"})));
        assert!(parse_data("{op}").is_err_and(|e| e.starts_with("not valid JSON")));
        assert!(parse_data("@/nonexistent/file.json").is_err_and(|e| e.contains("/nonexistent/file.json")));
    }

    #[test]
    fn server_urls_are_normalised() {
        assert_eq!(normalize_base("http://127.0.0.1:3002/").ok().as_deref(), Some("http://127.0.0.1:3002"));
        assert_eq!(normalize_base("localhost:9").ok().as_deref(), Some("http://localhost:9"));
        assert!(matches!(normalize_base("https://x"), Err(ClientError::Usage(m)) if m.contains("--server")));
        assert!(matches!(normalize_base("http://"), Err(ClientError::Usage(_))));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            error_message(r#"{"error":"unknown task type \"x\"","type":"x"}"#),
            "unknown task type \"x\""
        );
        assert_eq!(error_message("plain text\n"), "plain text");
        assert_eq!(error_message(""), "(no message)");
        let e =
            ClientError::Server { status: 429, message: "queue full".into(), retry_after: Some("1".into()) };
        assert_eq!(e.to_string(), "the server answered 429 Too Many Requests: queue full (retry after 1 s)");
        let e =
            ClientError::TaskEnded { id: "t1".into(), status: "failed".into(), error: Some("nope".into()) };
        assert_eq!(e.to_string(), "task t1 failed: nope");
        assert_eq!(e.exit_code(), 1);
        let e = ClientError::Unreachable { url: "http://h:1".into(), reason: "refused".into() };
        assert!(e.to_string().starts_with("cannot reach the workerpool server at http://h:1: refused"));
        assert_eq!(ClientError::Usage("x".into()).exit_code(), 2);
    }

    #[test]
    fn record_messages_follow_the_task() {
        assert_eq!(record_message(&json!({"status": "queued", "attempts": 0})), "queued");
        assert_eq!(
            record_message(&json!({"status": "queued", "attempts": 1, "error": "boom"})),
            "waiting to retry (attempt 1 failed: boom)"
        );
        assert_eq!(
            record_message(&json!({"status": "running", "attempts": 2, "progress": null})),
            "running (attempt 2)"
        );
        assert_eq!(
            record_message(
                &json!({"status": "running", "attempts": 1, "progress": {"progress": 50, "stage": "step 2/4"}})
            ),
            "step 2/4"
        );
        assert!(is_final(&json!({"status": "dead"})));
        assert!(!is_final(&json!({"status": "running"})));
    }

    #[test]
    fn status_report_has_every_section() {
        let s = json!({
            "total": 2, "available": 1, "busy": 1, "tasks_completed": 14, "tasks_failed": 1, "avg_task_ms": 30.0,
            "instance_id": "wp-1", "uptime_ms": 192_000,
            "by_type": {"text_processing": {"total": 2, "available": 1, "busy": 1, "queued": 3,
                "tasks_completed": 14, "tasks_failed": 1, "avg_task_ms": 32.3}},
            "workers": [
                {"id": "text_processing-1", "task_type": "text_processing", "pid": 4242, "state": "busy",
                 "task_id": "t", "tasks_done": 9, "uptime_ms": 1000},
                {"id": "text_processing-2", "task_type": "text_processing", "pid": null, "state": "starting",
                 "task_id": null, "tasks_done": 0, "uptime_ms": 10}
            ],
            "resources": {"sampled_at": 1, "system": {"cpu_percent": 12.5, "cpus": 16,
                "memory_used_bytes": 2u64 << 30, "memory_available_bytes": 6u64 << 30, "memory_total_bytes": 8u64 << 30},
                "workers": [{"worker_id": "text_processing-1", "task_type": "text_processing", "pid": 4242,
                    "cpu_percent": 3.3, "memory_bytes": 12u64 << 20, "gpu_memory_bytes": null}],
                "gpu": {"available": false, "reason": "NVML unavailable"}, "gpus": []}
        });
        let out = render_status(&s);
        assert!(out.starts_with(
            "instance wp-1, up 3m 12s: 2 workers (1 busy, 1 idle), 14 tasks completed, 1 failed\n"
        ));
        assert!(
            out.contains("text_processing        2     1     1       3         14       1    32.3"),
            "{out}"
        );
        assert!(
            out.contains("text_processing-1  text_processing  4242  busy          9   3.3     12.0"),
            "{out}"
        );
        assert!(
            out.contains("text_processing-2  text_processing     -  starting      0     -        -"),
            "{out}"
        );
        assert!(
            out.contains("system: CPU 12.5% of 16 CPUs, memory 2.0 GiB used of 8.0 GiB (6.0 GiB available)")
        );
        assert!(out.contains("gpu: unavailable (NVML unavailable)"));
        // A server that has not sampled yet, and an empty one, still render.
        let out = render_status(&json!({}));
        assert!(out.contains("no workers running") && out.contains("not sampled yet"), "{out}");
    }
}
