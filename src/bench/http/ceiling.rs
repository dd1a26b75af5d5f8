//! `http-ceiling`: the load generator against a bare actix-web server in this process that
//! answers `{}`: the ceiling of the HTTP stack alone, with no pool behind it.

use std::sync::mpsc;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};

use super::load::{CONNECTIONS, EXECUTE_PATH, WARMUP, measure, snippet};
use super::server::SERVER_START;
use crate::bench::args::BenchArgs;
use crate::bench::case::Case;
use crate::bench::driver::client_runtime;
use crate::bench::report::{CaseResult, Unit};

/// HTTP workers of the bare server (`workerpool serve` uses actix-web's default: one per core).
const CEILING_WORKERS: usize = 2;

async fn ceiling_execute(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body("{}")
}

fn ceiling_check(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 && body == b"{}" { Ok(()) } else { Err(format!("{status}: {}", snippet(body))) }
}

pub(crate) fn http_ceiling(args: &BenchArgs) -> anyhow::Result<CaseResult> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_check_wants_200_and_an_empty_object() {
        assert!(ceiling_check(200, b"{}").is_ok());
        assert!(ceiling_check(500, b"{}").is_err());
    }
}
