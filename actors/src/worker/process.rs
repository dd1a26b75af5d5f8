//! One worker's child process: spawned in a process group of its own, watched by waiting on
//! the child itself, and ended with everything it started.
//!
//! - Exit is seen by `wait` on the child, not by the end of its stdout: a grandchild that
//!   inherited the pipes and lives on cannot hide the worker's death.
//! - Every kill signals the whole process group: `SIGTERM`, then `SIGKILL` after
//!   [`KILL_GRACE`] if the worker is still there.
//! - When the worker has exited, whatever is left of it goes too: the rest of its process
//!   group, and processes that left the group (`setsid`) but still carry the worker's
//!   `WORKERPOOL_WORKER_KEY` in their environment (Linux: found through `/proc`). Only a
//!   descendant that both leaves the group and clears its environment escapes.
//! - Output is read through the bounded readers of [`super::output`].

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::output::{self, LogBudget, StderrLines};
use super::reader::{Reader, Taken, Watch};
use crate::messages::{Report, WorkerId};

/// How long a worker may take to exit after `SIGTERM` before it gets `SIGKILL`.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long a worker whose stdout closed may live on before it is stopped: it can no longer
/// answer.
const STDOUT_CLOSED_GRACE: Duration = Duration::from_secs(1);
/// After the worker exited: how long what it wrote is still read (its last lines), bounded
/// in case a descendant that escaped holds the pipes open.
pub(crate) const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);
/// The environment variable that marks every process a worker starts.
pub(crate) const KEY_VAR: &str = "WORKERPOOL_WORKER_KEY";

/// A spawned worker process: its pipes and the key its descendants carry.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) stdin: tokio::process::ChildStdin,
    pub(crate) stdout: ChildStdout,
    pub(crate) stderr: ChildStderr,
    pub(crate) key: String,
}

/// Starts `command` (no shell) in a process group of its own, with `env` added to the
/// environment and the server's secrets ([`crate::redact::SECRET_VARS`]) taken out of it.
pub(crate) fn spawn(
    command: &[String],
    worker: &str,
    task_type: &str,
    env: &[(String, String)],
) -> Result<Spawned, String> {
    let Some((program, args)) = command.split_first() else {
        return Err("the type has no command".into());
    };
    let key = uuid::Uuid::new_v4().simple().to_string();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("WORKERPOOL_WORKER_ID", worker)
        .env("WORKERPOOL_TASK_TYPE", task_type)
        .env(KEY_VAR, &key);
    for var in crate::redact::SECRET_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v))).kill_on_drop(true);
    // Its own process group: a Ctrl-C in the terminal reaches the pool, which drains, and not
    // the workers, which would die under their tasks; and a kill reaches all of the worker.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let (Some(stdin), Some(stdout), Some(stderr), Some(pid)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take(), child.id())
    else {
        return Err("the child's pipes were not opened".into());
    };
    Ok(Spawned { child, pid, stdin, stdout, stderr, key })
}

/// Whether `command`'s program can be run: found (on `PATH` when it names no directory), a
/// file, and executable. Says why not, naming the program.
pub(crate) fn runnable(command: &[String]) -> Result<(), String> {
    let Some(program) = command.first().filter(|p| !p.is_empty()) else {
        return Err("the type has no command".into());
    };
    let path = std::path::Path::new(program);
    if program.contains(std::path::MAIN_SEPARATOR) {
        return executable(path).map_err(|why| format!("cannot run {program:?}: {why}"));
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    let mut why = "not found on PATH".to_string();
    for dir in std::env::split_paths(&dirs) {
        match executable(&dir.join(path)) {
            Ok(()) => return Ok(()),
            Err(e) if e != "no such file" => why = e,
            Err(_) => {}
        }
    }
    Err(format!("cannot run {program:?}: {why}"))
}

fn executable(path: &std::path::Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|_| "no such file".to_string())?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", path.display()));
        }
    }
    Ok(())
}

/// The signals a kill sends, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sig {
    Term,
    Kill,
}

/// Signals the worker's whole process group (its id is the worker's pid).
fn signal_group(child: &mut Child, pgid: u32, sig: Sig) {
    #[cfg(unix)]
    {
        let _ = child;
        signal_pgid(pgid, sig);
    }
    #[cfg(not(unix))]
    {
        let _ = (pgid, sig);
        let _ = child.start_kill();
    }
}

/// Signals the process group `pgid`; a group that is gone already is no error.
#[cfg(unix)]
fn signal_pgid(pgid: u32, sig: Sig) {
    use nix::sys::signal::{Signal, killpg};
    let signal = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    };
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = killpg(nix::unistd::Pid::from_raw(pgid), signal);
    }
}

/// Kills the processes whose environment carries `key` (descendants of a worker that left
/// its process group); answers how many. Blocking: it reads `/proc`.
pub(crate) fn sweep(key: &str) -> usize {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::{Signal, kill};
        let entry = format!("{KEY_VAR}={key}").into_bytes();
        let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
        let me = std::process::id();
        let mut killed = 0;
        for proc in dir.flatten() {
            let Some(pid) = proc.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            // Processes of other users cannot be read, and are not ours.
            let Ok(env) = std::fs::read(proc.path().join("environ")) else { continue };
            if env.split(|&b| b == 0).any(|var| var == entry.as_slice())
                && let Ok(pid) = i32::try_from(pid)
                && kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).is_ok()
            {
                killed += 1;
            }
        }
        killed
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = key;
        0
    }
}

/// Reads the worker's stdout and waits for its exit; kills it (group first) when `kill`
/// fires or its sender is dropped, or when the worker breaks the protocol's bounds; after
/// the exit ends what is left of it and reports the exit last, so a result written just
/// before exiting is never lost.
pub(crate) async fn supervise(
    mut child: Child,
    pid: u32,
    key: String,
    stdout: ChildStdout,
    mut kill: oneshot::Receiver<bool>,
    watch: Watch,
) {
    let mut guard = GroupGuard { pid, key: Some(key) };
    let mut out = Reader::new(stdout, watch);
    let mut open = true;
    let mut kill_seen = false;
    // The next signal of the kill under way and when it is due.
    let mut next: Option<(Instant, Sig)> = None;
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let status = loop {
        tokio::select! {
            more = out.lines.fill(), if open => match out.take(more).await {
                Taken::More => {}
                Taken::TooLong => {
                    open = false;
                    next = Some(due(next, Instant::now(), Sig::Term));
                }
                Taken::End => {
                    open = false;
                    next = Some(due(next, Instant::now() + STDOUT_CLOSED_GRACE, Sig::Term));
                }
            },
            status = child.wait() => break status,
            at_once = &mut kill, if !kill_seen => {
                // Also reached when the worker actor is dropped without a word: kill then too.
                kill_seen = true;
                let sig = if at_once.unwrap_or(false) { Sig::Kill } else { Sig::Term };
                next = Some(due(next, Instant::now(), sig));
            }
            () = &mut timer, if next.is_some() => {
                if let Some((_, sig)) = next.take() {
                    signal_group(&mut child, pid, sig);
                    if sig == Sig::Term {
                        next = Some((Instant::now() + KILL_GRACE, Sig::Kill));
                    }
                }
            }
        }
        if let Some((at, _)) = next {
            timer.as_mut().reset(at);
        }
    };
    // The worker is gone: so is the rest of its group, and whatever left the group.
    signal_group(&mut child, pid, Sig::Kill);
    if let Some(key) = guard.key.take() {
        let swept = actix_rt::task::spawn_blocking(move || sweep(&key)).await.unwrap_or(0);
        if swept > 0 {
            let worker = &out.worker;
            log::warn!(target: "workerpool::worker", "worker {worker}: killed {swept} processes it left behind");
        }
    }
    if open {
        let drain = async {
            loop {
                let more = out.lines.fill().await;
                if !matches!(out.take(more).await, Taken::More) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await;
    }
    let (code, signal) = match status {
        Ok(status) => (status.code(), exit_signal(&status)),
        Err(_) => (None, None),
    };
    out.report(Report::Exited { code, signal });
}

/// Kills what is left of a worker if its supervision is dropped before the end (the runtime
/// stops, as a shutdown that ran past its bound does): `kill_on_drop` reaches only the worker.
struct GroupGuard {
    pid: u32,
    /// Taken when the supervision ends by itself, which sweeps on its own.
    key: Option<String>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            #[cfg(unix)]
            signal_pgid(self.pid, Sig::Kill);
            sweep(&key);
        }
    }
}

/// The earlier of the signal already due and a new one.
fn due(current: Option<(Instant, Sig)>, at: Instant, sig: Sig) -> (Instant, Sig) {
    match current {
        Some((when, s)) if (when <= at || s == Sig::Kill) && !(sig == Sig::Kill && at < when) => (when, s),
        _ => (at, sig),
    }
}

/// Logs the worker's stderr: short lines (see [`StderrLines`]) at a bounded rate (see
/// [`LogBudget`]), with the count of suppressed lines every few seconds. Ends at the end of
/// the pipe, or [`DRAIN_AFTER_EXIT`] after `exited` fires.
pub(crate) async fn log_stderr(stderr: ChildStderr, worker: WorkerId, exited: oneshot::Receiver<()>) {
    let mut lines = FramedRead::with_capacity(stderr, StderrLines::new(output::STDERR_LINE_MAX), 64 * 1024);
    let mut budget = LogBudget::new(
        output::LOG_LINES_PER_SEC,
        output::LOG_BURST,
        output::SUPPRESSED_EVERY,
        std::time::Instant::now(),
    );
    let mut tick = tokio::time::interval(output::SUPPRESSED_EVERY);
    let stop = tokio::time::sleep(DRAIN_AFTER_EXIT);
    tokio::pin!(stop, exited);
    let mut exit_seen = false;
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    let now = std::time::Instant::now();
                    if budget.admit(now) {
                        log::warn!(target: "workerpool::worker", "worker {worker} stderr: {line}");
                    }
                    suppressed(&mut budget, &worker, now, false);
                }
                Some(Err(_)) | None => break,
            },
            _ = tick.tick() => suppressed(&mut budget, &worker, std::time::Instant::now(), false),
            _ = &mut exited, if !exit_seen => {
                exit_seen = true;
                stop.as_mut().reset(Instant::now() + DRAIN_AFTER_EXIT);
            }
            () = &mut stop, if exit_seen => break,
        }
    }
    suppressed(&mut budget, &worker, std::time::Instant::now(), true);
}

fn suppressed(budget: &mut LogBudget, worker: &WorkerId, now: std::time::Instant, end: bool) {
    if let Some(n) = budget.report(now, end) {
        let rate = output::LOG_LINES_PER_SEC;
        log::warn!(target: "workerpool::worker", "worker {worker} stderr: suppressed {n} lines (over {rate} lines/s)");
    }
}

#[cfg(unix)]
fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn exit_signal(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_or_harder_signal_stays_due() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(due(None, later, Sig::Term), (later, Sig::Term));
        assert_eq!(due(Some((later, Sig::Term)), now, Sig::Term), (now, Sig::Term));
        assert_eq!(due(Some((now, Sig::Term)), later, Sig::Term), (now, Sig::Term));
        // A kill already on its way is not pushed back to a TERM, and an earlier kill wins.
        assert_eq!(due(Some((later, Sig::Kill)), now, Sig::Term), (later, Sig::Kill));
        assert_eq!(due(Some((later, Sig::Kill)), now, Sig::Kill), (now, Sig::Kill));
        assert_eq!(due(Some((later, Sig::Term)), now, Sig::Kill), (now, Sig::Kill));
    }

    #[test]
    fn runnable_names_what_is_wrong() {
        let cmd = |s: &str| vec![s.to_string()];
        assert_eq!(runnable(&cmd("sh")), Ok(()));
        assert_eq!(runnable(&cmd("/bin/sh")), Ok(()));
        let missing = runnable(&cmd("no-such-program-here")).unwrap_err();
        assert_eq!(missing, "cannot run \"no-such-program-here\": not found on PATH");
        let dir = runnable(&cmd("/tmp")).unwrap_err();
        assert!(dir.contains("/tmp is not a file"), "{dir}");
        let path = std::env::temp_dir().join(format!("wp-not-exec-{}", std::process::id()));
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        let why = runnable(&[path.display().to_string()]).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(why.ends_with("is not executable"), "{why}");
        assert_eq!(runnable(&[]), Err("the type has no command".to_string()));
    }

    #[test]
    fn sweep_finds_nothing_for_an_unknown_key() {
        assert_eq!(sweep("no-worker-has-this-key"), 0);
    }
}
