//! The `workerpool` command: the server (`serve`, the default), the bundled demo worker, the
//! benchmarks, the client of a running server (`submit`, `watch`, `status`, `events`,
//! `cancel`, `requeue`, `dead-letters`, `scale`, `restart`) and shell completions. Errors
//! become exit codes here ([`EXIT_CODES`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc: every task hands memory between the callers' threads and the pool's (requests
/// in, records out), which glibc's allocator serves slowly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use workerpool::client::{self, ClientError, exit};
use workerpool::settings::{ConfigError, Overrides, Settings};

/// The exit codes, as `--help` shows them (`docs/CLI.md` says the same).
const EXIT_CODES: &str = "\
Exit codes:
    0  done; the task completed
    1  the task failed, was dead-lettered or was cancelled
    2  usage or configuration error (serve: cannot listen)
    3  the server cannot be reached, or it refused the request
    4  the task timed out, or --wait-timeout ran out (the task goes on)
  130  interrupted (Ctrl-C) while waiting; the task goes on

Environment: WORKERPOOL_URL (--server), WORKERPOOL_API_TOKEN (--token), WORKERPOOL_CA_FILE (--ca-file)";

#[derive(Parser)]
#[command(
    name = "workerpool",
    version = workerpool::build_info::VERSION,
    about = "A resource-aware worker pool for mixed AI jobs",
    after_help = EXIT_CODES
)]
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
    #[arg(long)]
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
    /// The client commands.
    #[command(flatten)]
    Client(ClientCommand),
    /// Print a shell completion script (e.g. `workerpool completions bash > /etc/bash_completion.d/workerpool`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The commands that talk to a running server.
#[derive(Subcommand)]
enum ClientCommand {
    /// Submit a task to a running server, show its progress and print its result.
    #[command(after_help = EXIT_CODES)]
    Submit(client::SubmitArgs),
    /// Follow a task already submitted to its end and print its result.
    #[command(after_help = EXIT_CODES)]
    Watch(client::WatchArgs),
    /// Print the workers, queues and resources of a running server.
    #[command(after_help = EXIT_CODES)]
    Status(client::StatusArgs),
    /// Print the pool's events as they happen (tasks, workers, scaling).
    #[command(after_help = EXIT_CODES)]
    Events(client::EventsArgs),
    /// Cancel a waiting or running task.
    #[command(after_help = EXIT_CODES)]
    Cancel(client::TaskArgs),
    /// Queue a dead-lettered task again, with fresh attempts.
    #[command(after_help = EXIT_CODES)]
    Requeue(client::TaskArgs),
    /// List the tasks of a type that ran out of attempts.
    #[command(after_help = EXIT_CODES)]
    DeadLetters(client::DeadLettersArgs),
    /// Start or retire workers of a type.
    #[command(after_help = EXIT_CODES)]
    Scale(client::ScaleArgs),
    /// Replace one worker with a fresh one; its running task goes back to the queue.
    #[command(after_help = EXIT_CODES)]
    Restart(client::RestartArgs),
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
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "workerpool", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
        Some(Command::Client(command)) => return client_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workerpool: {}", workerpool::logging::scrub(&format!("{e:#}")));
            let usage = e.downcast_ref::<ConfigError>().is_some();
            ExitCode::from(if usage { exit::USAGE } else { exit::FAILED })
        }
    }
}

impl ClientCommand {
    /// Where the command's server is and how it authenticates.
    fn connect(&self) -> &client::ConnectArgs {
        match self {
            ClientCommand::Submit(a) => &a.connect,
            ClientCommand::Watch(a) => &a.connect,
            ClientCommand::Status(a) => &a.connect,
            ClientCommand::Events(a) => &a.connect,
            ClientCommand::Cancel(a) | ClientCommand::Requeue(a) => &a.connect,
            ClientCommand::DeadLetters(a) => &a.connect,
            ClientCommand::Scale(a) => &a.connect,
            ClientCommand::Restart(a) => &a.connect,
        }
    }
}

/// Runs one of the client commands; its error's exit code is the process's.
fn client_command(command: ClientCommand) -> ExitCode {
    client_log(command.connect());
    let result = match command {
        ClientCommand::Submit(args) => client::submit(&args),
        ClientCommand::Watch(args) => client::watch(&args),
        ClientCommand::Status(args) => client::status(&args),
        ClientCommand::Events(args) => client::events(&args),
        ClientCommand::Cancel(args) => client::cancel(&args),
        ClientCommand::Requeue(args) => client::requeue(&args),
        ClientCommand::DeadLetters(args) => client::dead_letters(&args),
        ClientCommand::Scale(args) => client::scale(&args),
        ClientCommand::Restart(args) => client::restart(&args),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => report_client_error(&e),
    }
}

fn report_client_error(e: &ClientError) -> ExitCode {
    if !e.is_quiet() {
        eprintln!("{}", e.line());
    }
    ExitCode::from(e.exit_code())
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
fn client_log(connect: &client::ConnectArgs) {
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
