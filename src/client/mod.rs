//! The command-line client of a running server (`docs/CLI.md`): `submit`, `watch`, `status`,
//! `events`, `cancel`, `requeue`, `dead-letters`, `scale` and `restart`.
//!
//! It speaks the REST API of contract §5 over http:// or https:// (rustls, `--ca-file`) with
//! `ureq`. `submit` queues a task (`"wait": false`), then, as `watch` does, follows
//! `GET /api/tasks/{id}/events` (server-sent events) with a progress bar on stderr, and falls
//! back to polling `GET /api/tasks/{id}` when the stream breaks. `status` prints
//! `GET /api/workers/status` as aligned tables; `events` tails `GET /api/workers/events`.
//!
//! Every failure is a [`ClientError`]; its [`ClientError::exit_code`] is one of [`exit`]: 1 the
//! task failed or was cancelled, 2 usage, 3 the server cannot be reached or refused, 4 timed out.
//!
//! - `args.rs`: the command-line arguments of every command.
//! - `error.rs`: [`ClientError`] and the exit codes.
//! - `http.rs`: [`Client`], one server's base URL, token, trust and HTTP agent.
//! - `sse.rs`: [`SseParser`], server-sent events from lines.
//! - `record.rs`: what a task record says (its status, whether it is final, a line about it).
//! - `progress.rs`: the progress bar on stderr.
//! - `follow.rs`: following one task to its end and printing its result.
//! - `waiting.rs`: Ctrl-C and `--wait-timeout` while a task is followed.
//! - `submit.rs`: [`submit`], which queues a task and follows it to its end.
//! - `actions.rs`: [`cancel`], [`requeue`], [`scale`], [`restart`] and [`watch`].
//! - `dead_letters.rs`: [`dead_letters`].
//! - `events.rs`: [`events`].
//! - `status.rs`: [`status`] (and `--watch`) and [`render_status`].
//! - `gpus.rs`: the GPU table of the status report.
//! - `table.rs`: [`Table`], plain text tables.
//! - `output.rs`: lines on stdout, and sizes and durations as people read them.

mod actions;
mod args;
mod dead_letters;
mod error;
mod events;
mod follow;
mod gpus;
mod http;
mod output;
mod progress;
mod record;
mod sse;
mod status;
mod submit;
mod table;
mod waiting;

pub use actions::{cancel, requeue, restart, scale, watch};
pub use args::{
    ConnectArgs, DEFAULT_SERVER, DeadLettersArgs, Direction, EventsArgs, RestartArgs, ScaleArgs, StatusArgs,
    SubmitArgs, TaskArgs, WaitArgs, WatchArgs,
};
pub use dead_letters::dead_letters;
pub use error::{ClientError, exit};
pub use events::events;
pub use http::Client;
pub use output::{format_bytes, format_duration_ms, format_mib};
pub use sse::{SseEvent, SseParser};
pub use status::{render_status, status};
pub use submit::submit;
pub use table::Table;
