//! The REST API over real HTTP against the real binary: status codes, errors, access,
//! metrics, health, queues, resources and shutdown (the event streams are in `sse.rs`).

mod support;

use std::time::Duration;

use serde_json::json;
use support::server::*;

const SLOW: &str = "[pool]\nmax_workers = 4\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 3000\nresource_monitor_interval_ms = 200\n\n[types.text_processing]\nmax_concurrent = 1\nqueue_size = 1\nmax_retries = 0\nretry_delay_ms = 20\n\n[types.image_generation]\n";

#[test]
fn execute_answers_with_the_contract_status_of_each_outcome() {
    let server = Server::start(SLOW, &[]);
    let ok = execute(&server, json!({"type": "text_processing", "data": {"text": "a b c"}}));
    assert_eq!((ok.status, ok.body["status"].as_str()), (200, Some("completed")));
    assert_eq!(ok.body["result"]["words"], 3);

    let failed = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "fail", "retryable": false, "message": "bad"}}),
    );
    assert_eq!(
        (failed.status, failed.body["status"].as_str(), failed.body["error"].as_str()),
        (502, Some("failed"), Some("bad"))
    );

    let dead = execute(&server, json!({"type": "text_processing", "data": {"op": "crash"}}));
    assert_eq!((dead.status, dead.body["status"].as_str()), (502, Some("dead")));

    let timed_out = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "sleep", "ms": 5000}, "options": {"timeout": 200}}),
    );
    assert_eq!((timed_out.status, timed_out.body["status"].as_str()), (504, Some("timed_out")));

    let queued = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "echo"}, "options": {"wait": false}}),
    );
    assert_eq!((queued.status, queued.body["status"].as_str()), (202, Some("queued")));
    let id = queued.body["id"].as_str().unwrap().to_string();
    assert!(wait_for(
        Duration::from_secs(10),
        || get(&server.url(&format!("/api/tasks/{id}"))).body["status"] == "completed"
    ));
}

#[test]
fn a_waiting_execute_of_a_cancelled_task_answers_409() {
    let server = Server::start(SLOW, &[]);
    let url = server.url("/api/workers/execute");
    let waiter = std::thread::spawn(move || {
        post(&url, r#"{"type":"text_processing","data":{"op":"sleep","ms":10000}}"#, None)
    });
    let running = wait_for(Duration::from_secs(10), || text_busy(&server));
    assert!(running);
    let workers = get(&server.url("/api/workers/status")).body["workers"].clone();
    let task =
        workers.as_array().unwrap().iter().find_map(|w| w["task_id"].as_str().map(str::to_string)).unwrap();
    let cancelled = delete(&server.url(&format!("/api/tasks/{task}")), None);
    assert_eq!((cancelled.status, cancelled.body["status"].as_str()), (200, Some("cancelled")));
    let answer = waiter.join().unwrap();
    assert_eq!((answer.status, answer.body["status"].as_str()), (409, Some("cancelled")));
    // Cancelling again: it has ended.
    assert_eq!(delete(&server.url(&format!("/api/tasks/{task}")), None).status, 409);
}

#[test]
fn a_requeue_of_a_task_that_is_not_dead_lettered_answers_409() {
    let server = Server::start(SLOW, &[]);
    let done = execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    assert_eq!(done.status, 200, "{:?}", done.body);
    let later = |ms: u64| {
        let body =
            json!({"type": "text_processing", "data": {"op": "sleep", "ms": ms}, "options": {"wait": false}});
        let reply = execute(&server, body);
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        reply.body["id"].as_str().expect("an id").to_string()
    };
    let running = later(5_000);
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)));
    let queued = later(10);
    let done = done.body["id"].as_str().expect("an id").to_string();
    for (id, status) in [(&queued, "queued"), (&running, "running"), (&done, "completed")] {
        assert_eq!(get(&server.url(&format!("/api/tasks/{id}"))).body["status"], status);
        let reply = post(&server.url(&format!("/api/tasks/{id}/requeue")), "", None);
        assert_eq!(reply.status, 409, "{status}: {:?}", reply.body);
        let error = reply.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("is not in the dead-letter list of text_processing"), "{status}: {error}");
    }
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let server = Server::start(SLOW, &[]);
    let sleep =
        json!({"type": "text_processing", "data": {"op": "sleep", "ms": 2000}, "options": {"wait": false}});
    assert_eq!(execute(&server, sleep.clone()).status, 202);
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)));
    assert_eq!(execute(&server, sleep.clone()).status, 202);
    let full = execute(&server, sleep);
    assert_eq!(full.status, 429, "{full:?}");
    assert_eq!(full.retry_after.as_deref(), Some("1"));
    assert!(full.body["error"].as_str().unwrap().contains("full"));
    assert_eq!(full.body["type"], "text_processing");
    let queues = get(&server.url("/api/workers/queues")).body;
    assert_eq!(queues["queues"]["text_processing"]["length"], 1);
    assert_eq!(queues["queues"]["text_processing"]["tasks"][0]["priority"], 0);
}

/// Every endpoint, fed bad input: always a 4xx with a JSON `error`, never a 500.
#[test]
fn bad_input_gets_a_clear_4xx_everywhere() {
    let server = Server::start(SLOW, &[]);
    let cases: Vec<(&str, &str, &str, u16, &str)> = vec![
        ("POST", "/api/workers/execute", "", 400, "empty"),
        ("POST", "/api/workers/execute", "{not json", 400, "invalid JSON"),
        ("POST", "/api/workers/execute", "[]", 400, "invalid JSON"),
        ("POST", "/api/workers/execute", r#"{"data":{}}"#, 400, "type"),
        ("POST", "/api/workers/execute", r#"{"type":""}"#, 400, "type"),
        ("POST", "/api/workers/execute", r#"{"type":7}"#, 400, "type"),
        ("POST", "/api/workers/execute", r#"{"type":"nope"}"#, 404, "unknown task type"),
        ("POST", "/api/workers/execute", r#"{"type":"text_processing","bogus":1}"#, 400, "bogus"),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"priority":"high"}}"#,
            400,
            "options.priority",
        ),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"priority":99999999999}}"#,
            400,
            "options.priority",
        ),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"timeout":-5}}"#,
            400,
            "options.timeout",
        ),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"timeout":0}}"#,
            400,
            "options.timeout",
        ),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"timeout":1e30}}"#,
            400,
            "options.timeout",
        ),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"max_retries":1000}}"#,
            400,
            "options.max_retries",
        ),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"delay":99999999999999}}"#,
            400,
            "options.delay",
        ),
        (
            "POST",
            "/api/workers/execute",
            r#"{"type":"text_processing","options":{"wait":"yes"}}"#,
            400,
            "options.wait",
        ),
        ("POST", "/api/workers/execute", r#"{"type":"text_processing","options":{"speed":1}}"#, 400, "speed"),
        ("POST", "/api/workers/execute", r#"{"type":"image_generation"}"#, 503, "needs a GPU"),
        ("POST", "/api/workers/scale/text_processing", "", 400, "empty"),
        ("POST", "/api/workers/scale/text_processing", r#"{"action":"sideways"}"#, 400, "action"),
        ("POST", "/api/workers/scale/text_processing", r#"{"action":"up","count":-1}"#, 400, "count"),
        ("POST", "/api/workers/scale/text_processing", r#"{"action":"up","count":0}"#, 400, "count"),
        (
            "POST",
            "/api/workers/scale/text_processing",
            r#"{"action":"up","count":100000}"#,
            400,
            "max_concurrent",
        ),
        ("POST", "/api/workers/scale/text_processing", r#"{"action":"down","count":5}"#, 400, "min_workers"),
        ("POST", "/api/workers/scale/nope", r#"{"action":"up"}"#, 404, "unknown task type"),
        ("POST", "/api/workers/restart/nope-1", "", 404, "no worker"),
        ("POST", "/api/workers/restart/no_dash", "", 404, "no worker"),
        ("POST", "/api/workers/restart/text_processing-99999", "", 404, "no worker"),
        ("GET", "/api/workers/dead-letters/nope", "", 404, "unknown task type"),
        ("GET", "/api/tasks/00000000-0000-0000-0000-000000000000", "", 404, "no task"),
        ("GET", "/api/tasks/%00%ff", "", 404, "no task"),
        ("DELETE", "/api/tasks/nope", "", 404, "no task"),
        ("POST", "/api/tasks/nope/requeue", "", 404, "no task"),
        ("GET", "/api/tasks/nope/events", "", 404, "no task"),
        ("GET", "/api/nothing", "", 404, "no route"),
        ("GET", "/api/workers/execute", "", 405, "not allowed"),
        ("DELETE", "/api/workers/stats", "", 405, "not allowed"),
    ];
    for (method, path, body, status, needle) in cases {
        let r = match method {
            "POST" => post(&server.url(path), body, None),
            "DELETE" => delete(&server.url(path), None),
            _ => get(&server.url(path)),
        };
        assert_eq!(r.status, status, "{method} {path} {body}: {r:?}");
        let error =
            r.body["error"].as_str().unwrap_or_else(|| panic!("{method} {path}: no error field: {r:?}"));
        assert!(error.contains(needle), "{method} {path} {body}: {error:?} lacks {needle:?}");
        assert!(r.content_type.starts_with("application/json"), "{method} {path}: {}", r.content_type);
    }
    // Still serving after all that.
    assert_eq!(get(&server.url("/api/workers/stats")).status, 200);
}

#[test]
fn a_body_over_the_limit_answers_413() {
    let server = Server::start(SLOW, &[]);
    let big = format!(r#"{{"type":"text_processing","data":{{"text":"{}"}}}}"#, "x".repeat(2 << 20));
    let r = post(&server.url("/api/workers/execute"), &big, None);
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body["error"].as_str().unwrap().contains("larger than"));
}

#[test]
fn a_token_guards_the_endpoints_that_change_something() {
    let server = Server::start(SLOW, &[("WORKERPOOL_API_TOKEN", "s3cret")]);
    let body = r#"{"type":"text_processing","data":{"op":"echo"}}"#;
    let url = server.url("/api/workers/execute");
    assert_eq!(post(&url, body, None).status, 401);
    assert_eq!(post(&url, body, Some("wrong")).status, 401);
    assert_eq!(post(&url, body, Some("s3cret")).status, 200);
    assert_eq!(
        post(&server.url("/api/workers/scale/text_processing"), r#"{"action":"up"}"#, None).status,
        401
    );
    assert_eq!(post(&server.url("/api/workers/restart/text_processing-1"), "", None).status, 401);
    assert_eq!(delete(&server.url("/api/tasks/x"), None).status, 401);
    // Reads stay open.
    assert_eq!(get(&server.url("/api/workers/stats")).status, 200);
    assert_eq!(get(&server.url("/metrics")).status, 200);
    // A token this short is warned about at start, by its length only.
    let log = server.log();
    assert!(log.iter().any(|l| l.contains("WORKERPOOL_API_TOKEN is 6 characters long")), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("s3cret")), "{log:#?}");
}

#[test]
fn reads_can_be_protected_too() {
    let env = [("WORKERPOOL_API_TOKEN", "s3cret"), ("WORKERPOOL_PROTECT_READS", "1")];
    let server = Server::start(SLOW, &env);
    for path in ["/api/workers/stats", "/metrics", "/api/openapi.json", "/api/workers/health"] {
        let r = get(&server.url(path));
        assert_eq!(r.status, 401, "{path}: {r:?}");
        assert_eq!(r.body["error"], "missing or wrong bearer token");
    }
    let r = get_with(&server.url("/api/workers/stats"), Some("s3cret")).status;
    assert_eq!(r, 200);
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name_and_labels} not in the metrics"))
}

#[test]
fn metrics_count_every_task() {
    let server = Server::start(TEXT_ONLY, &[]);
    let n = 12;
    for i in 0..n {
        let r = execute(&server, json!({"type": "text_processing", "data": {"op": "echo", "i": i}}));
        assert_eq!(r.status, 200);
    }
    let r = get(&server.url("/metrics"));
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"), "{}", r.content_type);
    let text = r.body.as_str().unwrap();
    let t = r#"{type="text_processing"}"#;
    assert_eq!(
        metric(text, r#"workerpool_tasks_total{outcome="completed",type="text_processing"}"#),
        n as f64
    );
    assert_eq!(metric(text, &format!("workerpool_task_duration_seconds_count{t}")), n as f64);
    assert_eq!(metric(text, &format!("workerpool_task_wait_seconds_count{t}")), n as f64);
    assert_eq!(metric(text, &format!("workerpool_queue_length{t}")), 0.0);
    assert!(metric(text, r#"workerpool_workers{state="idle",type="text_processing"}"#) >= 1.0);
    // A crash is a restart by reason.
    execute(&server, json!({"type": "text_processing", "data": {"op": "crash", "until_attempt": 1}}));
    let text = get(&server.url("/metrics")).body.as_str().unwrap().to_string();
    assert_eq!(
        metric(&text, r#"workerpool_worker_restarts_total{reason="crashed",type="text_processing"}"#),
        1.0
    );
    assert_eq!(
        metric(&text, r#"workerpool_task_retries_total{reason="crashed",type="text_processing"}"#),
        1.0
    );
    // Every family is registered once.
    let helps = text.lines().filter(|l| l.starts_with("# HELP workerpool_tasks_total ")).count();
    assert_eq!(helps, 1);
}

#[test]
fn health_turns_unhealthy_when_every_task_fails() {
    let server = Server::start(TEXT_ONLY, &[]);
    let h = get(&server.url("/api/workers/health"));
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("healthy")));
    for _ in 0..10 {
        let r =
            execute(&server, json!({"type": "text_processing", "data": {"op": "fail", "retryable": false}}));
        assert_eq!(r.status, 502);
    }
    let h = get(&server.url("/api/workers/health"));
    assert_eq!((h.status, h.body["status"].as_str()), (503, Some("unhealthy")), "{h:?}");
    assert_eq!(h.body["types"]["text_processing"]["error_rate"], 1.0);
    let reasons = h.body["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("100% of 10 tasks failed")), "{reasons:?}");
}

#[test]
fn types_resources_and_status_describe_the_pool() {
    let server = Server::start(SLOW, &[]);
    let types = get(&server.url("/api/workers/types")).body;
    assert_eq!(types["types"]["text_processing"]["available"], true);
    assert_eq!(types["types"]["text_processing"]["max_concurrent"], 1);
    assert_eq!(types["types"]["image_generation"]["gpu_required"], true);
    assert_eq!(types["types"]["image_generation"]["available"], false);
    assert!(types["types"]["image_generation"]["unavailable_reason"].as_str().unwrap().contains("GPU"));

    execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}}));
    let sampled = wait_for(Duration::from_secs(10), || {
        let r = get(&server.url("/api/workers/resources")).body;
        r["workers"].as_array().is_some_and(|w| !w.is_empty())
            && r["system"]["memory_total_bytes"].as_u64() > Some(0)
    });
    assert!(sampled, "no worker in the resource sample");
    let r = get(&server.url("/api/workers/resources")).body;
    assert!(r["workers"][0]["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(r["gpu"]["available"], false);

    let status = get(&server.url("/api/workers/status")).body;
    for key in [
        "total",
        "available",
        "busy",
        "tasks_completed",
        "tasks_failed",
        "avg_task_ms",
        "by_type",
        "queues",
        "resources",
        "config",
        "workers",
    ] {
        assert!(status.get(key).is_some(), "status lacks {key}");
    }
    let stats = get(&server.url("/api/workers/stats")).body;
    assert_eq!(stats["tasks_completed"], 1);
    assert_eq!(stats["by_type"]["text_processing"]["tasks_completed"], 1);
}

#[test]
fn scale_and_restart_over_http() {
    let server = Server::start(TEXT_ONLY, &[]);
    let up = post(&server.url("/api/workers/scale/text_processing"), r#"{"action":"up","count":2}"#, None);
    assert_eq!((up.status, up.body["workers"].as_u64()), (200, Some(2)), "{up:?}");
    let ready =
        wait_for(Duration::from_secs(10), || get(&server.url("/api/workers/stats")).body["available"] == 2);
    assert!(ready);
    let workers = get(&server.url("/api/workers/status")).body["workers"].clone();
    let id = workers[0]["id"].as_str().unwrap().to_string();
    let r = post(&server.url(&format!("/api/workers/restart/{id}")), "", None);
    assert_eq!(r.status, 200, "{r:?}");
    let replaced = wait_for(Duration::from_secs(10), || {
        let w = get(&server.url("/api/workers/status")).body["workers"].clone();
        w.as_array().unwrap().len() == 2
            && w.as_array().unwrap().iter().all(|w| w["id"] != id.as_str() && w["state"] == "idle")
    });
    assert!(replaced, "worker {id} was not replaced");
}

#[test]
fn ctrl_c_to_the_foreground_group_drains_without_killing_workers() {
    let mut server = Server::start_grouped(SLOW, &[]);
    let url = server.url("/api/workers/execute");
    let waiter = std::thread::spawn(move || {
        post(&url, r#"{"type":"text_processing","data":{"op":"sleep","ms":600}}"#, None)
    });
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)));
    // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    assert_eq!(server.signal_group_and_wait("-INT", Duration::from_secs(20)), Some(0));
    let answer = waiter.join().unwrap();
    assert_eq!((answer.status, answer.body["status"].as_str()), (200, Some("completed")), "{answer:?}");
}

#[test]
fn sigterm_lets_a_running_request_finish_then_exits_0() {
    let mut server = Server::start(SLOW, &[]);
    let url = server.url("/api/workers/execute");
    let waiter = std::thread::spawn(move || {
        post(&url, r#"{"type":"text_processing","data":{"op":"sleep","ms":600}}"#, None)
    });
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)));
    assert_eq!(server.signal_and_wait("-TERM", Duration::from_secs(20)), Some(0));
    let answer = waiter.join().unwrap();
    assert_eq!((answer.status, answer.body["status"].as_str()), (200, Some("completed")), "{answer:?}");
    assert!(server.log().iter().any(|l| l.contains("1 finished in the grace period")), "{:#?}", server.log());
}
