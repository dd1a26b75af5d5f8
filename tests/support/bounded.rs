//! Child processes of a test, bounded in time: a command (a suite in another language, say)
//! run to its end, a child's exit waited for, and its lines read as they come.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The lines of `reader` (a child's stderr) as they come, read on a thread of its own; the
/// channel ends when the reader does.
pub fn lines_of(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits at most `limit` for `child` to exit: its status, or `None` while it still runs.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` in a process group of its own, killing the whole group (servers and workers
/// the command started included) past `limit`. Returns the output and whether it timed out.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (Output, bool) {
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child: Child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let ended = exit_within(&mut child, limit);
    let timed_out = ended.is_none();
    let status = ended.unwrap_or_else(|| {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        child.wait().expect("wait")
    });
    // Whatever the suite left running in its group holds the pipes open: end it, then read.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let output =
        Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() };
    (output, timed_out)
}

/// Runs `cmd` as [`run_bounded`] does, and fails the test, naming `what` and showing its
/// output, when it runs past `limit` or exits with a failure.
pub fn run_ok(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    let (output, timed_out) = run_bounded(cmd, limit);
    let log = text(&output);
    assert!(!timed_out, "{what} ran past {limit:?} and was killed:\n{log}");
    assert!(
        output.status.success(),
        "{what} failed ({}) after {:?}:\n{log}",
        output.status,
        started.elapsed()
    );
    output
}

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
