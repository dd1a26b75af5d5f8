//! Reaping leases that ran out, end to end: real `workerpool` servers and a real
//! `redis-server`, with tasks whose instance is gone planted in Redis as that instance left
//! them (running, leased, the lease long over).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Commands;
use serde_json::Value;
use support::redis_server::RedisServer;
use support::server::*;
use support::shared_queue::instance;

const LEASE_ERROR: &str = "lease expired: instance ghost stopped renewing it";

fn task_key(id: &str) -> String {
    format!("{{workerpool}}:t:{id}")
}

/// Plants, in one transaction, tasks as instance `ghost` left them when it died running their
/// attempt number `attempt`: `running`, leased to it, the lease over long ago. Returns their
/// ids, in queue order.
fn plant_lost(redis: &RedisServer, n: usize, attempt: u32, max_retries: u32) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (i, id) in ids.iter().enumerate() {
        let fields = [
            ("id", id.clone()),
            ("type", "text_processing".into()),
            ("data", r#"{"op":"sleep","ms":10}"#.into()),
            ("priority", "0".into()),
            ("max_retries", max_retries.to_string()),
            ("timeout", "60000".into()),
            ("attempts", attempt.to_string()),
            ("status", "running".into()),
            ("created_at", "1700000000000".into()),
            ("started_at", "1700000000001".into()),
            ("member", format!("1700000000000{i:06}:{id}")),
            ("watcher", "*".into()),
            ("instance", "ghost".into()),
        ];
        pipe.hset_multiple(task_key(id), &fields).ignore();
        pipe.zadd("{workerpool}:leases", id, 1).ignore();
    }
    let () = pipe.query(&mut redis.conn()).expect("plant the lost tasks");
    ids
}

fn record(server: &Server, id: &str) -> Value {
    get(&server.url(&format!("/api/tasks/{id}"))).body
}

fn hash(redis: &RedisServer, id: &str) -> BTreeMap<String, String> {
    redis.conn().hgetall(task_key(id)).expect("HGETALL")
}

fn count(redis: &RedisServer, key: &str) -> usize {
    let mut conn = redis.conn();
    match key {
        k if k.contains(":dead:") => conn.llen(k).expect("LLEN"),
        k => conn.zcard(k).expect("ZCARD"),
    }
}

fn stale_results(redis: &RedisServer) -> u64 {
    let n: Option<u64> = redis.conn().hget("{workerpool}:stats", "stale_results").expect("HGET");
    n.unwrap_or(0)
}

#[test]
fn two_instances_reaping_the_same_expired_leases_retry_each_task_exactly_once() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let a = instance(&redis, "a", "");
    let _b = instance(&redis, "b", "");
    // Both are up and reaping every heartbeat when the lost leases appear.
    assert!(wait_for(Duration::from_secs(10), || {
        let live: usize = redis.conn().zcard("{workerpool}:instances").expect("ZCARD");
        live == 2
    }));
    let ids = plant_lost(&redis, 20, 1, 2);
    let mut done = BTreeMap::new();
    let ended = wait_for(Duration::from_secs(30), || {
        for id in &ids {
            let r = record(&a, id);
            if r["status"] == "completed" {
                done.insert(id.clone(), r);
            }
        }
        done.len() == ids.len()
    });
    assert!(ended, "{} of {} lost tasks completed", done.len(), ids.len());
    for (id, r) in &done {
        // The lost attempt counted once, and the task ran once more.
        assert_eq!(r["attempts"], 2, "{r}");
        assert_eq!(r["error"], LEASE_ERROR, "{r}");
        assert!(matches!(r["instance_id"].as_str(), Some("a" | "b")), "{r}");
        assert!(!hash(&redis, id).contains_key("reaper"), "{id}: {:?}", hash(&redis, id));
    }
    // Had both reapers adopted a lease, the second verdict would have been dropped as stale
    // or queued the task a second time.
    assert_eq!(stale_results(&redis), 0);
    for key in
        ["{workerpool}:leases", "{workerpool}:q:text_processing", "{workerpool}:delayed:text_processing"]
    {
        assert_eq!(count(&redis, key), 0, "{key}");
    }
    assert_eq!(count(&redis, "{workerpool}:dead:text_processing"), 0);
}

#[test]
fn a_lost_task_goes_back_to_the_head_of_its_queue_with_its_attempt_spent() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    // Nobody runs tasks: what the reap queued stays where it put it.
    let front = instance(&redis, "front", "consume = false\n");
    let waiting: Vec<String> = (0..2)
        .map(|_| {
            let body = serde_json::json!({"type": "text_processing", "data": {"op": "sleep", "ms": 10},
                "options": {"wait": false}});
            let reply = execute(&front, body);
            assert_eq!(reply.status, 202, "{:?}", reply.body);
            reply.body["id"].as_str().expect("an id").to_string()
        })
        .collect();
    let lost = plant_lost(&redis, 1, 1, 3).remove(0);
    assert!(
        wait_for(Duration::from_secs(10), || record(&front, &lost)["status"] == "queued"),
        "the lost lease was not reaped: {}",
        record(&front, &lost)
    );
    // The lost attempt is a retry in the reaper's metrics.
    let metrics = get(&front.url("/metrics")).body.as_str().unwrap_or_default().to_string();
    let series = r#"workerpool_task_retries_total{reason="lease_expired",type="text_processing"} 1"#;
    assert!(metrics.lines().any(|l| l == series), "{series} not in the metrics");
    let h = hash(&redis, &lost);
    assert_eq!(h.get("attempts").map(String::as_str), Some("1"), "{h:?}");
    assert_eq!(h.get("error").map(String::as_str), Some(LEASE_ERROR), "{h:?}");
    assert_eq!(h.get("instance").map(String::as_str), Some("ghost"), "{h:?}");
    assert!(!h.contains_key("reaper"), "{h:?}");
    // Queued again at once, ahead of the tasks that waited, not delayed.
    let queue: Vec<String> = redis.conn().zrange("{workerpool}:q:text_processing", 0, -1).expect("ZRANGE");
    assert_eq!(queue.len(), 3, "{queue:?}");
    assert!(queue[0].starts_with('!') && queue[0].ends_with(&lost), "{queue:?}");
    assert!(waiting.iter().all(|id| queue[1..].iter().any(|m| m.ends_with(id.as_str()))), "{queue:?}");
    assert_eq!(count(&redis, "{workerpool}:delayed:text_processing"), 0);
    assert_eq!(count(&redis, "{workerpool}:leases"), 0);
}

#[test]
fn a_lost_last_attempt_is_dead_lettered_with_the_lease_error_and_announced() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let mut listener = redis.conn();
    let mut done = listener.as_pubsub();
    done.subscribe("{workerpool}:done").expect("SUBSCRIBE");
    done.set_read_timeout(Some(Duration::from_millis(500))).expect("read timeout");
    let a = instance(&redis, "a", "");
    let id = plant_lost(&redis, 1, 2, 1).remove(0);
    let mut announced = false;
    let start = std::time::Instant::now();
    while !announced && start.elapsed() < Duration::from_secs(20) {
        if let Ok(msg) = done.get_message() {
            announced = msg.get_payload::<String>().is_ok_and(|p| p == id);
        }
    }
    assert!(announced, "the dead-lettered task was not announced on the done channel");
    let r = record(&a, &id);
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("dead"), Some(2)), "{r}");
    assert_eq!(r["error"], LEASE_ERROR, "{r}");
    let dead: Vec<String> = redis.conn().lrange("{workerpool}:dead:text_processing", 0, -1).expect("LRANGE");
    assert_eq!(dead, std::slice::from_ref(&id));
    assert_eq!(count(&redis, "{workerpool}:leases"), 0);
    assert!(!hash(&redis, &id).contains_key("reaper"));
    // A dead-lettered task can be queued again, and then runs.
    assert_eq!(post(&a.url(&format!("/api/tasks/{id}/requeue")), "", None).status, 202);
    assert!(
        wait_for(Duration::from_secs(20), || record(&a, &id)["status"] == "completed"),
        "{}",
        record(&a, &id)
    );
}
