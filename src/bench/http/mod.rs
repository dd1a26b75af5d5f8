//! The HTTP cases: `http-ceiling` (a bare actix-web server in this process) and `http-execute`
//! (the real server, `workerpool serve`, as a child process), both driven by the same load
//! generator.
//!
//! The load generator (`load.rs`) is `CONNECTIONS` tasks on one current-thread tokio runtime
//! (the calling thread), each with one keep-alive HTTP/1.1 connection on which it writes a
//! fixed request and reads the whole response before the next, for a fixed time. Its client
//! (`conn.rs`) is the smallest one that is correct for these servers: status line, headers up
//! to CRLFCRLF, `content-length`, then the body, however the bytes are split over reads; a
//! chunked or unframed response is an error, `connection: close` makes it reconnect.
//!
//! `ceiling.rs` is `http-ceiling`; `execute.rs` is `http-execute`, whose server `server.rs`
//! starts and stops.

mod ceiling;
mod conn;
mod execute;
mod load;
mod server;

pub(super) use ceiling::http_ceiling;
pub(super) use execute::http_execute;
