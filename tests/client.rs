//! The command-line client (`workerpool submit`, `workerpool status`) against a real server;
//! the other commands are in `tests/cli_tasks.rs` and `tests/cli_pool.rs`.

mod support;

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bounded::lines_of;
use support::cli::*;
use support::server::*;

/// `workerpool ARGS` with a clean environment.
fn client(args: &[&str]) -> Command {
    let mut cmd = workerpool(args);
    cmd.stdin(Stdio::null());
    cmd
}

fn submit(server: &Server, extra: &[&str]) -> Command {
    let mut args = vec!["submit", "--server", &server.base, "--type", "text_processing"];
    args.extend_from_slice(extra);
    client(&args)
}

#[test]
fn submit_waits_with_progress_and_prints_the_result() {
    let server = Server::start(TEXT_ONLY, &[]);
    let out = run(submit(&server, &["--data", r#"{"op":"progress","steps":4,"step_ms":30}"#]));
    assert_eq!(out.code, Some(0));
    let result: Value = serde_json::from_str(&out.stdout).expect("stdout is the result as JSON");
    assert_eq!(result["steps"], 4, "{result}");
    assert!(out.stdout.contains("\"steps\": 4"), "pretty-printed: {}", out.stdout);
    // The id goes to stderr, never to stdout; no logs either.
    assert!(out.stderr.contains("submitted"), "{}", out.stderr);
    assert!(!out.stderr.contains("INFO"), "{}", out.stderr);

    // --quiet: nothing but the result.
    let out = run(submit(&server, &["--quiet", "--priority", "-3", "--data", r#"{"op":"echo","x":1}"#]));
    assert_eq!(out.code, Some(0));
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert!(serde_json::from_str::<Value>(&out.stdout).is_ok(), "{}", out.stdout);
}

#[test]
fn submit_no_wait_prints_the_id_and_the_task_completes() {
    let server = Server::start(TEXT_ONLY, &[]);
    let out = run(submit(&server, &["--no-wait", "--data", r#"{"op":"sleep","ms":50}"#]));
    assert_eq!(out.code, Some(0));
    let queued: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().expect("an id");
    let deadline = Instant::now() + LIMIT;
    loop {
        let record = get(&server.url(&format!("/api/tasks/{id}")));
        assert_eq!(record.status, 200, "{record:?}");
        if record.body["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the task did not complete: {record:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failing_task_exits_1_with_its_error() {
    let server = Server::start(TEXT_ONLY, &[]);
    let out = run(submit(&server, &["--data", r#"{"op":"fail","retryable":false,"message":"nope"}"#]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("failed: nope"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn bad_data_exits_2_naming_the_flag() {
    // No server is needed: the flag is checked first.
    let out = run(client(&["submit", "--server", "http://127.0.0.1:9", "--type", "x", "--data", "{op}"]));
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("--data"), "{}", out.stderr);
    assert!(out.stderr.contains("JSON"), "{}", out.stderr);
}

#[test]
fn an_unknown_type_exits_3_with_the_servers_message() {
    let server = Server::start(TEXT_ONLY, &[]);
    let out = run(client(&["submit", "--server", &server.base, "--type", "no_such_type"]));
    assert_eq!(out.code, Some(3));
    assert!(out.stderr.contains("404"), "{}", out.stderr);
    assert!(out.stderr.contains("unknown task type"), "{}", out.stderr);
}

#[test]
fn status_prints_tables_or_json() {
    let server = Server::start(TEXT_ONLY, &[]);
    // One finished task, so the counters are not all zero.
    let out = run(submit(&server, &["--quiet", "--data", r#"{"op":"echo"}"#]));
    assert_eq!(out.code, Some(0));

    let out = run(client(&["status", "--server", &server.base]));
    assert_eq!(out.code, Some(0));
    for needle in ["instance ", "TYPE", "QUEUED", "text_processing", "WORKER", "RSS MiB"] {
        assert!(out.stdout.contains(needle), "{needle:?} missing from\n{}", out.stdout);
    }
    let type_row =
        out.stdout.lines().find(|l| l.starts_with("text_processing ")).expect("a row for the type");
    assert!(type_row.split_whitespace().count() >= 8, "{type_row}");

    let out = run(client(&["status", "--json", "--server", &server.base]));
    assert_eq!(out.code, Some(0));
    let body: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert!(body["by_type"]["text_processing"].is_object(), "{body}");

    // The server URL may come from the environment.
    let mut cmd = client(&["status"]);
    cmd.env("WORKERPOOL_URL", &server.base);
    assert_eq!(run(cmd).code, Some(0));
}

#[test]
fn an_unreachable_server_exits_3_saying_so() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    for args in
        [vec!["status", "--server", &url], vec!["submit", "--server", &url, "--type", "text_processing"]]
    {
        let out = run(client(&args));
        assert_eq!(out.code, Some(3));
        assert!(out.stderr.contains("cannot reach the workerpool server"), "{}", out.stderr);
        assert!(out.stderr.contains(&url), "{}", out.stderr);
        assert!(out.stderr.contains("workerpool serve"), "{}", out.stderr);
    }
}

#[test]
fn the_token_comes_from_the_environment() {
    let server = Server::start(TEXT_ONLY, &[("WORKERPOOL_API_TOKEN", "s3cret")]);
    let data = r#"{"op":"echo","n":7}"#;
    let out = run(submit(&server, &["--data", data]));
    assert_eq!(out.code, Some(3));
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(out.stderr.contains("bearer token"), "{}", out.stderr);

    let mut cmd = submit(&server, &["--data", data]);
    cmd.env("WORKERPOOL_API_TOKEN", "wrong");
    assert_eq!(run(cmd).code, Some(3));

    let mut cmd = submit(&server, &["--data", data]);
    cmd.env("WORKERPOOL_API_TOKEN", "s3cret");
    let out = run(cmd);
    assert_eq!(out.code, Some(0));
    let result: Value = serde_json::from_str(&out.stdout).expect("the result");
    assert!(result.to_string().contains('7'), "{result}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let config = std::env::temp_dir().join(format!("wp-client-json-{}.toml", std::process::id()));
    std::fs::write(&config, TEXT_ONLY).expect("write the config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_workerpool"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("WORKERPOOL_API_TOKEN")
        .env_remove("MAX_WORKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let rx = lines_of(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let listening = line.contains("listening on");
                lines.push(line);
                if listening {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&config);
    assert!(lines.iter().any(|l| l.contains("listening on")), "{lines:#?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["ts", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} missing in {line}");
        }
    }
}

/// A stand-in server that answers the client's requests from a script, to drive the paths a
/// real server rarely takes: an event stream that goes quiet, one that breaks, none at all.
mod fake {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The requests seen: `METHOD PATH AUTHORIZATION`.
    pub type Seen = Arc<Mutex<Vec<String>>>;

    /// Starts the server on a free port; returns its URL and the requests it sees.
    pub fn start() -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Seen = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &log);
                });
            }
        });
        (url, seen)
    }

    fn serve(stream: TcpStream, seen: &Seen) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request = String::new();
        reader.read_line(&mut request)?;
        let (mut length, mut auth) = (0usize, String::from("-"));
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((&line, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => auth = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let mut parts = request.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_string());
        let polls = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.push(format!("{method} {path} {auth}"));
            seen.iter().filter(|s| s.starts_with(&format!("GET {path} "))).count()
        };
        let mut out = stream;
        let json = |out: &mut TcpStream, status: &str, body: &str| {
            write!(
                out,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let record = |id: &str, status: &str| {
            format!(
                r#"{{"id":"{id}","status":"{status}","attempts":1,"result":{{"mode":"{id}"}},"error":null}}"#
            )
        };
        if method == "POST" {
            // The task's id is the mode asked for in its data.
            let data = String::from_utf8_lossy(&body);
            let mode = ["quiet", "broken", "none"].into_iter().find(|m| data.contains(m)).unwrap_or("none");
            return json(&mut out, "202 Accepted", &format!(r#"{{"id":"{mode}","status":"queued"}}"#));
        }
        let Some(rest) = path.strip_prefix("/api/tasks/") else {
            return json(&mut out, "404 Not Found", r#"{"error":"no route"}"#);
        };
        match rest.split_once('/') {
            Some(("none", "events")) => {
                json(&mut out, "500 Internal Server Error", r#"{"error":"no streams here"}"#)
            }
            Some((id, "events")) => {
                let running = record(id, "running");
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
                     event: status\ndata: {running}\n\nevent: progress\ndata: {{\"progress\":50,\"stage\":\"half\"}}\n\n"
                )?;
                out.flush()?;
                if id == "quiet" {
                    // The end is never announced; only keep-alives come.
                    for _ in 0..100 {
                        write!(out, ": keep-alive\n\n")?;
                        out.flush()?;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Ok(())
            }
            // The record says running on the first look, completed after.
            _ => json(&mut out, "200 OK", &record(rest, if polls < 2 { "running" } else { "completed" })),
        }
    }
}

#[test]
fn submit_follows_quiet_broken_and_missing_event_streams() {
    let (url, seen) = fake::start();
    for mode in ["quiet", "broken", "none"] {
        let data = format!(r#"{{"mode":"{mode}"}}"#);
        let mut cmd = client(&["submit", "--server", &url, "--type", "t", "--data", &data]);
        cmd.env("WORKERPOOL_API_TOKEN", "t0ken");
        let out = run(cmd);
        assert_eq!(out.code, Some(0), "{mode}");
        let result: Value = serde_json::from_str(&out.stdout).expect("the result");
        assert_eq!(result["mode"], mode);
    }
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(seen.iter().all(|s| s.ends_with(" Bearer t0ken")), "{seen:#?}");
    assert!(seen.iter().any(|s| s == "GET /api/tasks/broken Bearer t0ken"), "{seen:#?}");
}
