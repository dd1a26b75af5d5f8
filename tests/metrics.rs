//! `/metrics` over real HTTP against the real binary: the series exist at 0 before any task,
//! the task counters sum to the tasks that ran (each once, retries apart), a worker's series
//! go when it exits, and HTTP requests are counted by route template.

mod support;

use std::time::Duration;

use serde_json::json;
use support::server::*;

/// One retry, quick; a fast resource sample so worker series appear soon.
const CONFIG: &str = "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 2000\nresource_monitor_interval_ms = 100\n\n[types.text_processing]\nmax_concurrent = 2\nqueue_size = 50\nmax_retries = 1\nretry_delay_ms = 20\ncpu_threshold = 100\n";

fn scrape(server: &Server) -> String {
    let r = get(&server.url("/metrics"));
    assert_eq!(r.status, 200, "{r:?}");
    r.body.as_str().expect("text").to_string()
}

/// The value of the series named exactly `series` (name and labels as exposed), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sum of every series of `name` whose labels include `with`.
fn sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn every_series_of_a_type_is_there_at_zero_before_any_task() {
    let own = format!("{CONFIG}\n[types.content_analysis]\nduration_buckets_s = [0.5, 5.0]\n");
    let server = Server::start(&own, &[]);
    let text = scrape(&server);
    for outcome in ["completed", "failed", "timed_out", "cancelled", "dead"] {
        let series = format!(r#"workerpool_tasks_total{{outcome="{outcome}",type="text_processing"}}"#);
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    for reason in ["error", "crashed", "timeout", "memory_limit_exceeded", "lease_expired"] {
        let series = format!(r#"workerpool_task_retries_total{{reason="{reason}",type="text_processing"}}"#);
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    for series in [
        r#"workerpool_worker_restarts_total{reason="crashed",type="text_processing"}"#,
        r#"workerpool_tasks_enqueued_total{type="text_processing"}"#,
        r#"workerpool_dead_letters{type="text_processing"}"#,
        r#"workerpool_queue_oldest_wait_seconds{type="text_processing"}"#,
        r#"workerpool_scale_events_total{direction="up",type="text_processing"}"#,
    ] {
        assert_eq!(value(&text, series), Some(0.0), "{series}");
    }
    assert!(!text.contains(r#"outcome="retried""#), "retries have their own counter");
    // A type with buckets of its own, in the same family.
    let own = |le: &str| {
        value(
            &text,
            &format!(r#"workerpool_task_duration_seconds_bucket{{type="content_analysis",le="{le}"}}"#),
        )
    };
    assert_eq!((own("0.5"), own("5"), own("+Inf"), own("1800")), (Some(0.0), Some(0.0), Some(0.0), None));
    let info = text.lines().find(|l| l.starts_with("workerpool_build_info{")).expect("build info");
    assert!(info.contains(r#"version="0.1.0""#) && info.ends_with(" 1"), "{info}");
    assert!(value(&text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    assert!(value(&text, "process_start_time_seconds").is_some_and(|v| v > 1.0e9));
    // Only with Redis.
    assert!(!text.contains("workerpool_redis_up"));
}

#[test]
fn the_task_counters_sum_to_the_tasks_that_ran() {
    let server = Server::start(CONFIG, &[]);
    let run = |data: serde_json::Value| execute(&server, json!({"type": "text_processing", "data": data}));
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(run(json!({"op": "echo", "i": i})).body["status"].clone());
    }
    for _ in 0..3 {
        statuses.push(run(json!({"op": "fail", "retryable": false})).body["status"].clone());
    }
    for _ in 0..2 {
        statuses.push(run(json!({"op": "crash", "until_attempt": 1})).body["status"].clone());
    }
    for _ in 0..2 {
        statuses.push(run(json!({"op": "crash"})).body["status"].clone());
    }
    assert_eq!(statuses.iter().filter(|s| *s == "completed").count(), 7, "{statuses:?}");
    let text = scrape(&server);
    let t = r#"type="text_processing""#;
    assert_eq!(sum(&text, "workerpool_tasks_total", t), 12.0, "each task once");
    let of = |outcome: &str| value(&text, &format!(r#"workerpool_tasks_total{{outcome="{outcome}",{t}}}"#));
    assert_eq!((of("completed"), of("failed"), of("dead")), (Some(7.0), Some(3.0), Some(2.0)));
    assert_eq!(value(&text, &format!(r#"workerpool_task_retries_total{{reason="crashed",{t}}}"#)), Some(4.0));
    assert_eq!(sum(&text, "workerpool_task_retries_total", t), 4.0);
    assert_eq!(value(&text, &format!("workerpool_tasks_enqueued_total{{{t}}}")), Some(12.0));
    assert_eq!(value(&text, &format!("workerpool_dead_letters{{{t}}}")), Some(2.0));
    // Completed attempts are timed; waits are per attempt (12 tasks, 4 retries).
    assert_eq!(value(&text, &format!("workerpool_task_duration_seconds_count{{{t}}}")), Some(7.0));
    assert_eq!(value(&text, &format!("workerpool_task_wait_seconds_count{{{t}}}")), Some(16.0));
    assert!(text.contains(r#"workerpool_task_duration_seconds_bucket{type="text_processing",le="1800"}"#));
}

#[test]
fn a_workers_series_go_when_it_exits() {
    let server = Server::start(CONFIG, &[]);
    assert_eq!(execute(&server, json!({"type": "text_processing", "data": {"op": "echo"}})).status, 200);
    let mut worker = None;
    let seen = wait_for(Duration::from_secs(10), || {
        let text = scrape(&server);
        worker = text
            .lines()
            .find(|l| l.starts_with(r#"workerpool_worker_memory_bytes{type="text_processing",worker=""#))
            .and_then(|l| l.split("worker=\"").nth(1)?.split('"').next().map(str::to_string));
        worker.is_some()
    });
    assert!(seen, "no worker series by {{type,worker}}");
    let worker = worker.expect("a worker");
    let text = scrape(&server);
    assert!(
        text.contains(&format!(
            r#"workerpool_worker_cpu_percent{{type="text_processing",worker="{worker}"}}"#
        ))
    );
    let restarted = post(&server.url(&format!("/api/workers/restart/{worker}")), "", None);
    assert_eq!(restarted.status, 200, "{restarted:?}");
    let label = format!(r#"worker="{worker}""#);
    assert!(
        wait_for(Duration::from_secs(10), || !scrape(&server).contains(&label)),
        "the series of {worker} outlived it"
    );
}

#[test]
fn http_requests_are_counted_by_route_template() {
    let server = Server::start(CONFIG, &[]);
    let id = "7d3f1c2a-0000-4000-8000-0123456789ab";
    assert_eq!(get(&server.url(&format!("/api/tasks/{id}"))).status, 404);
    assert_eq!(get(&server.url("/no/such/route-5f2e")).status, 404);
    assert_eq!(get(&server.url("/healthz")).status, 200);
    let text = scrape(&server);
    assert_eq!(
        value(&text, r#"workerpool_http_requests_total{route="/api/tasks/{id}",status="404"}"#),
        Some(1.0)
    );
    assert_eq!(value(&text, r#"workerpool_http_requests_total{route="unmatched",status="404"}"#), Some(1.0));
    assert_eq!(value(&text, r#"workerpool_http_requests_total{route="/healthz",status="200"}"#), Some(1.0));
    assert_eq!(
        value(&text, r#"workerpool_http_request_duration_seconds_count{route="/api/tasks/{id}"}"#),
        Some(1.0)
    );
    assert!(!text.contains(id) && !text.contains("5f2e"), "a raw path became a label");
}
