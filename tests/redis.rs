//! Shared queues in Redis, end to end: real `workerpool` servers sharing a real
//! `redis-server`, with real kills, signals and restarts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::Commands;
use serde_json::{Value, json};
use support::redis_server::RedisServer;
use support::server::*;

/// Two workers of `text_processing`; short leases and heartbeats so a lost instance is
/// noticed within seconds.
fn config(extra_redis: &str) -> String {
    format!(
        "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 300\n\n\
         [types.text_processing]\nmax_concurrent = 2\nqueue_size = 1000\nretry_delay_ms = 50\n\n\
         [redis]\nlease_ms = 1200\nheartbeat_ms = 200\n{extra_redis}"
    )
}

fn instance(redis: &RedisServer, id: &str, extra_redis: &str) -> Server {
    Server::start(&config(extra_redis), &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", id)])
}

/// Queues a task without waiting; returns its id.
fn enqueue(server: &Server, data: Value, options: Value) -> String {
    let mut options = options;
    options["wait"] = json!(false);
    let reply = execute(server, json!({"type": "text_processing", "data": data, "options": options}));
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    reply.body["id"].as_str().expect("an id").to_string()
}

fn record(server: &Server, id: &str) -> Value {
    get(&server.url(&format!("/api/tasks/{id}"))).body
}

/// An API front end that runs nothing (`consume = false`) and an instance named `name`
/// that runs the tasks.
fn front_and(redis: &RedisServer, name: &str) -> (Server, Server) {
    (instance(redis, "front", "consume = false\n"), instance(redis, name, ""))
}

/// Waits (at most 20 s) until a task runs somewhere.
fn wait_running(server: &Server, id: &str) {
    assert!(
        wait_for(Duration::from_secs(20), || record(server, id)["status"] == "running"),
        "{id} never ran"
    );
}

/// Waits until every task has ended; returns their records.
fn wait_all(server: &Server, ids: &[String], limit: Duration) -> BTreeMap<String, Value> {
    let mut done = BTreeMap::new();
    let ended = wait_for(limit, || {
        for id in ids {
            if !done.contains_key(id) {
                let r = record(server, id);
                if !matches!(r["status"].as_str(), Some("queued" | "running") | None) {
                    done.insert(id.clone(), r);
                }
            }
        }
        done.len() == ids.len()
    });
    assert!(ended, "{} of {} tasks ended", done.len(), ids.len());
    done
}

fn sleep_task(ms: u64) -> Value {
    json!({"op": "sleep", "ms": ms})
}

/// The fields of a task's hash in Redis.
fn hash(redis: &RedisServer, id: &str) -> BTreeMap<String, String> {
    redis.conn().hgetall(format!("{{workerpool}}:t:{id}")).expect("HGETALL")
}

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
fn a_killed_instance_loses_its_tasks_to_the_other_and_each_completes_once() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let mut a = instance(&redis, "a", "");
    let b = instance(&redis, "b", "");
    let ids: Vec<String> = (0..30).map(|_| enqueue(&b, sleep_task(150), json!({"max_retries": 2}))).collect();
    // Kill `a` while it holds tasks.
    let holding = wait_for(Duration::from_secs(20), || {
        ids.iter().any(|id| {
            let h = hash(&redis, id);
            h.get("status").map(String::as_str) == Some("running")
                && h.get("instance").map(String::as_str) == Some("a")
        })
    });
    assert!(holding, "instance a never took a task");
    a.kill();
    let records = wait_all(&b, &ids, Duration::from_secs(60));
    let rescued =
        records.values().filter(|r| r["error"].as_str().is_some_and(|e| e.contains("lease expired"))).count();
    assert!(rescued >= 1, "no task was taken over from the killed instance: {records:#?}");
    for r in records.values() {
        assert_eq!(r["status"], "completed", "{r}");
    }
    // Count the final records in Redis itself: one per task, each completed, nothing left
    // queued or leased.
    let mut conn = redis.conn();
    let keys: Vec<String> = conn.keys("{workerpool}:t:*").expect("KEYS");
    assert_eq!(keys.len(), ids.len());
    for key in &keys {
        let status: String = conn.hget(key, "status").expect("status");
        assert_eq!(status, "completed", "{key}");
    }
    assert_eq!(conn.zcard::<_, usize>("{workerpool}:leases").unwrap(), 0);
    assert_eq!(conn.zcard::<_, usize>("{workerpool}:q:text_processing").unwrap(), 0);
}

#[test]
fn sigterm_requeues_a_running_task_at_the_head_without_spending_an_attempt() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let mut a = instance(&redis, "a", "");
    let long = enqueue(&a, sleep_task(5_000), json!({}));
    let second = enqueue(&a, sleep_task(5_000), json!({}));
    assert!(wait_for(Duration::from_secs(20), || hash(&redis, &second).get("status").map(String::as_str)
        == Some("running")));
    let third = enqueue(&a, sleep_task(10), json!({}));
    assert_eq!(a.signal_and_wait("-TERM", Duration::from_secs(15)), Some(0));
    for id in [&long, &second] {
        let h = hash(&redis, id);
        assert_eq!(h.get("status").map(String::as_str), Some("queued"), "{h:?}");
        assert_eq!(h.get("attempts").map(String::as_str), Some("0"), "{h:?}");
    }
    // Both go before the task that was queued behind them all along.
    let order: Vec<String> = redis.conn().zrange("{workerpool}:q:text_processing", 0, -1).unwrap();
    let position = |id: &str| order.iter().position(|m| m.ends_with(id));
    assert!(position(&long) < position(&third) && position(&second) < position(&third), "{order:?}");
    // Another instance finishes them, on their first counted attempt.
    let b = instance(&redis, "b", "");
    let records = wait_all(&b, &[long, second, third], Duration::from_secs(30));
    for r in records.values() {
        assert_eq!(
            (r["status"].as_str(), r["attempts"].as_u64(), r["instance_id"].as_str()),
            (Some("completed"), Some(1), Some("b")),
            "{r}"
        );
    }
}

#[test]
fn redis_restarted_mid_run_loses_nothing_and_health_follows_it() {
    let Some(mut redis) = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]) else {
        return;
    };
    let a = instance(&redis, "a", "");
    let ids: Vec<String> = (0..8).map(|_| enqueue(&a, sleep_task(150), json!({}))).collect();
    assert!(wait_for(Duration::from_secs(20), || get(&a.url("/api/workers/stats")).body["total"] == 2));
    redis.kill();
    assert!(
        wait_for(Duration::from_secs(10), || get(&a.url("/api/workers/health")).status == 503),
        "health stayed up without Redis"
    );
    let health = get(&a.url("/api/workers/health")).body;
    assert!(health["reasons"].to_string().contains("Redis unavailable"), "{health}");
    let refused = execute(&a, json!({"type": "text_processing", "data": {"text": "x"}}));
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert!(refused.body["error"].as_str().unwrap_or_default().contains("Redis"), "{:?}", refused.body);
    // The instance keeps its workers through the outage.
    assert_eq!(get(&a.url("/api/workers/stats")).body["total"], 2);
    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    let records = wait_all(&a, &ids, Duration::from_secs(60));
    for r in records.values() {
        assert_eq!(r["status"], "completed", "{r}");
    }
    assert!(wait_for(Duration::from_secs(10), || get(&a.url("/api/workers/health")).status == 200));
    let reply = execute(&a, json!({"type": "text_processing", "data": {"text": "back again"}}));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
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
fn a_slow_lease_holder_cannot_record_a_second_completion() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let a = instance(&redis, "a", "");
    let id = enqueue(&a, sleep_task(1_500), json!({}));
    wait_running(&a, &id);
    // `a` stalls (its worker keeps running): its lease runs out and `b` takes the task.
    a.signal("-STOP");
    let b = instance(&redis, "b", "");
    let taken = wait_for(Duration::from_secs(20), || {
        hash(&redis, &id).get("instance").map(String::as_str) == Some("b")
    });
    a.signal("-CONT");
    assert!(taken, "b never took the task over");
    let r = &wait_all(&b, std::slice::from_ref(&id), Duration::from_secs(30))[&id];
    assert_eq!(
        (r["status"].as_str(), r["instance_id"].as_str(), r["attempts"].as_u64()),
        (Some("completed"), Some("b"), Some(2)),
        "{r}"
    );
    // `a` woke up with the first attempt's result: dropped and counted, not recorded.
    assert!(
        wait_for(
            Duration::from_secs(10),
            || get(&a.url("/api/workers/status")).body["redis"]["stale_results"] == 1
        ),
        "the stale result was not counted"
    );
    let metrics =
        agent().get(&a.url("/metrics")).call().expect("metrics").into_body().read_to_string().expect("text");
    assert!(metrics.contains("workerpool_stale_results_total 1"), "{metrics}");
    assert_eq!(record(&b, &id)["instance_id"], "b");
}

#[test]
fn a_password_protected_redis_works_and_a_wrong_password_is_refused_clearly() {
    let Some(redis) = RedisServer::start(&["--requirepass", "s3cret"]) else { return };
    let port = redis.port.to_string();
    let env = |pw: &'static str| {
        vec![
            ("REDIS_HOST", "127.0.0.1".to_string()),
            ("REDIS_PORT", port.clone()),
            ("REDIS_PASSWORD", pw.to_string()),
        ]
    };
    let good: Vec<(&str, String)> = env("s3cret");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Server::start(&config(""), &good);
    let reply = execute(&a, json!({"type": "text_processing", "data": {"text": "secret words"}}));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let bad: Vec<(&str, String)> = env("wrong");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b = Server::start(&config(""), &bad);
    let refused = execute(&b, json!({"type": "text_processing", "data": {"text": "x"}}));
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert!(wait_for(Duration::from_secs(10), || get(&b.url("/api/workers/health")).status == 503));
}

#[test]
fn the_python_example_queues_a_task_with_redis_py_and_reads_its_result() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let python = std::env::var("WORKERPOOL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_redis_py =
        std::process::Command::new(&python).args(["-c", "import redis"]).status().is_ok_and(|s| s.success());
    if !has_redis_py {
        assert!(
            std::env::var("CI").is_err(),
            "{python} cannot import redis; scripts/test.sh installs redis-py"
        );
        eprintln!("skipped: {python} cannot import redis (scripts/test.sh installs redis-py)");
        return;
    }
    let _a = instance(&redis, "a", "");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/redis_producer.py");
    let out = std::process::Command::new(&python).arg(script).arg(redis.url()).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(printed["status"], "completed", "{printed}");
    assert_eq!(printed["attempts"], 1, "{printed}");
    assert_eq!(printed["instance"], "a", "{printed}");
    assert_eq!(printed["result"]["words"], 6, "{printed}");
}

#[test]
fn rediss_with_a_private_certificate_authority_works() {
    let Some(redis) = RedisServer::start_tls(false) else { return };
    let ca = redis.tls_ca().expect("a TLS server").display().to_string();
    let a = instance(&redis, "a", &format!("tls_ca_file = {ca:?}\n"));
    let reply = execute(&a, json!({"type": "text_processing", "data": {"text": "over tls"}}));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["instance_id"], "a");
    assert_eq!(
        hash(&redis, reply.body["id"].as_str().unwrap()).get("status").map(String::as_str),
        Some("completed")
    );
    // Without the authority the server's certificate is not trusted: refused, and said so.
    let b = instance(&redis, "b", "");
    let refused = execute(&b, json!({"type": "text_processing", "data": {"text": "x"}}));
    assert_eq!(refused.status, 503, "{:?}", refused.body);
}

#[test]
fn rediss_with_client_certificates_works_and_an_instance_without_one_is_refused() {
    let Some(redis) = RedisServer::start_tls(true) else { return };
    let ca = redis.tls_ca().expect("a TLS server").display().to_string();
    let (cert, key) = redis.tls_client().expect("a client certificate");
    let files = format!(
        "tls_ca_file = {ca:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let a = instance(&redis, "a", &files);
    let reply = execute(&a, json!({"type": "text_processing", "data": {"text": "mutual tls"}}));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["result"]["words"], 2, "{:?}", reply.body);
    assert_eq!(
        hash(&redis, reply.body["id"].as_str().unwrap()).get("status").map(String::as_str),
        Some("completed")
    );
    // The authority alone is not enough for a server that wants to know its clients.
    let b = instance(&redis, "b", &format!("tls_ca_file = {ca:?}\n"));
    let refused = execute(&b, json!({"type": "text_processing", "data": {"text": "x"}}));
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(get(&b.url("/api/workers/health")).status, 503);
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
fn an_instance_cut_off_past_its_lease_takes_back_a_task_nobody_took() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    // `front` runs nothing but reaps; `a` is the only instance that runs tasks.
    let (front, a) = front_and(&redis, "a");
    let id = enqueue(&front, sleep_task(2_500), json!({}));
    wait_running(&front, &id);
    a.signal("-STOP");
    // `front` reaps the lease: the task is queued again, and nobody can take it.
    let reaped = wait_for(Duration::from_secs(10), || record(&front, &id)["status"] == "queued");
    a.signal("-CONT");
    assert!(reaped, "the lease was not reaped");
    // `a` comes back and holds the task again: its renewal takes it back (attempt 1), or its
    // feeder takes it first (attempt 2, the lost lease counted) and the run already going on
    // carries that attempt. Either way it is not cancelled, and it runs once.
    let r = &wait_all(&front, std::slice::from_ref(&id), Duration::from_secs(30))[&id];
    assert_eq!((r["status"].as_str(), r["instance_id"].as_str()), (Some("completed"), Some("a")), "{r}");
    assert!(matches!(r["attempts"].as_u64(), Some(1 | 2)), "{r}");
    assert_eq!(r["result"]["slept_ms"], 2_500, "{r}");
    let stats = get(&a.url("/api/workers/stats")).body;
    assert_eq!(
        (stats["tasks_completed"].as_u64(), stats["tasks_failed"].as_u64()),
        (Some(1), Some(0)),
        "{stats}"
    );
    assert_eq!(redis.conn().zcard::<_, usize>("{workerpool}:q:text_processing").unwrap(), 0);
}

#[test]
fn leases_survive_a_redis_outage_longer_than_the_lease() {
    let Some(mut redis) = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]) else {
        return;
    };
    let (front, a) = front_and(&redis, "a");
    let id = enqueue(&front, sleep_task(3_000), json!({"max_retries": 0}));
    wait_running(&front, &id);
    redis.kill();
    // Down for twice the lease: nobody could renew, so nobody may reap it when Redis returns.
    std::thread::sleep(Duration::from_millis(2_400));
    redis.restart();
    let r = &wait_all(&front, std::slice::from_ref(&id), Duration::from_secs(30))[&id];
    assert_eq!(
        (r["status"].as_str(), r["instance_id"].as_str(), r["attempts"].as_u64()),
        (Some("completed"), Some("a"), Some(1)),
        "{r}"
    );
    drop(a);
}

#[test]
fn an_instance_started_before_redis_waits_for_it_then_works() {
    let Some(mut redis) = RedisServer::start(&[]) else { return };
    redis.kill();
    let a = instance(&redis, "a", "");
    assert!(wait_for(Duration::from_secs(10), || get(&a.url("/api/workers/health")).status == 503));
    assert_eq!(execute(&a, json!({"type": "text_processing", "data": {"text": "x"}})).status, 503);
    redis.restart();
    assert!(
        wait_for(Duration::from_secs(15), || get(&a.url("/api/workers/health")).status == 200),
        "the instance did not connect once Redis came up"
    );
    let reply = execute(&a, json!({"type": "text_processing", "data": {"text": "late start"}}));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[test]
fn an_instance_restarted_under_its_name_requeues_what_it_held_without_spending_attempts() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    // A long lease: only the restart itself can give the task back this soon.
    let long_lease = config("").replace("lease_ms = 1200", "lease_ms = 60000");
    let start = || Server::start(&long_lease, &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", "a")]);
    let mut a = start();
    let id = enqueue(&a, sleep_task(2_000), json!({"max_retries": 0}));
    wait_running(&a, &id);
    a.kill();
    // Started again under the same name, with a task it can finish quickly this time.
    let again = start();
    let quick = enqueue(&again, sleep_task(10), json!({}));
    let records = wait_all(&again, &[quick, id.clone()], Duration::from_secs(60));
    let r = &records[&id];
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("completed"), Some(1)), "{r}");
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
