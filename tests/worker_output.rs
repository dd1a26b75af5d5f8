//! What a worker writes cannot take the server down: stdout lines are capped by
//! `max_output_line_mb`, stderr is cut into short lines (`\r` ends one) and its log is
//! rate-limited. Real servers, real worker processes; the server's peak memory is read from
//! `/proc`.

mod support;

use serde_json::json;
use support::misbehaving::*;
use support::server::*;

/// The peak memory the server may reach while its workers write gigabytes. It idles near
/// 20 MiB; a stdout line may take up to its cap (64 MiB by default) while it is read.
const SERVER_PEAK: u64 = 120 << 20;

fn peak(server: &Server) -> u64 {
    proc_status_bytes(server.pid(), "VmHWM").expect("the server's VmHWM")
}

#[test]
fn a_stdout_line_past_the_cap_kills_the_worker_and_fails_the_task() {
    let extra = "max_output_line_mb = 2\nmax_retries = 2";
    let server = Server::start(&config(2000, &[type_table("big", "bigline", extra)]), &[]);
    let reply = execute(&server, json!({"type": "big", "data": {"mb": 64}}));
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.body["status"], "failed", "{reply:?}");
    let error = reply.body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("output_too_large"), "{error}");
    assert!(error.contains("max_output_line_mb (2 MiB)"), "{error}");
    assert_eq!(reply.body["attempts"], 1, "a line too long is not retried");
    // The worker is gone, replaced on demand: the next task gets a fresh one.
    assert!(wait_for(std::time::Duration::from_secs(10), || type_stats(&server, "big")["total"] == 0));
    let exited = wait_for(std::time::Duration::from_secs(10), || {
        log_lines(&server, "(output_too_large)").iter().any(|l| l.contains("worker big-"))
    });
    assert!(exited, "{:#?}", server.log());
}

#[test]
fn a_gigabyte_without_a_newline_on_stdout_leaves_the_server_small() {
    let server = Server::start(&config(2000, &[type_table("big", "bigline", "")]), &[]);
    let reply = execute(&server, json!({"type": "big", "data": {"mb": 1024}}));
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(
        reply.body["error"].as_str().unwrap_or_default().contains("max_output_line_mb (64 MiB)"),
        "{reply:?}"
    );
    let peak = peak(&server);
    assert!(peak < SERVER_PEAK, "the server peaked at {} MiB", peak >> 20);
}

#[test]
fn gigabytes_on_stderr_are_cut_into_short_log_lines() {
    let server = Server::start(&config(2000, &[type_table("noisy", "bigline_stderr", "")]), &[]);
    for _ in 0..3 {
        let reply = execute(&server, json!({"type": "noisy", "data": {"mb": 512}}));
        assert_eq!((reply.status, &reply.body["result"]), (200, &json!("ok")), "{reply:?}");
    }
    let peak = peak(&server);
    assert!(peak < SERVER_PEAK, "the server peaked at {} MiB", peak >> 20);
    let cut = wait_for(std::time::Duration::from_secs(10), || {
        log_lines(&server, "stderr: ").iter().any(|l| l.ends_with("[… line cut]"))
    });
    let stderr = log_lines(&server, "stderr: ");
    assert!(cut, "{stderr:#?}");
    let longest = server.log().iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 5000, "a log line of {longest} bytes");
}

#[test]
fn carriage_returns_end_lines_and_a_flood_is_rate_limited() {
    let types = [type_table("bar", "progressbar", ""), type_table("flood", "stderrflood", "")];
    let server = Server::start(&config(2000, &types), &[]);
    // A progress bar redrawn with \r: one log line per redraw, not one line for the run.
    let reply = execute(&server, json!({"type": "bar", "data": {"n": 20}}));
    assert_eq!(reply.status, 200, "{reply:?}");
    let all_drawn =
        wait_for(std::time::Duration::from_secs(10), || log_lines(&server, "stderr: progress ").len() >= 20);
    let drawn = log_lines(&server, "stderr: progress ");
    assert!(all_drawn && drawn.len() == 20, "{drawn:#?}");
    assert!(drawn.iter().all(|l| !l.contains('\r')), "{drawn:#?}");

    // Hundreds of thousands of lines in three seconds: a burst, then a trickle, then a count.
    let reply = execute(&server, json!({"type": "flood", "data": {"secs": 3}}));
    assert_eq!(reply.status, 200, "{reply:?}");
    let written = reply.body["result"]["lines"].as_u64().unwrap_or(0);
    assert!(written > 10_000, "the flood wrote only {written} lines");
    let logged = || log_lines(&server, "stderr: xxxx").len() as u64;
    let suppressed = || -> u64 {
        log_lines(&server, "stderr: suppressed ")
            .iter()
            .filter_map(|l| l.split("suppressed ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    // The count comes at most every five seconds.
    let counted = wait_for(std::time::Duration::from_secs(12), || logged() + suppressed() == written);
    assert!(counted, "{} logged and {} counted of {written}", logged(), suppressed());
    // 200 at once, then 50 a second for about three seconds.
    assert!((200..=500).contains(&logged()), "{} of {written} flood lines were logged", logged());
}

#[test]
fn a_flood_of_empty_and_invalid_stdout_lines_is_taken_at_the_pools_pace() {
    let server = Server::start(&config(2000, &[type_table("junk", "junk", "")]), &[]);
    let reply = execute(&server, json!({"type": "junk", "data": {"n": 200_000}}));
    assert_eq!((reply.status, &reply.body["result"]), (200, &json!("after junk")), "{reply:?}");
    let counted = wait_for(std::time::Duration::from_secs(10), || {
        !log_lines(&server, "more invalid lines not shown").is_empty()
    });
    assert!(counted, "the invalid lines past the budget are counted");
    // Ten a second after a burst of ten, not two hundred thousand.
    let shown = log_lines(&server, "invalid line: not a JSON object").len();
    assert!((1..=100).contains(&shown), "{shown} invalid lines logged");
    let peak = peak(&server);
    assert!(peak < SERVER_PEAK, "the server peaked at {} MiB", peak >> 20);
}
