//! Who may load the dashboard: its files are open under `WORKERPOOL_PROTECT_READS` (they hold
//! no data), the API behind it is not, and no other path slips through with them.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::server::*;

const CONFIG: &str = "[pool]\nmax_workers = 1\nmin_workers = 0\n\n[types.work]\n";

#[test]
fn the_page_is_open_under_protected_reads_and_nothing_else_is() {
    let server =
        Server::start(CONFIG, &[("WORKERPOOL_API_TOKEN", "s3cret"), ("WORKERPOOL_PROTECT_READS", "1")]);
    for page in ["/", "/dashboard", "/dashboard/", "/dashboard/app.js", "/dashboard/style.css"] {
        let answer = get(&server.url(page));
        assert_eq!(answer.status, 200, "{page}");
    }
    assert_eq!(get(&server.url("/api/workers/stats")).status, 401);
    assert_eq!(get(&server.url("/metrics")).status, 401);
    // Paths that look like the page's but name something else.
    for path in [
        "/dashboard/../api/workers/stats",
        "/dashboard/%2e%2e/api/workers/stats",
        "/dashboard//api/workers/stats",
        "//api/workers/stats",
        "/dashboard;/../api/workers/stats",
        "/dashboardx",
    ] {
        let (status, body) = raw_get(&server, path);
        assert!(status == 401 || status == 404, "{path}: {status} {body}");
        assert!(!body.contains("tasks_completed"), "{path} leaked stats: {body}");
    }
    // An encoded letter names the same path to the router, and so to the token check: the
    // page's own file, open.
    let (status, body) = raw_get(&server, "/%64ashboard/app.js");
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw_get(&server, "/%61pi/workers/stats");
    assert_eq!(status, 401);
    let missing = get(&server.url("/dashboard/secrets.txt"));
    assert_eq!(missing.status, 404);
}

/// `GET path` written as it is on the wire (an HTTP client would resolve `..` first): the
/// status and the body.
fn raw_get(server: &Server, path: &str) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
