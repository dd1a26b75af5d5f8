//! A worker's processes: its exit is seen even when a grandchild holds its pipes, every kill
//! reaches the whole process group, nothing it started outlives it, and shutdown is bounded
//! whatever the workers do. Real servers, real processes.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::misbehaving::*;
use support::server::*;

#[test]
fn a_crash_with_a_grandchild_holding_the_pipes_is_seen_at_once() {
    for setsid in [false, true] {
        let server = Server::start(&config(2000, &[type_table("gc", "grandchild", "")]), &[]);
        let pidfile = pid_file(&format!("crash-{setsid}"));
        let started = Instant::now();
        let body = json!({"type": "gc", "data": {"op": "crash", "setsid": setsid, "pidfile": pidfile}});
        let reply = execute(&server, body);
        let grandchild = read_pid(&pidfile);
        let _reap = Reap(grandchild);
        // A crash, not the 30 s timeout: the exit was seen by waiting on the worker.
        assert_eq!(reply.status, 502, "{reply:?}");
        assert_eq!(reply.body["status"], "dead", "{reply:?}");
        let error = reply.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("exited with code 3"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
        assert!(
            wait_for(Duration::from_secs(5), || !running(grandchild)),
            "setsid {setsid}: the grandchild lives on"
        );
        assert!(wait_for(Duration::from_secs(5), || type_stats(&server, "gc")["total"] == 0));
        let crashed = wait_for(Duration::from_secs(5), || !log_lines(&server, "(crashed)").is_empty());
        assert!(crashed, "{:#?}", server.log());
        // The next task gets a fresh worker at once.
        let next = pid_file("next");
        let reply = execute(&server, json!({"type": "gc", "data": {"pidfile": next}}));
        let _reap_next = Reap(read_pid(&next));
        assert_eq!((reply.status, &reply.body["result"]), (200, &json!("ok")), "{reply:?}");
    }
}

#[test]
fn a_timeout_kills_the_whole_group_even_when_the_worker_ignores_sigterm() {
    let extra = "timeout_ms = 800";
    let server = Server::start(&config(2000, &[type_table("stubborn", "ignoreterm", extra)]), &[]);
    let pidfile = pid_file("timeout");
    let reply = execute(&server, json!({"type": "stubborn", "data": {"pidfile": pidfile}}));
    let grandchild = read_pid(&pidfile);
    let _reap = Reap(grandchild);
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_eq!(reply.body["status"], "timed_out", "{reply:?}");
    let worker_pid = reply.body["worker_pid"].as_u64().unwrap_or(0) as u32;
    assert!(worker_pid > 0, "{reply:?}");
    // SIGTERM is ignored: SIGKILL follows after the grace, to the worker and its grandchild.
    assert!(wait_for(Duration::from_secs(8), || !running(worker_pid) && !running(grandchild)));
    let killed = wait_for(Duration::from_secs(5), || {
        log_lines(&server, "(timeout)").iter().any(|l| l.contains("killed by signal 9"))
    });
    assert!(killed, "{:#?}", server.log());
}

#[test]
fn shutdown_is_bounded_whatever_the_workers_do() {
    let server_cfg = config(1000, &[type_table("stubborn", "ignoreterm", "max_concurrent = 2")]);
    let mut server = Server::start(&server_cfg, &[]);
    let mut grandchildren = Vec::new();
    for n in 0..2 {
        let pidfile = pid_file(&format!("shutdown-{n}"));
        let body = json!({"type": "stubborn", "data": {"pidfile": pidfile, "setsid": n == 1}, "options": {"wait": false}});
        assert_eq!(execute(&server, body).status, 202);
        grandchildren.push(read_pid(&pidfile));
    }
    let _reap: Vec<Reap> = grandchildren.iter().map(|&p| Reap(p)).collect();
    let started = Instant::now();
    let code = server.signal_and_wait("-TERM", Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(code, Some(0));
    // The grace period (1 s), the kill grace (2 s), the last output (1 s), and a margin.
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    for pid in grandchildren {
        assert!(wait_for(Duration::from_secs(2), || !running(pid)), "grandchild {pid} outlived the server");
    }
}

#[test]
fn a_crash_loop_backs_off_then_fails_the_queue_with_the_reason() {
    // No warm worker: the first start comes from the task, after the event stream is open.
    let extra = "start_retry_delay_ms = 200\nstart_retry_max_delay_ms = 800\nmax_start_failures = 4";
    let server_age = Instant::now();
    let server = Server::start(&config(1000, &[type_table("broken", "crashloop", extra)]), &[]);
    let (_, mut events) = sse(&server, "/api/workers/events", Duration::from_secs(20));
    let body = json!({"type": "broken", "data": {}, "options": {"wait": false}});
    let queued = execute(&server, body);
    assert_eq!(queued.status, 202, "{queued:?}");
    let id = queued.body["id"].as_str().unwrap_or_default().to_string();
    let task = || get(&server.url(&format!("/api/tasks/{id}"))).body;
    // While it backs off the task stays queued, and the type says why.
    let backing_off = wait_for(Duration::from_secs(10), || {
        type_stats(&server, "broken")["total"] == 0 && {
            let health = get(&server.url("/api/workers/health")).body;
            health["types"]["broken"]["reasons"].to_string().contains("cannot start")
        }
    });
    assert!(backing_off, "{:#?}", get(&server.url("/api/workers/health")).body);
    // Before it gives up: the task (read first) is still queued and the type available.
    let mut before = None;
    let seen = wait_for(Duration::from_secs(10), || {
        let t = task();
        let types = get(&server.url("/api/workers/types")).body;
        let entry = types["types"]["broken"].clone();
        let backing = entry["start_failures"]["gave_up"] == false;
        before = backing.then_some((t, entry));
        backing
    });
    let (t, entry) = before.unwrap_or_default();
    assert!(seen, "the type gave up before it was seen backing off");
    assert_eq!(t["status"], "queued", "{t}");
    assert_eq!(entry["available"], true, "{entry}");
    let reason = entry["start_failures"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("before it was ready"), "{entry}");
    let gave_up =
        read_events(&mut events, 200, |name, e| name == "start_backoff" && e["data"]["gave_up"] == true);
    let backoffs: Vec<_> = gave_up.iter().filter(|(name, _)| name == "start_backoff").collect();
    assert!(backoffs.len() >= 4, "{gave_up:#?}");
    let waits: Vec<u64> =
        backoffs.iter().map(|(_, e)| e["data"]["retry_in_ms"].as_u64().unwrap_or(0)).collect();
    assert_eq!(&waits[..4], &[200, 400, 800, 800], "{backoffs:#?}");
    // Only now, after four failed starts in a row, the task fails with the reason.
    assert!(wait_for(Duration::from_secs(5), || task()["status"] == "failed"), "{}", task());
    let error = task()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("workers of broken cannot start (4 failed starts in a row"), "{error}");
    assert!(error.contains("exited with code 1 before it was ready"), "{error}");
    assert_eq!(task()["attempts"], 0, "{}", task());
    let types = get(&server.url("/api/workers/types")).body;
    assert_eq!(types["types"]["broken"]["available"], false, "{types}");
    assert_eq!(types["types"]["broken"]["start_failures"]["gave_up"], true, "{types}");
    let refused = execute(&server, json!({"type": "broken", "data": {}}));
    assert_eq!(refused.status, 503, "{refused:?}");
    let health = get(&server.url("/api/workers/health"));
    assert_eq!(health.body["types"]["broken"]["status"], "unhealthy", "{:?}", health.body);
    // Backed off, the loop spawned a handful of workers, not thousands: four, then one
    // every 800 ms at most.
    let spawned = log_lines(&server, "spawned (pid").len() as u64;
    let most = 4 + server_age.elapsed().as_millis() as u64 / 800 + 1;
    assert!((4..=most).contains(&spawned), "{spawned} workers spawned, at most {most} expected");
}

#[test]
fn a_missing_command_is_reported_once_and_never_spawned() {
    let table = "[types.ghost]\nmin_workers = 1\ncommand = [\"/nonexistent/worker-program\"]\n".to_string();
    let server = Server::start(&config(1000, &[table, type_table("fine", "answer", "")]), &[]);
    let types = get(&server.url("/api/workers/types")).body;
    assert_eq!(types["types"]["ghost"]["available"], false, "{types}");
    let reason = types["types"]["ghost"]["unavailable_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot run \"/nonexistent/worker-program\": no such file"), "{reason}");
    let refused = execute(&server, json!({"type": "ghost", "data": {}}));
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.body["error"].as_str().unwrap_or_default().contains("cannot run"), "{refused:?}");
    // Other types work; the missing program was named once in the log.
    let ok = execute(&server, json!({"type": "fine", "data": {}}));
    assert_eq!(ok.status, 200, "{ok:?}");
    let named = log_lines(&server, "/nonexistent/worker-program");
    assert_eq!(named.len(), 1, "{named:#?}");
    assert!(log_lines(&server, "worker ghost-").is_empty(), "{:#?}", server.log());
}

#[test]
fn a_worker_that_never_answers_its_first_ping_counts_as_a_failed_start() {
    let extra = "start_timeout_ms = 300\nstart_retry_delay_ms = 100\nmax_start_failures = 2";
    let server = Server::start(&config(1000, &[type_table("mute", "noping", extra)]), &[]);
    let reply = execute(&server, json!({"type": "mute", "data": {}}));
    assert_eq!(reply.status, 502, "{reply:?}");
    let error = reply.body["error"].as_str().unwrap_or_default();
    assert!(error.contains("workers of mute cannot start (2 failed starts in a row"), "{error}");
    assert!(error.contains("did not answer its first ping within 300 ms"), "{error}");
    assert_eq!(reply.body["attempts"], 0, "{reply:?}");
}
