//! [`Client`]: one server's base URL, bearer token and HTTP agent, and how its answers and
//! failures become values or [`ClientError`]s.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use ureq::http::Response;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, parse_pem};

use super::args::{ConnectArgs, DEFAULT_SERVER};
use super::error::ClientError;
use super::output::truncate;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ordinary request (everything but the event stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// What the JSON requests accept.
const JSON: &str = "application/json";
/// The longest silence on the event stream: the server sends a keep-alive every 15 s.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// A connection to one server: base URL, bearer token and an HTTP agent.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

// ===== impl Client =====

impl Client {
    /// A client of the server `connect` names (`http://` or `https://host:port`; no scheme
    /// means http). https verifies the server against `--ca-file` when given, else against
    /// the built-in public authorities.
    pub fn new(connect: &ConnectArgs) -> Result<Client, ClientError> {
        let base = normalize_base(&connect.server)?;
        let token = connect.token.clone().filter(|t| !t.is_empty());
        let mut tls = TlsConfig::builder();
        // An empty variable (`WORKERPOOL_CA_FILE=`) is no file, as an empty token is none.
        if let Some(path) = connect.ca_file.as_deref().filter(|p| !p.is_empty()) {
            tls = tls.root_certs(RootCerts::new_with_certs(&read_ca_file(Path::new(path))?));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(base.starts_with("https://"))
            .tls_config(tls.build())
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

    /// `req` with the bearer token, when there is one, and asking for `accept`.
    fn request<B>(&self, req: ureq::RequestBuilder<B>, accept: &str) -> ureq::RequestBuilder<B> {
        let req = req.header("accept", accept);
        match &self.token {
            Some(token) => req.header("authorization", format!("Bearer {token}")),
            None => req,
        }
    }

    /// `GET path`, expecting a 2xx JSON answer.
    pub fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let res =
            self.request(self.agent.get(self.url(path)), JSON).call().map_err(|e| self.transport(path, e))?;
        self.json_answer(path, res)
    }

    /// `POST path` with a JSON body (none when `None`), expecting a 2xx JSON answer.
    pub fn post_json(&self, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let req = self.request(self.agent.post(self.url(path)), JSON);
        let sent = match body {
            Some(body) => req.header("content-type", "application/json").send(body.to_string()),
            None => req.send_empty(),
        };
        let res = sent.map_err(|e| self.transport(path, e))?;
        self.json_answer(path, res)
    }

    /// `DELETE path`, expecting a 2xx JSON answer.
    pub fn delete_json(&self, path: &str) -> Result<Value, ClientError> {
        let res = self
            .request(self.agent.delete(self.url(path)), JSON)
            .call()
            .map_err(|e| self.transport(path, e))?;
        self.json_answer(path, res)
    }

    /// Opens the event stream at `path`; `Ok(None)` when the server does not offer one
    /// (an answer other than an event stream that is not a plain client error).
    pub(super) fn open_stream(&self, path: &str) -> Result<Option<Response<ureq::Body>>, ClientError> {
        let req = self
            .agent
            .get(self.url(path))
            .config()
            .timeout_global(None)
            .timeout_per_read(Some(STREAM_SILENCE))
            .build();
        let res = self.request(req, "text/event-stream").call().map_err(|e| self.transport(path, e))?;
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
            return Err(self.json_answer(path, res).err().unwrap_or_else(|| ClientError::Unexpected {
                url: self.url(path),
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
/// trailing slash. Credentials in the URL are refused (the token goes in `--token`), so that
/// no secret is ever echoed in an error message.
fn normalize_base(server: &str) -> Result<String, ClientError> {
    // An empty `WORKERPOOL_URL=` means the default, as an unset one does.
    let server = match server.trim() {
        "" => DEFAULT_SERVER,
        server => server,
    };
    let url = if server.contains("://") { server.to_string() } else { format!("http://{server}") };
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        let scheme = url.split("://").next().unwrap_or("");
        return Err(ClientError::Usage(format!(
            "--server: the scheme {scheme:?} is not supported: use http:// or https://"
        )));
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.contains('@') {
        return Err(ClientError::Usage(
            "--server: a URL with credentials (user:password@) is not accepted; give the token \
             with --token or WORKERPOOL_API_TOKEN"
                .to_string(),
        ));
    }
    if host.is_empty() {
        return Err(ClientError::Usage(format!("--server: {server:?} names no host")));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The certificates of a `--ca-file` (PEM); an unreadable file, or one without a
/// certificate, is a usage error that names it.
fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, ClientError> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| ClientError::Usage(format!("--ca-file {shown}: {e}")))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(ClientError::Usage(format!("--ca-file {shown}: not valid PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(ClientError::Usage(format!("--ca-file {shown}: holds no PEM certificate")));
    }
    Ok(certs)
}

/// `/api/tasks/{id}`, for an id already checked by [`segment`] or given by the server.
pub(super) fn task_path(id: &str) -> String {
    format!("/api/tasks/{id}")
}

/// A command-line value that becomes one path segment: letters, digits and `-_.~` only (what
/// task ids, type names and worker ids are made of), and not `.` or `..`.
pub(super) fn segment(value: &str) -> Result<&str, ClientError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    if value.is_empty() || value == "." || value == ".." || !value.chars().all(allowed) {
        return Err(ClientError::Usage(format!("{value:?} is not a valid id or type name")));
    }
    Ok(value)
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
        assert_eq!(normalize_base("https://h:8443/").ok().as_deref(), Some("https://h:8443"));
        assert!(matches!(normalize_base("ftp://x"), Err(ClientError::Usage(m)) if m.contains("\"ftp\"")));
        assert!(matches!(normalize_base("http://"), Err(ClientError::Usage(_))));
        assert_eq!(normalize_base(" ").ok().as_deref(), Some(DEFAULT_SERVER));
        let Err(ClientError::Usage(m)) = normalize_base("https://u:s3cret@h/") else { panic!("accepted") };
        assert!(m.contains("credentials") && !m.contains("s3cret"), "{m}");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("wp-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let missing = dir.join("missing.pem");
        assert!(matches!(read_ca_file(&missing), Err(ClientError::Usage(m)) if m.contains("missing.pem")));
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "not a certificate\n");
        assert!(
            matches!(read_ca_file(&empty), Err(ClientError::Usage(m)) if m.contains("no PEM certificate"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(
            segment("8ad161bc-78b3-4647-8000-000000000003").ok(),
            Some("8ad161bc-78b3-4647-8000-000000000003")
        );
        assert_eq!(segment("text_processing-3").ok(), Some("text_processing-3"));
        for bad in ["", ".", "..", "a/b", "a?x=1", "a#b", "%2e", "a b", "a\nb", "a<b", "é"] {
            assert!(matches!(segment(bad), Err(ClientError::Usage(_))), "{bad:?} accepted");
        }
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
