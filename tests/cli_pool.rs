//! The pool commands of the command line against a real server: `scale`, `restart`,
//! `events`, `status --watch`; and what the command line says of itself: completions,
//! `--version`, the exit codes in `--help` and `docs/CLI.md`.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::cli::*;
use support::server::*;

/// `workerpool ARGS` against `server` (through `WORKERPOOL_URL`).
fn cli(server: &Server, args: &[&str]) -> Command {
    let mut cmd = workerpool(args);
    cmd.env("WORKERPOOL_URL", &server.base);
    cmd
}

fn worker_ids(server: &Server) -> Vec<String> {
    let status = get(&server.url("/api/workers/status")).body;
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    workers.iter().filter_map(|w| w["id"].as_str().map(str::to_string)).collect()
}

#[test]
fn scale_and_restart_change_the_workers() {
    let config = TEXT_ONLY.replace("max_concurrent = 2", "max_concurrent = 3");
    let server = Server::start(&config, &[("WORKERPOOL_API_TOKEN", "t0ken")]);
    // Writes need the token: without it the server refuses, exit 3.
    let out = run(cli(&server, &["scale", "text_processing", "up", "2"]));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("401"), "{out:?}");

    let with_token = |args: &[&str]| {
        let mut cmd = cli(&server, args);
        cmd.env("WORKERPOOL_API_TOKEN", "t0ken");
        run(cmd)
    };
    let out = with_token(&["scale", "text_processing", "up", "2"]);
    assert_eq!(
        (out.code, out.stdout.trim()),
        (Some(0), "text_processing: 2 workers (2 starting now)"),
        "{out:?}"
    );
    assert!(wait_for(Duration::from_secs(20), || worker_ids(&server).len() == 2));
    let out = with_token(&["scale", "text_processing", "down", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let answer: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!((answer["type"].as_str(), answer["workers"].as_u64()), (Some("text_processing"), Some(1)));
    // Past max_concurrent: the server's 400 and its reason, exit 3.
    let out = with_token(&["scale", "text_processing", "up", "9"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("max_concurrent is 3"), "{out:?}");
    // Mistakes in the command line never reach the server: exit 2.
    for bad in [&["scale", "text_processing", "sideways"][..], &["scale", "text_processing", "up", "0"]] {
        let out = with_token(bad);
        assert_eq!(out.code, Some(2), "{bad:?}: {out:?}");
    }

    assert!(wait_for(Duration::from_secs(20), || worker_ids(&server).len() == 1));
    let before = worker_ids(&server);
    let out = with_token(&["restart", &before[0]]);
    assert_eq!((out.code, out.stdout.trim()), (Some(0), format!("worker {} restarted", before[0]).as_str()));
    assert!(wait_for(Duration::from_secs(20), || {
        let now = worker_ids(&server);
        now.len() == 1 && now != before
    }));
    let out = with_token(&["restart", "text_processing-999"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("404") && out.stderr.contains("text_processing-999"), "{out:?}");
}

#[test]
fn events_tail_filtered_by_type_and_name() {
    let server = Server::start(TEXT_ONLY, &[]);
    let tail = |json: bool| {
        let mut args =
            vec!["events", "--type", "text_processing", "--event", "task_completed", "--count", "2"];
        if json {
            args.push("--json");
        }
        let cmd = cli(&server, &args);
        std::thread::spawn(move || run(cmd))
    };
    for json in [true, false] {
        let tail = tail(json);
        // Tasks until the tail has seen two: it connects at a moment of its own.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !tail.is_finished() && std::time::Instant::now() < deadline {
            let done =
                execute(&server, serde_json::json!({"type": "text_processing", "data": {"op": "echo"}}));
            assert_eq!(done.status, 200, "{:?}", done.body);
        }
        let out = tail.join().expect("the tail");
        assert_eq!(out.code, Some(0), "{out:?}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{out:?}");
        for line in lines {
            if json {
                let event: Value = serde_json::from_str(line).expect("one JSON object per line");
                assert_eq!(event["event"], "task_completed", "{event}");
                assert_eq!(event["data"]["task_type"], "text_processing", "{event}");
            } else {
                assert!(line.contains(" task_completed text_processing duration_ms="), "{line}");
            }
        }
    }
}

#[test]
fn status_watch_reports_again_and_again() {
    let server = Server::start(TEXT_ONLY, &[]);
    let out = run(cli(&server, &["status", "--watch", "--interval", "0.2", "--count", "3", "--json"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let reports: Vec<Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON report per line")).collect();
    assert_eq!(reports.len(), 3, "{out:?}");
    assert!(reports.iter().all(|r| r["by_type"]["text_processing"].is_object()));
    let out = run(cli(&server, &["status", "--watch", "--interval", "0.2", "--count", "2"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.matches("TYPE ").count(), 2, "{out:?}");
    // --count without --watch is a usage mistake.
    assert_eq!(run(cli(&server, &["status", "--count", "2"])).code, Some(2));
    drop(server);

    // A server that goes away: each report says so on stderr, leaving stdout to the reports,
    // and the last one's failure is the exit code.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let url = format!("http://{free}");
    let out = run(workerpool(&["status", "--watch", "--interval", "0.1", "--count", "2", "--server", &url]));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stderr.matches("cannot reach the workerpool server").count(), 2, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    let watch = ["status", "--watch", "--json", "--interval", "0.1", "--count", "3", "--server", &url];
    let out = run(workerpool(&watch));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stderr.matches("cannot reach the workerpool server").count(), 3, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
}

#[test]
fn completions_are_valid_scripts() {
    let out = run(workerpool(&["completions", "bash"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    for command in ["dead-letters", "requeue", "--cancel-on-interrupt", "--ca-file"] {
        assert!(out.stdout.contains(command), "{command} missing from the bash completions");
    }
    let path = std::env::temp_dir().join(format!("wp-completions-{}.bash", std::process::id()));
    std::fs::write(&path, &out.stdout).expect("write");
    let syntax = Command::new("bash").arg("-n").arg(&path).output().expect("bash -n");
    let _ = std::fs::remove_file(&path);
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let out = run(workerpool(&["completions", "zsh"]));
    assert!(out.code == Some(0) && out.stdout.starts_with("#compdef workerpool"), "{out:?}");
    let out = run(workerpool(&["completions", "fish"]));
    assert!(out.code == Some(0) && out.stdout.contains("complete -c workerpool"), "{out:?}");
    assert_eq!(run(workerpool(&["completions", "tcsh"])).code, Some(2));
}

#[test]
fn version_names_the_revision() {
    let out = run(workerpool(&["--version"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let expected = format!("workerpool {} (revision ", env!("CARGO_PKG_VERSION"));
    let revision = out.stdout.trim().strip_prefix(&expected).and_then(|r| r.strip_suffix(')'));
    let revision = revision.unwrap_or_else(|| panic!("{:?} is not `{expected}REV)`", out.stdout));
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match git {
        Ok(git) if git.status.success() => assert_eq!(revision, String::from_utf8_lossy(&git.stdout).trim()),
        _ => assert!(!revision.is_empty(), "{out:?}"),
    }
}

#[test]
fn help_and_docs_list_the_same_exit_codes() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CLI.md")).expect("docs/CLI.md");
    for args in [&["--help"][..], &["submit", "--help"], &["cancel", "--help"], &["events", "--help"]] {
        let out = run(workerpool(args));
        assert_eq!(out.code, Some(0), "{out:?}");
        let codes =
            out.stdout.split("Exit codes:\n").nth(1).unwrap_or_else(|| panic!("no exit codes in {args:?}"));
        let lines: Vec<&str> = codes.lines().take_while(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 6, "{codes}");
        for line in lines {
            let (code, meaning) = line.trim().split_once("  ").expect("`N  meaning`");
            let row = format!("| {code} | {} |", meaning.trim());
            assert!(docs.contains(&row), "docs/CLI.md lacks the row {row:?}");
        }
    }
}
