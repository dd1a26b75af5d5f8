//! A real `workerpool demo-worker` process, driven line by line, with every read bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The longest wait for any one line or exit; generous, as debug builds on a busy machine are slow.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A running demo worker, killed when dropped.
pub struct DemoWorker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl DemoWorker {
    /// Starts `workerpool demo-worker` with piped stdio, read by two background threads.
    pub fn spawn() -> Self {
        Self::spawn_with(&[], &[])
    }

    /// Starts the demo worker with `set` added to its environment and `unset` taken out.
    pub fn spawn_with(set: &[(&str, &str)], unset: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_workerpool"));
        command.envs(set.iter().copied());
        for name in unset {
            command.env_remove(name);
        }
        let mut child = command
            .arg("demo-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo worker starts");
        let stdout = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = read_lines(child.stderr.take().expect("piped stderr"));
        Self { stdin: child.stdin.take(), child, stdout, stderr }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes raw text to the worker's stdin.
    pub fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).expect("write to the worker");
        stdin.flush().expect("flush to the worker");
    }

    /// Closes the worker's stdin: the end of its input.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Sends one task line.
    pub fn send(&mut self, id: &str, kind: &str, data: Value) {
        let line = json!({"id": id, "type": kind, "data": data, "attempt": 1});
        self.write(&format!("{line}\n"));
    }

    /// The next stdout line, parsed; fails the test after [`TIMEOUT`].
    pub fn recv(&self) -> Value {
        let line = match self.stdout.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no answer within {TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the worker closed stdout"),
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends a task and returns its final line (result or error), skipping progress lines.
    pub fn run(&mut self, id: &str, kind: &str, data: Value) -> Value {
        self.send(id, kind, data);
        loop {
            let line = self.recv();
            assert_eq!(line["id"], id, "{line}");
            if line.get("progress").is_none() {
                return line;
            }
        }
    }

    /// Sends a task and returns its `result`, failing the test on an error answer.
    pub fn result(&mut self, id: &str, kind: &str, data: Value) -> Value {
        let mut line = self.run(id, kind, data);
        assert!(line.get("error").is_none(), "{line}");
        line["result"].take()
    }

    /// Waits for the process to exit, killing it after [`TIMEOUT`].
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the worker") {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stdout lines still to come before the worker closes stdout.
    pub fn remaining_stdout(&self) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => panic!("stdout still open after {TIMEOUT:?}"),
            }
        }
    }

    /// Everything written to stderr so far (the worker must have exited).
    pub fn stderr(&self) -> String {
        let mut text = String::new();
        while let Ok(line) = self.stderr.recv_timeout(TIMEOUT) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    /// Closes stdin and checks that the worker exits 0 without writing anything more.
    pub fn finish(mut self) {
        self.close_stdin();
        assert!(self.wait().success(), "exit on end of input");
        assert_eq!(self.remaining_stdout(), Vec::<String>::new());
    }
}

impl Drop for DemoWorker {
    fn drop(&mut self) {
        // The worker may have exited already; either way, no child outlives its test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards the lines of `source` to a channel, from a background thread.
fn read_lines(source: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}
