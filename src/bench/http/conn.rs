//! The load generator's HTTP/1.1 client: one keep-alive connection, one request at a time,
//! responses framed by `content-length` however their bytes are split over reads.

use std::io;
use std::net::SocketAddr;

use actix_rt::net::TcpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most a response head may take.
const MAX_HEAD: usize = 64 * 1024;

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
pub(super) struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Bytes read and not yet consumed; the previous response's are dropped at the next call.
    buf: Vec<u8>,
    consumed: usize,
    /// Connections opened again after the server closed one.
    pub(super) reconnects: u64,
}

impl Conn {
    async fn open(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    pub(super) async fn connect(addr: SocketAddr) -> io::Result<Conn> {
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
    pub(super) async fn roundtrip(&mut self, request: &[u8]) -> io::Result<(u16, &[u8])> {
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
pub(super) async fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut conn = Conn::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (status, body) = conn.roundtrip(request.as_bytes()).await?;
    Ok((status, body.to_vec()))
}

#[cfg(test)]
mod tests {
    use crate::bench::driver::client_runtime;

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
}
