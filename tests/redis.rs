//! Shared queues in Redis, end to end: real `workerpool` servers sharing a real
//! `redis-server`. The tasks of a burst, their priorities, delays, retries, cancels and
//! requeues, events and progress hold across instances. Failures are in
//! `redis_failover.rs`, connecting (passwords, TLS) in `redis_connection.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::Commands;
use serde_json::{Value, json};
use support::redis_server::RedisServer;
use support::server::*;
use support::shared_queue::*;

#[test]
fn two_instances_share_a_burst_and_each_result_is_read_anywhere() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let a = instance(&redis, "a", "");
    let b = instance(&redis, "b", "");
    let ids: Vec<String> =
        (0..40).map(|i| enqueue(if i % 2 == 0 { &a } else { &b }, sleep_task(40), json!({}))).collect();
    let records = wait_all(&b, &ids, Duration::from_secs(60));
    let mut by_instance = BTreeMap::<String, usize>::new();
    for r in records.values() {
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
        *by_instance.entry(r["instance_id"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    assert_eq!(by_instance.keys().cloned().collect::<Vec<_>>(), ["a", "b"], "{by_instance:?}");
    // A waited execute on one instance returns the result whichever instance ran it.
    let reply = execute(&a, json!({"type": "text_processing", "data": {"text": "one two three"}}));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["result"]["words"], 3);
    // Both instances are listed as live.
    let status = get(&a.url("/api/workers/status")).body;
    let live: BTreeSet<&str> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["instance_id"].as_str())
        .collect();
    assert_eq!(live, BTreeSet::from(["a", "b"]), "{status}");
    assert_eq!(status["redis"]["status"], "up");
}

#[test]
fn priority_and_delay_hold_across_instances() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let front = instance(&redis, "front", "consume = false\n");
    let worker = Server::start(
        &config("").replace("max_concurrent = 2", "max_concurrent = 1"),
        &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", "worker")],
    );
    let blocker = enqueue(&front, sleep_task(600), json!({}));
    wait_running(&front, &blocker);
    let low = enqueue(&front, sleep_task(10), json!({"priority": 0}));
    let delayed = enqueue(&front, sleep_task(10), json!({"priority": 100, "delay": 1_500}));
    let high = enqueue(&front, sleep_task(10), json!({"priority": 10}));
    let mid = enqueue(&front, sleep_task(10), json!({"priority": 5}));
    let queue = get(&front.url("/api/workers/queues")).body;
    assert_eq!(queue["queues"]["text_processing"]["length"], 4, "{queue}");
    // A page spans the ready tasks in order, then the delayed one.
    let page = get(&front.url("/api/workers/queues/text_processing?offset=1&limit=3")).body;
    let listed: Vec<(&str, &str)> = page["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| (t["id"].as_str().unwrap_or_default(), t["state"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        listed,
        [(mid.as_str(), "ready"), (low.as_str(), "ready"), (delayed.as_str(), "waiting")],
        "{page}"
    );
    assert_eq!((page["offset"].as_u64(), page["length"].as_u64()), (Some(1), Some(4)), "{page}");
    let records = wait_all(
        &front,
        &[blocker, low.clone(), delayed.clone(), high.clone(), mid.clone()],
        Duration::from_secs(30),
    );
    let started = |id: &str| records[id]["started_at"].as_u64().expect("started_at");
    assert!(started(&high) < started(&mid) && started(&mid) < started(&low), "{records:#?}");
    let d = &records[&delayed];
    assert!(started(&delayed) >= d["created_at"].as_u64().unwrap() + 1_500, "{d}");
    for r in records.values() {
        assert_eq!(r["instance_id"], "worker", "{r}");
    }
    drop(worker);
}

#[test]
fn cancel_works_whichever_instance_runs_the_task() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let (front, worker) = front_and(&redis, "worker");
    let running = enqueue(&front, sleep_task(20_000), json!({}));
    wait_running(&front, &running);
    assert!(wait_for(Duration::from_secs(5), || text_busy(&worker)));
    let reply = delete(&front.url(&format!("/api/tasks/{running}")), None);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "cancelled");
    // The running worker is stopped on the other instance.
    assert!(
        wait_for(Duration::from_secs(10), || get(&worker.url("/api/workers/stats")).body["busy"] == 0),
        "the cancelled task kept its worker busy"
    );
    assert_eq!(record(&worker, &running)["status"], "cancelled");
    // A waiting one leaves its queue.
    let later = enqueue(&front, sleep_task(10), json!({"delay": 60_000}));
    assert_eq!(delete(&front.url(&format!("/api/tasks/{later}")), None).body["status"], "cancelled");
    assert_eq!(redis.conn().zcard::<_, usize>("{workerpool}:delayed:text_processing").unwrap(), 0);
    assert_eq!(delete(&worker.url(&format!("/api/tasks/{later}")), None).status, 409);
}

#[test]
fn retries_keep_their_attempt_count_across_instances() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let a = instance(&redis, "a", "");
    let b = instance(&redis, "b", "");
    let ids: Vec<String> = (0..6)
        .map(|_| enqueue(&a, json!({"op": "crash", "until_attempt": 2}), json!({"max_retries": 3})))
        .collect();
    let records = wait_all(&b, &ids, Duration::from_secs(60));
    for r in records.values() {
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(r["attempts"], 3, "{r}");
        assert_eq!(r["result"]["recovered_on_attempt"], 3, "{r}");
    }
    // Out of attempts: dead-lettered in Redis, listed and re-queued from any instance.
    let dead = enqueue(&a, json!({"op": "fail", "retryable": true}), json!({"max_retries": 1}));
    let r = &wait_all(&b, std::slice::from_ref(&dead), Duration::from_secs(30))[&dead];
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("dead"), Some(2)), "{r}");
    let letters = get(&b.url("/api/workers/dead-letters/text_processing")).body;
    assert_eq!(letters["tasks"][0]["id"], dead.as_str(), "{letters}");
    let requeued = post(&a.url(&format!("/api/tasks/{dead}/requeue")), "", None);
    assert_eq!(requeued.status, 202, "{:?}", requeued.body);
}

#[test]
fn a_requeue_of_a_task_that_is_not_dead_lettered_answers_409_as_in_process() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let (front, worker) = front_and(&redis, "worker");
    let done = enqueue(&front, sleep_task(10), json!({}));
    wait_all(&front, std::slice::from_ref(&done), Duration::from_secs(30));
    let running = enqueue(&front, sleep_task(20_000), json!({}));
    wait_running(&front, &running);
    let queued = enqueue(&front, sleep_task(10), json!({"delay": 60_000}));
    for (id, status) in [(&queued, "queued"), (&running, "running"), (&done, "completed")] {
        assert_eq!(record(&front, id)["status"], status);
        let reply = post(&front.url(&format!("/api/tasks/{id}/requeue")), "", None);
        assert_eq!(reply.status, 409, "{status}: {:?}", reply.body);
        let error = reply.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("is not in the dead-letter list of text_processing"), "{status}: {error}");
    }
    // Nothing moved: the running task still runs, the delayed one still waits.
    assert_eq!(record(&worker, &running)["status"], "running");
    assert_eq!(redis.conn().zcard::<_, usize>("{workerpool}:delayed:text_processing").unwrap(), 1);
    assert_eq!(post(&front.url("/api/tasks/nope/requeue"), "", None).status, 404);
}

#[test]
fn events_and_progress_reach_the_contract_channels_and_the_record() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let (tx, rx) = std::sync::mpsc::channel::<(String, Value)>();
    let mut conn = redis.conn();
    std::thread::spawn(move || {
        let mut sub = conn.as_pubsub();
        sub.subscribe(&["worker_pool_events", "task_progress"]).expect("SUBSCRIBE");
        sub.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        while let Ok(msg) = sub.get_message() {
            let payload: String = msg.get_payload().unwrap_or_default();
            let value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            if tx.send((msg.get_channel_name().to_string(), value)).is_err() {
                return;
            }
        }
    });
    let (front, a) = front_and(&redis, "a");
    // Instances publish while someone listens; they look at each heartbeat (200 ms here).
    std::thread::sleep(Duration::from_millis(600));
    let reply = execute(
        &front,
        json!({"type": "text_processing", "data": {"op": "progress", "steps": 3, "step_ms": 50}}),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.body["id"].as_str().expect("id").to_string();
    assert_eq!(reply.body["progress"]["progress"], 100, "{:?}", reply.body);
    let mut progress = Vec::new();
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !events.iter().any(|e: &Value| e["event"] == "task_completed")
        && std::time::Instant::now() < deadline
    {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((channel, v)) if channel == "task_progress" && v["job_id"] == id.as_str() => progress.push(v),
            Ok((channel, v)) if channel == "worker_pool_events" && v["data"]["task_id"] == id.as_str() => {
                events.push(v)
            }
            _ => {}
        }
    }
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(names.contains(&"task_assigned") && names.contains(&"task_completed"), "{events:#?}");
    for e in &events {
        assert_eq!(e["instance_id"], "a", "{e}");
        assert!(e["timestamp"].as_u64().is_some(), "{e}");
    }
    assert!(progress.len() >= 3, "{progress:#?}");
    let last = progress.last().expect("progress");
    assert_eq!(last["progress"], 100, "{last}");
    assert!(last["worker_id"].as_str().is_some_and(|w| w.starts_with("text_processing-")), "{last}");
    assert!(last.get("stage").is_some(), "{last}");
    drop(a);
}

#[test]
fn a_task_stream_on_a_busy_instance_follows_a_task_that_runs_elsewhere() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    // `busy` runs only type `busy`, whose progress events keep its event bus lively; the
    // watched task is `text_processing`, which only `b` runs.
    let busy_config = "[pool]\nmax_workers = 1\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 300\n\n\
                       [types.busy]\nmax_concurrent = 1\n\n[redis]\nlease_ms = 1200\nheartbeat_ms = 200\n";
    let busy = Server::start(busy_config, &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", "busy")]);
    let b = instance(&redis, "b", "");
    let chatter = execute(
        &busy,
        json!({"type": "busy", "data": {"op": "progress", "steps": 300, "step_ms": 50}, "options": {"wait": false}}),
    );
    assert_eq!(chatter.status, 202, "{:?}", chatter.body);
    let chatter = chatter.body["id"].as_str().expect("id").to_string();
    assert!(
        wait_for(Duration::from_secs(20), || record(&busy, &chatter)["status"] == "running"),
        "the busy task never ran"
    );
    let id = enqueue(&b, json!({"op": "progress", "steps": 4, "step_ms": 500}), json!({}));
    // The stream of `busy`, which runs nothing of this task and hears its own events all the
    // time, reports the task's progress and its end from the shared record.
    let (head, mut reader) = sse(&busy, &format!("/api/tasks/{id}/events"), Duration::from_secs(8));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let events = read_events(&mut reader, 50, |name, _| name == "result");
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"status"), "{events:?}");
    assert_eq!(names.last(), Some(&"result"), "the stream did not end: {events:?}");
    let (_, result) = events.last().expect("result");
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["instance_id"], "b", "{result}");
    let progress: Vec<&Value> = events.iter().filter(|(n, _)| n == "progress").map(|(_, v)| v).collect();
    assert!(!progress.is_empty(), "no progress from the other instance: {events:?}");
    for p in &progress {
        assert_eq!(p["id"], id.as_str(), "{p}");
        assert!(p["progress"].as_u64().is_some_and(|n| n <= 100), "{p}");
        assert!(p["worker_id"].as_str().is_some_and(|w| w.starts_with("text_processing-")), "{p}");
    }
    // Each value once, in order.
    let values: Vec<u64> = progress.iter().filter_map(|p| p["progress"].as_u64()).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    // The busy instance's own task was running all along.
    assert_eq!(record(&busy, &chatter)["status"], "running");
}

#[tokio::test]
async fn a_task_handle_follows_the_progress_of_a_task_that_runs_elsewhere() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let b = instance(&redis, "b", "");
    // An embedded front end that runs nothing: the task runs on `b`.
    let mut t = workerpool_actors::TypeConfig::defaults_for("text_processing");
    t.command = Some(vec![env!("CARGO_BIN_EXE_workerpool").to_string(), "demo-worker".to_string()]);
    let mut cfg = workerpool_actors::PoolConfig {
        max_workers: 2,
        min_workers: 0,
        types: [("text_processing".to_string(), t)].into_iter().collect(),
        ..workerpool_actors::PoolConfig::default()
    };
    cfg.redis.url = Some(redis.url().into());
    cfg.redis.instance_id = "front".into();
    cfg.redis.consume = false;
    cfg.redis.lease_ms = 1200;
    cfg.redis.heartbeat_ms = 200;
    let front = workerpool_actors::PoolBuilder::new(cfg).start().expect("the front end starts");
    let request = workerpool_actors::TaskRequest::new(
        "text_processing",
        json!({"op": "progress", "steps": 4, "step_ms": 500}),
    );
    let mut handle = front.submit(request).await.expect("queued");
    let mut seen = Vec::new();
    while let Some(p) = tokio::time::timeout(Duration::from_secs(10), handle.progress())
        .await
        .expect("progress or the end in time")
    {
        seen.push(p.progress);
    }
    let record =
        tokio::time::timeout(Duration::from_secs(10), handle.wait()).await.expect("in time").expect("record");
    assert_eq!(record.status, workerpool_actors::TaskStatus::Completed, "{record:?}");
    assert_eq!(record.instance_id.as_deref(), Some("b"), "{record:?}");
    assert!(!seen.is_empty(), "no progress from the other instance");
    assert!(seen.windows(2).all(|w| w[0] < w[1]) && seen.iter().all(|p| *p <= 100), "{seen:?}");
    front.shutdown().await;
    drop(b);
}

#[test]
fn a_task_stream_outlasts_an_attempt_that_failed_here_and_is_retried() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let a = instance(&redis, "a", "");
    // The first attempt fails (retryably) on `a` itself, after the stream has opened (the
    // delay); Redis queues the retry.
    let id = enqueue(&a, json!({"op": "fail", "until_attempt": 1}), json!({"delay": 700}));
    let (head, mut reader) = sse(&a, &format!("/api/tasks/{id}/events"), Duration::from_secs(10));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let events = read_events(&mut reader, 50, |name, _| name == "result");
    let (name, last) = events.last().expect("events");
    assert_eq!(name, "result", "{events:?}");
    assert_eq!(last["status"], "completed", "{events:?}");
    assert_eq!(last["attempts"], 2, "{last}");
    assert_eq!(last["result"]["recovered_on_attempt"], 2, "{last}");
}

/// libfaketime, to run an instance whose clock is wrong; `None` (skip) on a developer
/// machine without it, a failure under CI (`scripts/test.sh` installs it).
fn faketime_library() -> Option<String> {
    let found = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| format!("/usr/lib/{arch}/faketime/libfaketimeMT.so.1"))
        .find(|path| std::path::Path::new(path).exists());
    if found.is_none() {
        support::redis_server::missing_tool("libfaketime is not installed; scripts/test.sh installs it");
    }
    found
}

#[test]
fn instances_whose_clocks_differ_agree_on_delays_and_submission_order() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let Some(faketime) = faketime_library() else { return };
    // `b` runs the tasks, one at a time; `behind` only queues them, with a clock a minute slow.
    let one_at_a_time = config("").replace("max_concurrent = 2", "max_concurrent = 1");
    let b = Server::start(&one_at_a_time, &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", "b")]);
    let behind = Server::start(
        &config("consume = false\n"),
        &[
            ("REDIS_URL", &redis.url()),
            ("INSTANCE_ID", "behind"),
            ("LD_PRELOAD", &faketime),
            ("FAKETIME", "-60s"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let blocker = enqueue(&b, sleep_task(800), json!({}));
    wait_running(&b, &blocker);
    // Queued in this order, they run in this order, whatever the queuing instances' clocks.
    let first = enqueue(&b, sleep_task(200), json!({}));
    let second = enqueue(&behind, sleep_task(200), json!({}));
    let records = wait_all(&b, &[blocker, first.clone(), second.clone()], Duration::from_secs(20));
    let ms =
        |id: &String, field: &str| records[id][field].as_u64().unwrap_or_else(|| panic!("{field} of {id}"));
    assert!(ms(&second, "created_at") + 50_000 < ms(&first, "created_at"), "the slow clock did not apply");
    assert!(ms(&first, "started_at") < ms(&second, "started_at"), "{records:#?}");
    // A delay asked for by the slow instance is a delay all the same.
    let asked = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .expect("the time");
    let delayed = enqueue(&behind, sleep_task(10), json!({"delay": 1000}));
    let records = wait_all(&b, std::slice::from_ref(&delayed), Duration::from_secs(20));
    let started = records[&delayed]["started_at"].as_u64().expect("started_at");
    assert!(started >= asked + 900, "started {} ms after it was asked for", started.saturating_sub(asked));
}
