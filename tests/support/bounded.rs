//! Running a test suite in another language as a child process, bounded in time.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
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
