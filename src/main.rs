//! The `workerpool` command: the server (`serve`, the default), the bundled demo worker, the
//! benchmarks and the client of a running server (`submit`, `status`). Errors become exit
//! codes here: 2 for configuration and usage, 1 for the rest.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: every task hands memory between the callers' threads and the pool's (requests
/// in, records out), which glibc's allocator serves slowly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use workerpool::client::ClientError;
use workerpool::settings::{ConfigError, Overrides, Settings};

#[derive(Parser)]
#[command(name = "workerpool", version, about = "A resource-aware worker pool for mixed AI jobs")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Turns transparent huge pages off for this process and the workers it starts. With them, a
/// heap that grows faults in 2 MiB at a time, each cleared while the pool's thread waits
/// (under a hypervisor that first touches the memory, for milliseconds): a pool that keeps a
/// hundred thousand records ran its first hundred thousand process tasks at a third of its
/// usual rate. Redis gives the same advice for the same reason. A kernel without the flag
/// keeps its default.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// Configuration file (default: config/default.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Listen address (default 127.0.0.1:3002; env WORKERPOOL_BIND).
    #[arg(long)]
    bind: Option<String>,
    /// Redis URL (env REDIS_URL or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD).
    #[arg(long)]
    redis: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Run the bundled JSON-lines worker on stdin/stdout.
    DemoWorker,
    /// Run the benchmarks (build with --release) and print one line per case.
    Bench(workerpool::bench::BenchArgs),
    /// Submit a task to a running server, show its progress and print its result.
    Submit(workerpool::client::SubmitArgs),
    /// Print the workers, queues and resources of a running server.
    Status(workerpool::client::StatusArgs),
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::DemoWorker) => return demo_worker(),
        Some(Command::Bench(args)) => {
            init_logging("info");
            workerpool::bench::run(args)
        }
        Some(Command::Submit(args)) => {
            init_logging("warn");
            workerpool::client::submit(&args).map_err(anyhow::Error::from)
        }
        Some(Command::Status(args)) => {
            init_logging("warn");
            workerpool::client::status(&args).map_err(anyhow::Error::from)
        }
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workerpool: {e:#}");
            let usage = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<ClientError>().is_some_and(|c| c.exit_code() == 2);
            if usage { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The access log (one line per request) costs a third of the throughput under load, so it
    // is opt-in: RUST_LOG=info,workerpool::http=info.
    init_logging("info,workerpool::http=warn");
    let flags = Overrides { config: args.config, bind: args.bind, redis: args.redis };
    let settings = Settings::load(&flags, &|k| std::env::var(k).ok())?;
    actix_rt::System::new().block_on(workerpool::serve::run(settings))
}

fn demo_worker() -> ExitCode {
    match workerpool::demo_worker::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default_filter`); `LOG_FORMAT=json` writes
/// one JSON object per line instead of env_logger's text.
fn init_logging(default_filter: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    let json = format.eq_ignore_ascii_case("json");
    if json {
        builder.format(|buf, record| {
            let ts = buf.timestamp_millis().to_string();
            writeln!(buf, "{}", json_log_line(&ts, record))
        });
    }
    builder.init();
    if !json && !format.is_empty() && !format.eq_ignore_ascii_case("text") {
        log::warn!("LOG_FORMAT={format:?} is not known (expected json or text); writing text");
    }
}

/// One log record as a JSON object: `ts`, `level`, `target`, `message`, in that order.
fn json_log_line(ts: &str, record: &log::Record<'_>) -> String {
    let field = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"ts\":{},\"level\":{},\"target\":{},\"message\":{}}}",
        field(ts),
        field(record.level().as_str()),
        field(record.target()),
        field(&record.args().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_log_lines_are_json_objects() {
        let line = json_log_line(
            "2024-01-02T03:04:05.678Z",
            &log::Record::builder()
                .level(log::Level::Warn)
                .target("workerpool::x")
                .args(format_args!("a \"quoted\"\nline"))
                .build(),
        );
        assert!(line.starts_with("{\"ts\":\"2024-01-02T03:04:05.678Z\",\"level\":\"WARN\""), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["message"], "a \"quoted\"\nline");
        assert_eq!(v["target"], "workerpool::x");
        assert!(!line.contains('\n'));
    }
}
