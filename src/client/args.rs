//! The command-line arguments of `workerpool submit` and `workerpool status`.

use serde_json::Value;

/// The server used when neither `--server` nor `WORKERPOOL_URL` names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3002";

/// Where the server is and how to authenticate (shared by `submit` and `status`).
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The server's base URL.
    #[arg(long, value_name = "URL", env = "WORKERPOOL_URL", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token sent with every request (the server's WORKERPOOL_API_TOKEN).
    #[arg(long, value_name = "TOKEN", env = "WORKERPOOL_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
    /// No progress bar and no notes on stderr (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// The server.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `workerpool status`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Print the server's JSON instead of tables.
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
}
