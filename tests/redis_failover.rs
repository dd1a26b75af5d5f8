//! Shared queues in Redis when something fails, end to end: real `workerpool` servers and a
//! real `redis-server`, with real kills, stops (SIGSTOP), SIGTERM and Redis restarts. Nothing
//! is lost and nothing runs twice.

mod support;

use std::time::Duration;

use redis::Commands;
use serde_json::json;
use support::redis_server::RedisServer;
use support::server::*;
use support::shared_queue::*;

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
