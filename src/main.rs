//! The `workerpool` command: the server (`serve`, the default), the bundled demo worker, the
//! benchmarks and the client of a running server (`submit`, `status`). Errors become exit
//! codes here: 2 for configuration and usage, 1 for the rest.

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
            workerpool::logging::init("info");
            workerpool::bench::run(args)
        }
        Some(Command::Submit(args)) => {
            client_log(&args.connect);
            workerpool::client::submit(&args).map_err(anyhow::Error::from)
        }
        Some(Command::Status(args)) => {
            client_log(&args.connect);
            workerpool::client::status(&args).map_err(anyhow::Error::from)
        }
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workerpool: {}", workerpool::logging::scrub(&format!("{e:#}")));
            let usage = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<ClientError>().is_some_and(|c| c.exit_code() == 2);
            if usage { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The access log (one line per request) costs a third of the throughput under load, so it
    // is opt-in: RUST_LOG=info,workerpool::http=info.
    workerpool::logging::init("info,workerpool::http=warn");
    let flags = Overrides { config: args.config, bind: args.bind, redis: args.redis.map(Into::into) };
    let settings = Settings::load(&flags, &|k| std::env::var(k).ok())?;
    workerpool::logging::hide(settings.secrets());
    actix_rt::System::new().block_on(workerpool::serve::run(settings))
}

/// The client's log: warnings by default, never its token or the server URL's password.
fn client_log(connect: &workerpool::client::ConnectArgs) {
    workerpool::logging::init("warn");
    workerpool::logging::hide(connect.token.iter().cloned());
    workerpool::logging::hide(workerpool_actors::redact::url_secrets(&connect.server));
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
