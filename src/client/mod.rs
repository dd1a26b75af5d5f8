//! The command-line client of a running server: `workerpool submit` and `workerpool status`.
//!
//! It speaks the REST API of contract §5 over plain HTTP with `ureq`. `submit` queues a task
//! (`"wait": false`), then follows `GET /api/tasks/{id}/events` (server-sent events) with a
//! progress bar on stderr, and falls back to polling `GET /api/tasks/{id}` when the stream
//! breaks. `status` prints `GET /api/workers/status` as aligned tables.
//!
//! Every failure is a [`ClientError`]; its [`ClientError::exit_code`] is 2 for usage mistakes
//! and 1 for the rest (the server cannot be reached, it refused the request, the task failed).
//!
//! - `args.rs`: the command-line arguments of both commands.
//! - `error.rs`: [`ClientError`] and its exit codes.
//! - `http.rs`: [`Client`], one server's base URL, token and HTTP agent.
//! - `sse.rs`: [`SseParser`], server-sent events from lines.
//! - `record.rs`: what a task record says (its status, whether it is final, a line about it).
//! - `progress.rs`: the progress bar on stderr.
//! - `submit.rs`: [`submit`], which queues a task and follows it to its end.
//! - `status.rs`: [`status`] and [`render_status`].
//! - `gpus.rs`: the GPU table of the status report.
//! - `table.rs`: [`Table`], plain text tables.
//! - `output.rs`: lines on stdout, and sizes and durations as people read them.

mod args;
mod error;
mod gpus;
mod http;
mod output;
mod progress;
mod record;
mod sse;
mod status;
mod submit;
mod table;

pub use args::{ConnectArgs, DEFAULT_SERVER, StatusArgs, SubmitArgs};
pub use error::ClientError;
pub use http::Client;
pub use output::{format_bytes, format_duration_ms, format_mib};
pub use sse::{SseEvent, SseParser};
pub use status::{render_status, status};
pub use submit::submit;
pub use table::Table;
