//! The load generator both HTTP cases share: [`CONNECTIONS`] keep-alive connections, each
//! with one request in flight, for a fixed time, every response checked.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::LocalSet;

use super::conn::Conn;
use crate::bench::args::BenchArgs;
use crate::bench::driver::{client_runtime, warm_then_measure};
use crate::bench::report::Run;

/// Keep-alive connections of the load generator, each with one request in flight.
pub(super) const CONNECTIONS: usize = 64;
/// The unmeasured warm-up before the measured runs.
pub(super) const WARMUP: Duration = Duration::from_secs(1);
/// The route both cases load.
pub(super) const EXECUTE_PATH: &str = "/api/workers/execute";
/// The body both cases send.
const EXECUTE_BODY: &str = r#"{"type":"text_processing","data":{"op":"echo"}}"#;

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

/// Checks one response; `Err` makes it a failed request.
pub(super) type Check = fn(u16, &[u8]) -> Result<(), String>;

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
pub(super) fn measure(addr: SocketAddr, args: &BenchArgs, check: Check) -> anyhow::Result<Vec<Run>> {
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
pub(super) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    if body.len() > 200 { format!("{text}…") } else { text.into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

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
