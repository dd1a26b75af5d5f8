//! [`ClientError`]: why a client command failed, and the exit code that says so.

use std::fmt;

use ureq::http::StatusCode;
use workerpool_actors::redact::redact_url;

/// The exit codes of the client commands (`workerpool --help` and `docs/CLI.md` list them).
pub mod exit {
    /// The command did what it was asked; a task completed.
    pub const OK: u8 = 0;
    /// The task failed, was dead-lettered or was cancelled.
    pub const FAILED: u8 = 1;
    /// A mistake in the command line or the configuration.
    pub const USAGE: u8 = 2;
    /// The server could not be reached, or it refused the request.
    pub const SERVER: u8 = 3;
    /// The task timed out, or `--wait-timeout` ran out first.
    pub const TIMED_OUT: u8 = 4;
    /// Interrupted (Ctrl-C) while waiting for a task that goes on (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

/// Why a client command failed.
#[derive(Debug)]
pub enum ClientError {
    /// A mistake in the command line (exit 2).
    Usage(String),
    /// No connection to the server could be made.
    Unreachable {
        /// The server's base URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A connection was made but the exchange failed (timeout, broken stream, not HTTP).
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error status.
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's `error` message (or the body's start).
        message: String,
        /// The `Retry-After` header, when given.
        retry_after: Option<String>,
    },
    /// The server answered something this client does not understand.
    Unexpected {
        /// The URL asked.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The task ended without a result.
    TaskEnded {
        /// The task.
        id: String,
        /// Its final status (`failed`, `dead`, `timed_out`, `cancelled`).
        status: String,
        /// The error in its record.
        error: Option<String>,
    },
    /// The client stopped waiting for a task (`--wait-timeout`); the task goes on.
    WaitTimeout {
        /// The task.
        id: String,
        /// How long the client waited, in seconds.
        after_s: u64,
    },
    /// Writing to stdout failed.
    Output(std::io::Error),
}

// ===== impl ClientError =====

impl ClientError {
    /// The line that tells the error on stderr: `workerpool: ` and the error, without the
    /// secrets the log hides ([`crate::logging::scrub`]).
    pub fn line(&self) -> String {
        format!("workerpool: {}", crate::logging::scrub(&self.to_string()))
    }

    /// Whether the error is better left unsaid: stdout's reader went away (`| head -1`).
    pub fn is_quiet(&self) -> bool {
        matches!(self, ClientError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The process exit code for this error ([`exit`] names them all): 2 for usage
    /// mistakes, 3 when the server cannot be reached or refused the request, 4 when the task
    /// or the wait for it timed out, 1 when the task failed or was cancelled.
    pub fn exit_code(&self) -> u8 {
        match self {
            // The reader of stdout stopped (`| head`): what it wanted, it has.
            _ if self.is_quiet() => exit::OK,
            ClientError::Usage(_) => exit::USAGE,
            ClientError::Unreachable { .. }
            | ClientError::Transport { .. }
            | ClientError::Server { .. }
            | ClientError::Unexpected { .. } => exit::SERVER,
            ClientError::TaskEnded { status, .. } if status == "timed_out" => exit::TIMED_OUT,
            ClientError::WaitTimeout { .. } => exit::TIMED_OUT,
            ClientError::TaskEnded { .. } | ClientError::Output(_) => exit::FAILED,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Usage(message) => f.write_str(message),
            ClientError::Unreachable { url, reason } => write!(
                f,
                "cannot reach the workerpool server at {}: {reason} \
                 (is it running? start it with `workerpool serve`)",
                redact_url(url)
            ),
            ClientError::Transport { url, reason } => {
                write!(f, "request to {} failed: {reason}", redact_url(url))
            }
            ClientError::Server { status, message, retry_after } => {
                let reason =
                    StatusCode::from_u16(*status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
                write!(f, "the server answered {status} {reason}: {message}")?;
                if *status == 401 {
                    f.write_str(" (set WORKERPOOL_API_TOKEN or --token to the server's token)")?;
                }
                if let Some(after) = retry_after {
                    write!(f, " (retry after {after} s)")?;
                }
                Ok(())
            }
            ClientError::Unexpected { url, reason } => {
                write!(f, "unexpected answer from {}: {reason}", redact_url(url))
            }
            ClientError::TaskEnded { id, status, error } => {
                write!(f, "task {id} {status}")?;
                match error {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
            ClientError::WaitTimeout { id, after_s } => {
                write!(f, "stopped waiting after {after_s} s; {}", goes_on(id))
            }
            ClientError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// What a task does once the client stops waiting for it, and how to reach it again.
pub(super) fn goes_on(id: &str) -> String {
    format!(
        "task {id} goes on on the server (follow it: `workerpool watch {id}`; \
         cancel it: `workerpool cancel {id}`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_well() {
        let e =
            ClientError::Server { status: 429, message: "queue full".into(), retry_after: Some("1".into()) };
        assert_eq!(e.to_string(), "the server answered 429 Too Many Requests: queue full (retry after 1 s)");
        let e =
            ClientError::TaskEnded { id: "t1".into(), status: "failed".into(), error: Some("nope".into()) };
        assert_eq!(e.to_string(), "task t1 failed: nope");
        assert_eq!(e.exit_code(), 1);
        let e = ClientError::Unreachable { url: "http://h:1".into(), reason: "refused".into() };
        assert!(e.to_string().starts_with("cannot reach the workerpool server at http://h:1: refused"));
        assert_eq!(e.exit_code(), 3);
        let e = ClientError::Transport { url: "http://u:pl4nted@h:1/x".into(), reason: "reset".into() };
        assert_eq!(e.to_string(), "request to http://u:***@h:1/x failed: reset");
        assert_eq!(ClientError::Usage("x".into()).exit_code(), 2);
        let e = ClientError::Server { status: 404, message: "no task".into(), retry_after: None };
        assert_eq!(e.exit_code(), 3);
        let e = ClientError::TaskEnded { id: "t".into(), status: "timed_out".into(), error: None };
        assert_eq!(e.exit_code(), 4);
        let e = ClientError::TaskEnded { id: "t".into(), status: "cancelled".into(), error: None };
        assert_eq!(e.exit_code(), 1);
        let e = ClientError::WaitTimeout { id: "t".into(), after_s: 5 };
        assert_eq!(e.exit_code(), 4);
        let text = e.to_string();
        assert!(text.contains("workerpool watch t`") && text.contains("workerpool cancel t`"), "{text}");
        let e = ClientError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(e.is_quiet() && e.exit_code() == 0);
        let e = ClientError::Output(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(!e.is_quiet() && e.exit_code() == 1);
    }
}
