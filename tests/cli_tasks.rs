//! The task commands of the command line against a real server: `cancel`, `requeue`,
//! `dead-letters`, `watch`, and `submit`'s exit codes, `--wait-timeout` and Ctrl-C.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::bounded::{exit_within, lines_of};
use support::cli::*;
use support::server::*;

/// `workerpool ARGS --server <server>` with a clean environment.
fn cli(server: &str, args: &[&str]) -> Command {
    let mut cmd = workerpool(args);
    cmd.args(["--server", server]);
    cmd
}

/// Queues a task without waiting and returns its id.
fn queue(server: &Server, data: Value, options: Value) -> String {
    let mut options = options;
    options["wait"] = json!(false);
    let answer = execute(server, json!({"type": "text_processing", "data": data, "options": options}));
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    answer.body["id"].as_str().expect("an id").to_string()
}

fn record(server: &Server, id: &str) -> Value {
    get(&server.url(&format!("/api/tasks/{id}"))).body
}

fn status_of(server: &Server, id: &str) -> String {
    record(server, id)["status"].as_str().unwrap_or("").to_string()
}

#[test]
fn cancel_ends_a_running_task_once() {
    let server = Server::start(TEXT_ONLY, &[]);
    let id = queue(&server, json!({"op": "sleep", "ms": 60_000}), json!({}));
    assert!(wait_for(Duration::from_secs(20), || status_of(&server, &id) == "running"));

    let out = run(cli(&server.base, &["cancel", &id]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with(&format!("task {id} cancelled (its worker text_processing-")), "{out:?}");
    assert_eq!(status_of(&server, &id), "cancelled");

    // Again: the server refuses (409), which is exit 3, and says why.
    let out = run(cli(&server.base, &["cancel", &id, "--json"]));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("409") && out.stderr.contains("already ended"), "{out:?}");
    // An id that would change the path is a usage error, not a request.
    let out = run(cli(&server.base, &["cancel", "../workers/status"]));
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn dead_letters_list_and_requeue_them() {
    let server = Server::start(TEXT_ONLY, &[]);
    let out = run(cli(&server.base, &["dead-letters", "text_processing"]));
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "no dead letters for text_processing"), "{out:?}");

    // A task that fails for good exits 1 from submit and lands in the dead letters.
    let data = r#"{"op":"fail","retryable":true,"message":"broken input"}"#;
    let out = run(cli(
        &server.base,
        &["submit", "-q", "--type", "text_processing", "--max-retries", "0", "--data", data],
    ));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("dead: broken input"), "{out:?}");
    let id =
        out.stderr.split_whitespace().nth(2).expect("the id in the error").trim_end_matches(':').to_string();

    let out = run(cli(&server.base, &["dead-letters", "text_processing"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let row = out.stdout.lines().find(|l| l.starts_with(&id)).expect("a row for the task");
    assert!(row.contains("dead") && row.contains("broken input"), "{row}");
    let out = run(cli(&server.base, &["dead-letters", "text_processing", "--json"]));
    let body: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(body["tasks"][0]["id"], id.as_str(), "{body}");

    let out = run(cli(&server.base, &["requeue", &id]));
    assert_eq!(
        (out.code, out.stdout.trim()),
        (Some(0), format!("task {id} queued again").as_str()),
        "{out:?}"
    );
    // It runs again and fails again: `watch` follows it to that end and exits 1.
    let out = run(cli(&server.base, &["watch", &id, "--quiet"]));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(&format!("task {id} dead")), "{out:?}");

    // Unknown ids and types: the server's 404, exit 3.
    let out = run(cli(&server.base, &["requeue", "no-such-task"]));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("404"), "{out:?}");
    let out = run(cli(&server.base, &["dead-letters", "no_such_type"]));
    assert_eq!(out.code, Some(3), "{out:?}");
}

#[test]
fn watch_prints_the_result_or_stops_waiting_with_4() {
    let server = Server::start(TEXT_ONLY, &[]);
    let id = queue(&server, json!({"op": "sleep", "ms": 300}), json!({}));
    let out = run(cli(&server.base, &["watch", &id]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let result: Value = serde_json::from_str(&out.stdout).expect("the result as JSON");
    assert!(result.get("pid").is_some(), "{result}");
    // Once it has ended, `--json` gives its whole record, on one line.
    let out = run(cli(&server.base, &["watch", &id, "--json"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let record: Value = serde_json::from_str(out.stdout.trim()).expect("the record");
    assert_eq!((record["id"].as_str(), record["status"].as_str()), (Some(id.as_str()), Some("completed")));

    // --wait-timeout gives up on the wait, not on the task.
    let id = queue(&server, json!({"op": "sleep", "ms": 60_000}), json!({}));
    let started = Instant::now();
    let out = run(cli(&server.base, &["watch", &id, "--wait-timeout", "1"]));
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(
        out.stderr.contains("goes on") && out.stderr.contains(&format!("workerpool cancel {id}")),
        "{out:?}"
    );
    assert!(matches!(status_of(&server, &id).as_str(), "queued" | "running"));

    // A task that times out exits 4 as well; one that is cancelled while watched exits 1.
    let out = run(cli(
        &server.base,
        &[
            "submit",
            "-q",
            "--type",
            "text_processing",
            "--timeout",
            "200",
            "--max-retries",
            "0",
            "--data",
            r#"{"op":"sleep","ms":5000}"#,
        ],
    ));
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stderr.contains("timed_out"), "{out:?}");
    // Whether the watcher is connected before the cancel or after, it ends on the same record.
    let watcher = cli(&server.base, &["watch", &id, "-q"]);
    let watcher = std::thread::spawn(move || run(watcher));
    assert_eq!(delete(&server.url(&format!("/api/tasks/{id}")), None).status, 200);
    let out = watcher.join().expect("the watcher");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("cancelled"), "{out:?}");
}

/// A started `submit` and the lines of its stderr as they come.
fn spawn_submit(server: &Server, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut cmd =
        cli(&server.base, &["submit", "--type", "text_processing", "--data", r#"{"op":"sleep","ms":60000}"#]);
    cmd.args(extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn submit");
    let lines = lines_of(child.stderr.take().expect("stderr"));
    (child, lines)
}

/// Waits for the child's exit code, killing it past [`LIMIT`].
fn exit_code(child: &mut Child) -> Option<i32> {
    if let Some(status) = exit_within(child, LIMIT) {
        return status.code();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the client did not exit within {LIMIT:?}");
}

/// Submits a long task, presses Ctrl-C once the client waits, and returns its exit code,
/// its stderr after that and the task's id.
fn interrupt_submit(server: &Server, extra: &[&str]) -> (Option<i32>, String, String) {
    let (mut child, lines) = spawn_submit(server, extra);
    // The note comes once Ctrl-C is caught: "task <id> submitted (...), waiting ...".
    let note = lines.recv_timeout(Duration::from_secs(30)).expect("the submitted note");
    let id = note.strip_prefix("task ").and_then(|r| r.split_whitespace().next()).expect("an id").to_string();
    assert!(wait_for(Duration::from_secs(20), || status_of(server, &id) == "running"));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let code = exit_code(&mut child);
    // The child has exited: its stderr ends, and so does this.
    let rest: Vec<String> = lines.iter().collect();
    (code, rest.join("\n"), id)
}

#[test]
fn ctrl_c_leaves_the_task_running_and_says_how_to_cancel_it() {
    let server = Server::start(TEXT_ONLY, &[]);
    let (code, stderr, id) = interrupt_submit(&server, &[]);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains(&format!("task {id} goes on")), "{stderr}");
    assert!(stderr.contains(&format!("workerpool cancel {id}")), "{stderr}");
    assert_eq!(status_of(&server, &id), "running");

    let (code, stderr, id) = interrupt_submit(&server, &["--cancel-on-interrupt"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("task {id} cancelled")), "{stderr}");
    assert_eq!(status_of(&server, &id), "cancelled");
}
