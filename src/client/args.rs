//! The command-line arguments of the client commands (`submit`, `status`, `watch`, `events`,
//! `cancel`, `requeue`, `dead-letters`, `scale`, `restart`).

use serde_json::Value;

/// The server used when neither `--server` nor `WORKERPOOL_URL` names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3002";

/// Where the server is and how to authenticate (shared by every client command).
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The server's base URL (http:// or https://).
    #[arg(long, value_name = "URL", env = "WORKERPOOL_URL", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token sent with every request (the server's WORKERPOOL_API_TOKEN, or its
    /// WORKERPOOL_READ_TOKEN for reads).
    #[arg(long, value_name = "TOKEN", env = "WORKERPOOL_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the certificate authorities to trust for https:// (instead of the
    /// built-in public ones).
    #[arg(long, value_name = "FILE", env = "WORKERPOOL_CA_FILE")]
    pub ca_file: Option<String>,
}

/// Arguments of `workerpool submit`.
#[derive(clap::Args, Debug, Clone)]
pub struct SubmitArgs {
    /// The task type (e.g. text_processing).
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: String,
    /// The task's input: JSON text, or @FILE to read it from a file.
    #[arg(long, value_name = "JSON", default_value = "{}", value_parser = parse_data)]
    pub data: Value,
    /// Priority; higher runs first (default 0).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Timeout of each attempt in milliseconds (default: the type's).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Retries after the first attempt (default: the type's).
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Milliseconds to wait before the task may run.
    #[arg(long, value_name = "MS")]
    pub delay: Option<u64>,
    /// Print `{"id","status"}` and return at once instead of waiting for the result.
    #[arg(long)]
    pub no_wait: bool,
    /// Cancel the task on Ctrl-C (without it, the task goes on on the server).
    #[arg(long)]
    pub cancel_on_interrupt: bool,
    /// How to wait and what to print.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How a command that follows a task shows it and how long it waits.
#[derive(clap::Args, Debug, Clone)]
pub struct WaitArgs {
    /// Stop waiting after this many seconds (exit 4); the task goes on.
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Print the task's final record as JSON (one line) instead of its result.
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no notes on stderr (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Arguments of `workerpool watch`.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The task's id.
    pub id: String,
    /// How to wait and what to print.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `workerpool status`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Print the server's JSON instead of tables (with --watch, one line per report).
    #[arg(long)]
    pub json: bool,
    /// Print the report again every --interval seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two reports of --watch.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = parse_interval)]
    pub interval: f64,
    /// With --watch, stop after this many reports.
    #[arg(long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `workerpool events`.
#[derive(clap::Args, Debug, Clone)]
pub struct EventsArgs {
    /// Only the events of this task type.
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: Option<String>,
    /// Only events of this name (e.g. task_failed); repeat for several.
    #[arg(long = "event", value_name = "NAME")]
    pub events: Vec<String>,
    /// Stop after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print each event as the server's JSON, one per line.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `workerpool cancel` and `workerpool requeue`: one task.
#[derive(clap::Args, Debug, Clone)]
pub struct TaskArgs {
    /// The task's id.
    pub id: String,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `workerpool dead-letters`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeadLettersArgs {
    /// The task type.
    #[arg(value_name = "TYPE")]
    pub task_type: String,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Which way `workerpool scale` goes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Start workers.
    Up,
    /// Retire workers.
    Down,
}

/// Arguments of `workerpool scale`.
#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// The task type.
    #[arg(value_name = "TYPE")]
    pub task_type: String,
    /// up or down.
    #[arg(value_enum)]
    pub direction: Direction,
    /// How many workers.
    #[arg(value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `workerpool restart`.
#[derive(clap::Args, Debug, Clone)]
pub struct RestartArgs {
    /// The worker's id (`<type>-<n>`, as `workerpool status` lists them).
    #[arg(value_name = "WORKER")]
    pub worker: String,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Parses `--data`: JSON text, or `@FILE` holding JSON.
fn parse_data(arg: &str) -> Result<Value, String> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            (text, format!(" in {path}"))
        }
        None => (arg.to_string(), String::new()),
    };
    serde_json::from_str(&text).map_err(|e| format!("not valid JSON{origin}: {e}"))
}

/// Parses `--interval`: seconds, at least 0.1 and at most a day.
fn parse_interval(arg: &str) -> Result<f64, String> {
    match arg.trim().parse::<f64>() {
        Ok(s) if (0.1..=86_400.0).contains(&s) => Ok(s),
        Ok(_) => Err("must be between 0.1 and 86400 seconds".to_string()),
        Err(_) => Err(format!("{arg:?} is not a number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn data_must_be_json() {
        assert_eq!(parse_data(r#"{"op":"echo"}"#), Ok(json!({"op": "echo"})));
        assert!(parse_data("{op}").is_err_and(|e| e.starts_with("not valid JSON")));
        assert!(parse_data("@/nonexistent/file.json").is_err_and(|e| e.contains("/nonexistent/file.json")));
    }

    #[test]
    fn intervals_are_bounded_seconds() {
        assert_eq!(parse_interval("0.5"), Ok(0.5));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("NaN").is_err());
        assert!(parse_interval("inf").is_err());
        assert!(parse_interval("soon").is_err_and(|e| e.contains("soon")));
    }
}
