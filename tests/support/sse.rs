//! Event streams read over a raw socket, as a browser's `EventSource` sees them: the answer's
//! head, the `retry:` hint and every message with its `id:`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use super::server::Server;

/// One SSE message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its `id:`, if it had one.
    pub id: Option<String>,
    /// Its `event:` name.
    pub event: String,
    /// Its `data:`, as JSON (`Null` when it is not).
    pub data: Value,
}

/// An opened stream: the answer's status and head (header names in lower case), and the
/// body to read.
pub struct Stream {
    pub status: u16,
    pub head: String,
    pub reader: BufReader<TcpStream>,
    /// The `retry:` hints seen so far.
    pub retry: Vec<u64>,
}

/// `GET path` with `headers` (and `Connection: close`, so a stream that ends closes); reads
/// the head. Every read waits at most `timeout`.
pub fn open(server: &Server, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Stream {
    open_with(server, path, headers, timeout, |_| {})
}

/// As [`open`], with the socket set up by `tune` before it connects.
pub fn open_with(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    tune: impl FnOnce(&socket2::Socket),
) -> Stream {
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().expect("an address");
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)
        .expect("a socket");
    tune(&socket);
    socket.connect(&addr.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line.to_lowercase());
    }
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Stream { status, head, reader, retry: Vec::new() }
}

impl Stream {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.head.lines().find_map(|l| l.strip_prefix(&prefix)).map(str::trim)
    }

    /// Reads messages until `stop` says so (that message included), `limit` messages, the end
    /// of the stream or the read timeout.
    pub fn read(&mut self, limit: usize, stop: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut out = Vec::new();
        let (mut id, mut event) = (None, String::new());
        let mut line = String::new();
        while out.len() < limit {
            line.clear();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let l = line.trim_end();
            if let Some(v) = l.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(name) = l.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(ms) = l.strip_prefix("retry: ") {
                self.retry.extend(ms.parse::<u64>().ok());
            } else if let Some(data) = l.strip_prefix("data: ") {
                let data = serde_json::from_str(data).unwrap_or(Value::Null);
                let message = Message { id: id.take(), event: std::mem::take(&mut event), data };
                let done = stop(&message);
                out.push(message);
                if done {
                    break;
                }
            }
        }
        out
    }

    /// Whether the stream has ended (the server closed it) within the read timeout, with no
    /// further message.
    pub fn ends(&mut self) -> bool {
        let mut rest = String::new();
        for _ in 0..10_000 {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return !rest.contains("data:"),
                Ok(_) => rest.push_str(&line),
                Err(_) => return false,
            }
        }
        false
    }
}

/// The order of task-stream ids (`n.0`, `n.1`, `n.1.p`, `n.end`), as `docs/API.md` describes
/// it; `None` for anything else.
pub fn task_id_order(id: &str) -> Option<(bool, u32, u8, Option<u8>)> {
    let parts: Vec<&str> = id.split('.').collect();
    let attempt = parts.first()?.parse().ok()?;
    match parts[1..] {
        ["0"] => Some((false, attempt, 0, None)),
        ["1"] => Some((false, attempt, 1, None)),
        ["1", p] => Some((false, attempt, 1, Some(p.parse().ok()?))),
        ["end"] => Some((true, attempt, 0, None)),
        _ => None,
    }
}
