//! [`Client`]: one server's base URL, bearer token and HTTP agent, and how its answers and
//! failures become values or [`ClientError`]s.

use std::time::Duration;

use serde_json::Value;
use ureq::http::Response;

use super::args::ConnectArgs;
use super::error::ClientError;
use super::output::truncate;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ordinary request (everything but the event stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest silence on the event stream: the server sends a keep-alive every 15 s.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// A connection to one server: base URL, bearer token and an HTTP agent.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

// ===== impl Client =====

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

    /// The full URL of `path` on this server.
    pub(super) fn url(&self, path: &str) -> String {
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
    pub(super) fn open_events(&self, id: &str) -> Result<Option<Response<ureq::Body>>, ClientError> {
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
    // The flag may carry a password: it is shown redacted.
    let server = workerpool_actors::redact::redact_url(server);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_normalised() {
        assert_eq!(normalize_base("http://127.0.0.1:3002/").ok().as_deref(), Some("http://127.0.0.1:3002"));
        assert_eq!(normalize_base("localhost:9").ok().as_deref(), Some("http://localhost:9"));
        assert!(matches!(normalize_base("https://x"), Err(ClientError::Usage(m)) if m.contains("--server")));
        assert!(matches!(normalize_base("http://"), Err(ClientError::Usage(_))));
    }

    #[test]
    fn error_bodies_read_well() {
        assert_eq!(
            error_message(r#"{"error":"unknown task type \"x\"","type":"x"}"#),
            "unknown task type \"x\""
        );
        assert_eq!(error_message("plain text\n"), "plain text");
        assert_eq!(error_message(""), "(no message)");
    }
}
