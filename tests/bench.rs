//! Integration tests of `workerpool bench`: the real binary, small task counts, bounded in time.
//! They check the shape of the output (contract §7), never the speed.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The longest a bench command may take here; debug builds on a busy 2-core machine are slow.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `workerpool bench ARGS` and returns its output; kills it and fails after [`TIMEOUT`].
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_workerpool"))
        .arg("bench")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).map(|_| s)
    });
    let err = thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).map(|_| s)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the bench") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("workerpool bench {args:?} took longer than {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader").expect("read stdout"),
        stderr: err.join().expect("stderr reader").expect("read stderr"),
    }
}

/// A positive decimal number (`123` or `1.25`).
fn is_number(s: &str) -> bool {
    !s.is_empty() && s.parse::<f64>().is_ok_and(|n| n.is_finite() && n >= 0.0) && !s.starts_with('+')
}

/// Checks `<case>: <N> tasks/s | p50=<x>ms p99=<y>ms (details)` and returns the details.
fn check_line<'a>(line: &'a str, case: &str) -> &'a str {
    check_line_in(line, case, "tasks")
}

/// [`check_line`] for a case whose rate is in `<unit>/s` (`requests`, `samples`).
fn check_line_in<'a>(line: &'a str, case: &str, unit: &str) -> &'a str {
    let rest = line.strip_prefix(&format!("{case}: ")).unwrap_or_else(|| panic!("{line:?} names {case}"));
    let (rate, rest) =
        rest.split_once(&format!(" {unit}/s | p50=")).unwrap_or_else(|| panic!("shape of {line:?}"));
    assert!(!rate.is_empty() && rate.bytes().all(|b| b.is_ascii_digit()), "rate of {line:?}");
    let (p50, rest) = rest.split_once("ms p99=").unwrap_or_else(|| panic!("p99 in {line:?}"));
    let (p99, rest) = rest.split_once("ms (").unwrap_or_else(|| panic!("details of {line:?}"));
    assert!(is_number(p50) && is_number(p99), "latencies of {line:?}");
    let details = rest.strip_suffix(')').unwrap_or_else(|| panic!("closing parenthesis of {line:?}"));
    assert!(details.contains("runs=[") && details.contains("window="), "details of {line:?}");
    details
}

#[test]
fn prints_one_contract_line_per_case_and_the_ratio() {
    let out = bench(&["channel-roundtrip", "inproc-noop", "--tasks", "2000", "--runs", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, case) in lines.iter().zip(["channel-roundtrip", "inproc-noop"]) {
        let details = check_line(line, case);
        assert!(details.contains("tasks=2000"), "{line}");
        // One run: exactly one rate in the list.
        let runs = details.split_once("runs=[").and_then(|(_, r)| r.split_once(']')).map(|(r, _)| r);
        assert!(runs.is_some_and(|r| !r.contains(',') && is_number(r)), "{line}");
    }
    let ratio = lines[2].strip_prefix("# inproc-noop / channel-roundtrip = ").expect("the ratio line");
    assert!(is_number(ratio), "{}", lines[2]);
}

#[test]
fn an_unknown_case_fails_and_lists_the_valid_ones() {
    let out = bench(&["inproc-noop", "no-such-case"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing is measured: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-case"), "{stderr}");
    for case in [
        "channel-roundtrip",
        "inproc-noop",
        "process-noop",
        "spawn-per-task",
        "http-ceiling",
        "http-execute",
        "monitor-tick",
        "monitors-idle-cpu",
    ] {
        assert!(stderr.contains(case), "{case} listed in {stderr}");
    }
}

/// The one run's rate in `runs=[…]` is a single number.
fn one_run(details: &str) -> bool {
    let runs = details.split_once("runs=[").and_then(|(_, r)| r.split_once(']')).map(|(r, _)| r);
    runs.is_some_and(|r| !r.contains(',') && is_number(r))
}

#[test]
fn http_ceiling_prints_a_requests_line() {
    let out = bench(&["http-ceiling", "--http-secs", "1", "--runs", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let details = check_line_in(lines[0], "http-ceiling", "requests");
    assert!(one_run(details), "{}", lines[0]);
    assert!(details.contains("requests=") && details.contains("connections=64"), "{}", lines[0]);
}

#[test]
fn monitor_tick_prints_a_samples_line_with_the_decision_costs() {
    let out = bench(&["monitor-tick", "--runs", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let details = check_line_in(lines[0], "monitor-tick", "samples");
    assert!(one_run(details), "{}", lines[0]);
    for key in [
        "samples=200",
        "workers=50",
        "per-sample-us=",
        "nvml-sample-us=",
        "scaling-decision-ns=",
        "assess-health-ns=",
    ] {
        assert!(details.contains(key), "{key} in {}", lines[0]);
    }
}
