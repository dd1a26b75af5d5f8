//! `http-execute`: the load generator against the real server (`workerpool serve`, a child
//! process with two prefetching demo workers), each request an `echo` task run to its end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::conn::get;
use super::load::{CONNECTIONS, WARMUP, measure, snippet};
use super::server::{SERVER_START, ServerChild};
use crate::bench::args::BenchArgs;
use crate::bench::case::Case;
use crate::bench::driver::{client_runtime, current_exe};
use crate::bench::report::{CaseResult, Unit};

/// Where the body of a completed task says so (the server writes compact JSON).
const COMPLETED: &[u8] = br#""status":"completed""#;

fn execute_check(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 && body.windows(COMPLETED.len()).any(|w| w == COMPLETED) {
        Ok(())
    } else {
        Err(format!("{status}: {}", snippet(body)))
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

pub(crate) fn http_execute(args: &BenchArgs) -> anyhow::Result<CaseResult> {
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
    fn the_execute_check_wants_200_and_a_completed_task() {
        assert!(execute_check(200, br#"{"id":"x","status":"completed","result":{}}"#).is_ok());
        assert!(execute_check(200, br#"{"status":"failed"}"#).is_err());
        assert_eq!(execute_check(502, b"oops").unwrap_err(), "502: oops");
    }
}
