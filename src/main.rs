//! The `workerpool` command: the server (`serve`, the default), the bundled demo worker and
//! the benchmarks. Errors become exit codes here: 2 for configuration, 1 for the rest.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use workerpool::settings::{ConfigError, Overrides, Settings};

#[derive(Parser)]
#[command(name = "workerpool", version, about = "A resource-aware worker pool for mixed AI jobs")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::DemoWorker) => return demo_worker(),
        Some(Command::Bench(args)) => {
            init_logging();
            workerpool::bench::run(args)
        }
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workerpool: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
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

fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}
