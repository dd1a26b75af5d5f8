//! `Worker`: one long-lived child process, or one in-process handler slot.
//!
//! A worker runs one task at a time; its pool decides what it runs and when it is killed.
//! For a process worker the actor owns the input side; two local tasks own the rest (see
//! [`process`]): the supervisor (stdout lines, the exit, the kill of the process group) and
//! the stderr logger. The supervisor owns the `Child`, so the process is reaped by whoever
//! sees it end, and it reports every line and, last, the exit straight to the pool, so a
//! result written just before exiting is never lost. What a worker writes is read through
//! bounded buffers (see [`output`]).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, oneshot};

use crate::executor;
use crate::messages::{Ping, Report, Run, StopWorker, WorkerId, WorkerReport};

mod output;
mod process;
mod reader;

pub(crate) use process::runnable;

/// How long a worker whose input was closed may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The longest a stop takes, whatever the worker does: the grace after its input closes, the
/// grace after `SIGTERM`, and the reading of its last output after it exited.
pub(crate) const STOP_BOUND: Duration =
    STOP_GRACE.saturating_add(process::KILL_GRACE).saturating_add(process::DRAIN_AFTER_EXIT);

/// How the worker runs tasks.
pub(crate) enum WorkerKind {
    /// A child process; a stdout line past `max_line_bytes` kills it. `env` is added to its
    /// environment (the GPUs it was placed on).
    Process {
        command: Arc<[String]>,
        max_line_bytes: usize,
        env: Vec<(String, String)>,
    },
    InProcess,
}

/// One worker.
pub(crate) struct Worker {
    id: WorkerId,
    task_type: Arc<str>,
    pool: Recipient<WorkerReport>,
    kind: WorkerKind,
    input: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Starts the kill of the process: `true` for `SIGKILL` at once, `false` for `SIGTERM`
    /// first.
    kill: Option<oneshot::Sender<bool>>,
}

impl Worker {
    pub(crate) fn new(
        id: WorkerId,
        task_type: Arc<str>,
        pool: Recipient<WorkerReport>,
        kind: WorkerKind,
    ) -> Worker {
        Worker { id, task_type, pool, kind, input: None, kill: None }
    }

    fn report(&self, report: Report) {
        self.pool.do_send(WorkerReport { worker: self.id.clone(), report });
    }

    fn spawn_process(
        &mut self,
        command: &[String],
        max_line_bytes: usize,
        env: &[(String, String)],
    ) -> Result<(), String> {
        let spawned = process::spawn(command, &self.id, &self.task_type, env)?;
        self.report(Report::Spawned { pid: Some(spawned.pid) });

        let (input_tx, input_rx) = mpsc::unbounded_channel();
        actix_rt::spawn(write_lines(spawned.stdin, input_rx));
        self.input = Some(input_tx);

        let (kill_tx, kill_rx) = oneshot::channel();
        self.kill = Some(kill_tx);
        let (exited_tx, exited_rx) = oneshot::channel();
        let watch = reader::Watch { pool: self.pool.clone(), worker: self.id.clone(), max_line_bytes };
        let (child, pid, key, stdout) = (spawned.child, spawned.pid, spawned.key, spawned.stdout);
        actix_rt::spawn(async move {
            process::supervise(child, pid, key, stdout, kill_rx, watch).await;
            let _ = exited_tx.send(());
        });
        actix_rt::spawn(process::log_stderr(spawned.stderr, self.id.clone(), exited_rx));
        Ok(())
    }

    fn send_line(&self, line: Vec<u8>) {
        if let Some(input) = &self.input {
            // A closed channel means the writer saw the pipe break; the reader reports the exit.
            let _ = input.send(line);
        }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match &mut self.kind {
            WorkerKind::Process { command, max_line_bytes, env } => {
                let (command, max, env) = (command.clone(), *max_line_bytes, std::mem::take(env));
                if let Err(e) = self.spawn_process(&command, max, &env) {
                    self.report(Report::SpawnFailed(e));
                    ctx.stop();
                    return;
                }
                // The first pong tells the pool the worker is ready.
                self.send_line(executor::encode_ping(0));
            }
            WorkerKind::InProcess => {
                self.report(Report::Spawned { pid: None });
                self.report(Report::Pong(0));
            }
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // A process worker's exit is reported by its reader; a handler slot ends with its actor.
        if matches!(self.kind, WorkerKind::InProcess) {
            self.report(Report::Exited { code: None, signal: None });
        }
    }
}

impl Handler<Run> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Run, _: &mut Context<Self>) {
        match &self.kind {
            WorkerKind::Process { .. } => {
                self.send_line(executor::encode_task(&msg.id, &self.task_type, &msg.data, msg.attempt));
            }
            // A handler slot's tasks are run by its pool (see `pool::inproc`).
            WorkerKind::InProcess => {}
        }
    }
}

impl Handler<Ping> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) {
        match self.kind {
            WorkerKind::Process { .. } => self.send_line(executor::encode_ping(msg.0)),
            // The handler slot shares the pool's thread: if this message is handled, it is alive.
            WorkerKind::InProcess => self.report(Report::Pong(msg.0)),
        }
    }
}

impl Handler<StopWorker> for Worker {
    type Result = ();

    fn handle(&mut self, msg: StopWorker, ctx: &mut Context<Self>) {
        // Closing the input asks a well-behaved worker to exit; the kill follows either at once
        // or after the grace period.
        self.input = None;
        if let Some(kill) = self.kill.take() {
            if msg.kill {
                let _ = kill.send(msg.at_once);
            } else {
                actix_rt::spawn(async move {
                    tokio::time::sleep(STOP_GRACE).await;
                    let _ = kill.send(false);
                });
            }
        }
        ctx.stop();
    }
}

/// Writes queued lines to the child's stdin, flushing once per burst.
async fn write_lines(stdin: ChildStdin, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut out = BufWriter::with_capacity(64 * 1024, stdin);
    while let Some(line) = rx.recv().await {
        if out.write_all(&line).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if out.write_all(&more).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    // The sender is gone: dropping `out` closes the pipe, which tells the worker to exit.
}
