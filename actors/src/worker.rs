//! `Worker`: one long-lived child process, or one in-process handler slot.
//!
//! A worker runs one task at a time; its pool decides what it runs and when it is killed.
//! For a process worker the actor owns the input side; two local tasks own the rest:
//! the reader (stdout lines, then the exit status) and the stderr logger. The reader owns the
//! `Child`, so the process is reaped by whoever sees it end, and it reports every line and,
//! last, the exit straight to the pool, so a result written just before exiting is never lost.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

use crate::executor::{self, Line, TaskError};
use crate::messages::{Ping, Report, Run, StopWorker, WorkerId, WorkerReport};
use crate::pool::TypePool;

/// How long a worker whose input was closed may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How the worker runs tasks.
pub(crate) enum WorkerKind {
    Process { command: Arc<[String]> },
    InProcess,
}

/// One worker.
pub(crate) struct Worker {
    id: WorkerId,
    task_type: Arc<str>,
    pool: Addr<TypePool>,
    kind: WorkerKind,
    input: Option<mpsc::UnboundedSender<Vec<u8>>>,
    kill: Option<oneshot::Sender<()>>,
}

impl Worker {
    pub(crate) fn new(id: WorkerId, task_type: Arc<str>, pool: Addr<TypePool>, kind: WorkerKind) -> Worker {
        Worker { id, task_type, pool, kind, input: None, kill: None }
    }

    fn report(&self, report: Report) {
        self.pool.do_send(WorkerReport { worker: self.id.clone(), report });
    }

    fn spawn_process(&mut self, command: &[String]) -> Result<(), String> {
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("WORKERPOOL_WORKER_ID", &*self.id)
            .env("WORKERPOOL_TASK_TYPE", &*self.task_type)
            .kill_on_drop(true);
        // Its own process group: a Ctrl-C in the terminal reaches the pool, which drains, and
        // not the workers, which would die under their tasks. A worker whose pool is gone sees
        // its stdin close and exits.
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", command[0]))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the child's pipes were not opened".into());
        };
        self.report(Report::Spawned { pid: child.id() });

        let (input_tx, input_rx) = mpsc::unbounded_channel();
        actix_rt::spawn(write_lines(stdin, input_rx));
        self.input = Some(input_tx);

        let (kill_tx, kill_rx) = oneshot::channel();
        self.kill = Some(kill_tx);
        actix_rt::spawn(read_lines(child, stdout, kill_rx, self.pool.clone(), self.id.clone()));

        let id = self.id.clone();
        actix_rt::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log::warn!(target: "workerpool::worker", "worker {id} stderr: {line}");
            }
        });
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
        match &self.kind {
            WorkerKind::Process { command } => {
                let command = command.clone();
                if let Err(e) = self.spawn_process(&command) {
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
                let _ = kill.send(());
            } else {
                actix_rt::spawn(async move {
                    tokio::time::sleep(STOP_GRACE).await;
                    let _ = kill.send(());
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

/// Reads the child's stdout until it closes, then waits for (or forces) its exit.
async fn read_lines(
    mut child: Child,
    stdout: tokio::process::ChildStdout,
    mut kill: oneshot::Receiver<()>,
    pool: Addr<TypePool>,
    worker: WorkerId,
) {
    let report = |report: Report| pool.do_send(WorkerReport { worker: worker.clone(), report });
    let mut lines = BufReader::with_capacity(64 * 1024, stdout).lines();
    let mut killed = false;
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => report(match executor::parse_line(&line) {
                    Line::Pong(n) => Report::Pong(n),
                    Line::Progress { id, progress, stage } => Report::Progress { id, progress, stage },
                    Line::Result { id, result } => Report::Done { id, outcome: Ok(result) },
                    Line::Error { id, error, retryable } => {
                        Report::Done { id, outcome: Err(TaskError { message: error, retryable }) }
                    }
                    Line::Invalid(why) => Report::Invalid(why),
                }),
                Ok(None) | Err(_) => break,
            },
            _ = &mut kill, if !killed => {
                // Also reached when the worker actor is dropped without a word: kill then too.
                killed = true;
                let _ = child.start_kill();
            }
        }
    }
    let status = match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let (code, signal) = match status {
        Ok(status) => (status.code(), exit_signal(&status)),
        Err(_) => (None, None),
    };
    report(Report::Exited { code, signal });
}

#[cfg(unix)]
fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn exit_signal(_: &std::process::ExitStatus) -> Option<i32> {
    None
}
