//! `/healthz` and `/readyz` over real HTTP against the real binary: open without the token,
//! HEAD too; readiness lost while shutting down and while Redis is down; liveness kept while
//! tasks fail.

mod support;

use std::time::Duration;

use serde_json::json;
use support::redis_server::RedisServer;
use support::server::*;

/// `text_processing` that never retries, with a grace period long enough to probe in.
const NO_RETRIES: &str = "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 4000\n\n[types.text_processing]\nmax_concurrent = 2\nqueue_size = 50\nmax_retries = 0\ncpu_threshold = 100\n";

fn head(url: &str) -> u16 {
    agent().head(url).call().expect("HEAD").status().as_u16()
}

/// The `workerpool_redis_up` line of `/metrics`.
fn redis_up(server: &Server) -> String {
    let text = get(&server.url("/metrics")).body.as_str().unwrap_or_default().to_string();
    text.lines().filter(|l| l.starts_with("workerpool_redis_up")).collect()
}

#[test]
fn probes_answer_without_the_token_and_to_head() {
    let env = [("WORKERPOOL_API_TOKEN", "s3cret"), ("WORKERPOOL_PROTECT_READS", "1")];
    let server = Server::start(NO_RETRIES, &env);
    let live = get(&server.url("/healthz"));
    assert_eq!((live.status, live.body["status"].as_str()), (200, Some("ok")), "{live:?}");
    let ready = get(&server.url("/readyz"));
    assert_eq!((ready.status, ready.body["status"].as_str()), (200, Some("ready")), "{ready:?}");
    assert_eq!(ready.body["reasons"], json!([]));
    assert_eq!((head(&server.url("/healthz")), head(&server.url("/readyz"))), (200, 200));
    // Only the exact paths are open.
    for path in ["/healthz/", "/readyz/x", "/api/workers/health"] {
        assert_eq!(get(&server.url(path)).status, 401, "{path}");
    }
}

#[test]
fn liveness_holds_while_tasks_fail() {
    let server = Server::start(NO_RETRIES, &[]);
    for i in 0..12 {
        let body = json!({"type": "text_processing", "data": {"op": "fail", "retryable": false, "i": i}});
        assert_eq!(execute(&server, body).status, 502);
    }
    // The pool's own health sees the failures; the probes do not restart or drain it for them.
    let health = get(&server.url("/api/workers/health"));
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(get(&server.url("/healthz")).status, 200);
    assert_eq!(get(&server.url("/readyz")).status, 200);
}

#[test]
fn readiness_is_lost_during_a_graceful_shutdown() {
    let mut server = Server::start(NO_RETRIES, &[]);
    let queued = execute(
        &server,
        json!({"type": "text_processing", "data": {"op": "sleep", "ms": 3000}, "options": {"wait": false}}),
    );
    assert_eq!(queued.status, 202, "{queued:?}");
    assert!(wait_for(Duration::from_secs(10), || text_busy(&server)), "the task never ran");
    server.signal("-TERM");
    let mut last = None;
    let lost = wait_for(Duration::from_secs(3), || {
        let r = get(&server.url("/readyz"));
        let lost = r.status == 503;
        last = Some(r);
        lost
    });
    assert!(lost, "still ready while shutting down: {last:?}");
    let body = &last.expect("a reply").body;
    assert_eq!(body["status"], "unavailable");
    assert!(body["reasons"].to_string().contains("shutting down"), "{body}");
    assert_eq!(server.signal_and_wait("-TERM", Duration::from_secs(15)), Some(0));
}

#[test]
fn readiness_is_lost_while_redis_is_down_and_comes_back() {
    let Some(mut redis) = RedisServer::start(&[]) else { return };
    let config =
        format!("{NO_RETRIES}\n[redis]\nlease_ms = 10000\nheartbeat_ms = 200\ncommand_timeout_ms = 500\n");
    let server = Server::start(&config, &[("REDIS_URL", &redis.url())]);
    assert!(wait_for(Duration::from_secs(10), || get(&server.url("/readyz")).status == 200));
    assert!(redis_up(&server).contains("workerpool_redis_up 1"), "{}", redis_up(&server));
    redis.kill();
    let mut last = None;
    let lost = wait_for(Duration::from_secs(10), || {
        let r = get(&server.url("/readyz"));
        let lost = r.status == 503;
        last = Some(r);
        lost
    });
    assert!(lost, "still ready with Redis down: {last:?}");
    let body = &last.expect("a reply").body;
    assert!(body["reasons"].to_string().contains("Redis unavailable"), "{body}");
    // The process still lives.
    assert_eq!(get(&server.url("/healthz")).status, 200);
    assert!(redis_up(&server).contains("workerpool_redis_up 0"), "{}", redis_up(&server));
    redis.restart();
    assert!(
        wait_for(Duration::from_secs(15), || get(&server.url("/readyz")).status == 200),
        "not ready again after Redis came back"
    );
}
