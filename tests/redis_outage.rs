//! Redis outages, end to end: real `workerpool` servers on a real `redis-server` that is
//! stalled with SIGSTOP (it keeps its connections, the kernel still accepts new ones, and
//! nothing is answered) or stopped at SIGTERM of an instance.
//!
//! What a client may rely on: `/health` never waits for Redis; `execute` refuses at once
//! while Redis is known to be down, and a 503 always means the task is not queued; a write
//! whose reply was lost is read back once Redis answers again, or named `unknown` with its
//! id; and no task runs twice.

mod support;

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};
use support::redis_server::RedisServer;
use support::server::*;

/// A bound that a call blocked on Redis cannot meet (its commands time out later than this
/// only when something waits for them), and that a loaded test machine still meets.
const QUICK: Duration = Duration::from_secs(1);

/// `text_processing` with two workers; Redis commands time out after `timeout_ms`, and a
/// write whose reply is lost is settled within `outcome_ms`.
fn config(timeout_ms: u64, outcome_ms: u64) -> String {
    format!(
        "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 300\n\n\
         [types.text_processing]\nmax_concurrent = 2\nqueue_size = 1000\ncpu_threshold = 100\n\n\
         [redis]\nlease_ms = 10000\nheartbeat_ms = 200\ncommand_timeout_ms = {timeout_ms}\n\
         outcome_wait_ms = {outcome_ms}\n"
    )
}

fn instance(redis: &RedisServer, id: &str, timeout_ms: u64, outcome_ms: u64) -> Server {
    Server::start(&config(timeout_ms, outcome_ms), &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", id)])
}

/// One `execute` as its client saw it.
#[derive(Debug)]
struct Answer {
    tag: String,
    status: u16,
    body: Value,
    took: Duration,
}

/// Sends, on a thread of its own, an execute of a short task whose data carries `tag`, so the
/// task can be found in Redis whatever the answer said.
fn fire(server: &Server, tag: &str, wait: bool) -> JoinHandle<Answer> {
    let url = server.url("/api/workers/execute");
    let tag = tag.to_string();
    std::thread::spawn(move || {
        let body = json!({
            "type": "text_processing",
            "data": {"op": "sleep", "ms": 20, "tag": tag},
            "options": {"wait": wait},
        });
        let start = Instant::now();
        let reply = post(&url, &body.to_string(), None);
        Answer { tag, status: reply.status, body: reply.body, took: start.elapsed() }
    })
}

fn join(calls: Vec<JoinHandle<Answer>>) -> Vec<Answer> {
    calls.into_iter().map(|c| c.join().expect("the calling thread")).collect()
}

/// Every task in Redis by the tag in its data: `(id, status, attempts)` of each.
fn tasks_by_tag(redis: &RedisServer) -> BTreeMap<String, Vec<(String, String, String)>> {
    let mut conn = redis.conn();
    let keys: Vec<String> = conn.keys("{workerpool}:t:*").expect("KEYS");
    let mut by_tag = BTreeMap::<String, Vec<_>>::new();
    for key in keys {
        let h: BTreeMap<String, String> = conn.hgetall(&key).expect("HGETALL");
        let data: Value = h.get("data").and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
        if let Some(tag) = data["tag"].as_str() {
            let field = |k: &str| h.get(k).cloned().unwrap_or_default();
            by_tag.entry(tag.to_string()).or_default().push((
                field("id"),
                field("status"),
                field("attempts"),
            ));
        }
    }
    by_tag
}

/// Checks the answers against Redis, once every tagged task there has ended: a 503 left no
/// task behind; any other answer names a task that is there; and every task there was
/// queued once and completed on its first attempt.
fn check_against_redis(redis: &RedisServer, answers: &[Answer]) {
    let mut tasks = BTreeMap::new();
    let settled = wait_for(Duration::from_secs(30), || {
        tasks = tasks_by_tag(redis);
        tasks.values().flatten().all(|(_, status, _)| status != "queued" && status != "running")
    });
    assert!(settled, "tasks still waiting or running: {tasks:#?}");
    for a in answers {
        let found = tasks.get(&a.tag).map(Vec::as_slice).unwrap_or_default();
        if a.status == 503 {
            assert!(found.is_empty(), "answered 503 but queued: {a:?} {found:?}");
            continue;
        }
        assert_eq!(found.len(), 1, "{a:?} {found:?}");
        assert_eq!(a.body["id"].as_str(), Some(found[0].0.as_str()), "{a:?}");
    }
    for (tag, found) in &tasks {
        assert_eq!(found.len(), 1, "{tag} was queued more than once: {found:?}");
        let (_, status, attempts) = &found[0];
        assert_eq!((status.as_str(), attempts.as_str()), ("completed", "1"), "{tag}: {found:?}");
    }
}

/// What an answer during an outage may be: refused (503, not queued), settled (202 queued or
/// the waited record), or unknown (504 with the id).
fn assert_honest(a: &Answer) {
    match a.status {
        503 => assert!(a.body["error"].as_str().unwrap_or_default().contains("Redis"), "{a:?}"),
        504 => {
            assert_eq!(a.body["status"], "unknown", "{a:?}");
            assert!(a.body["id"].as_str().is_some(), "{a:?}");
            assert!(a.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{a:?}");
        }
        202 | 200 => assert!(a.body["id"].as_str().is_some(), "{a:?}"),
        _ => panic!("unexpected answer during the outage: {a:?}"),
    }
}

fn timed_health(server: &Server) -> (Reply, Duration) {
    let start = Instant::now();
    let reply = get(&server.url("/api/workers/health"));
    (reply, start.elapsed())
}

#[test]
fn a_redis_stall_keeps_health_quick_refuses_executes_at_once_and_recovers_by_itself() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let a = instance(&redis, "a", 500, 1000);
    let warm = execute(&a, json!({"type": "text_processing", "data": {"text": "warm up"}}));
    assert_eq!(warm.status, 200, "{:?}", warm.body);

    let stall = redis.stall();
    let stalled_at = Instant::now();
    // Calls on their way when Redis stops answering: their writes are sent.
    let early: Vec<_> = (0..4).map(|i| fire(&a, &format!("early-{i}"), i % 2 == 0)).collect();
    // Health never waits for Redis: quick before the stall is noticed, 503 with the reason after.
    let mut took = Vec::new();
    let noticed = wait_for(Duration::from_secs(5), || {
        let (reply, t) = timed_health(&a);
        took.push(t);
        reply.status == 503
    });
    assert!(noticed, "health never said Redis was down");
    for _ in 0..5 {
        let (reply, t) = timed_health(&a);
        took.push(t);
        assert_eq!(reply.status, 503, "{:?}", reply.body);
        assert!(reply.body["reasons"].to_string().contains("Redis unavailable"), "{:?}", reply.body);
    }
    assert!(took.iter().all(|t| *t < QUICK), "health waited: {took:?}");
    // Redis is known to be down: execute refuses at once, and the task is not queued.
    let mut answers = join((0..5).map(|i| fire(&a, &format!("refused-{i}"), i % 2 == 0)).collect());
    for answer in &answers {
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.took < QUICK, "{answer:?}");
        assert_honest(answer);
    }
    // The stall lasts at least 3 s; health is as quick at its end.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(stalled_at.elapsed()));
    let (reply, t) = timed_health(&a);
    assert!((reply.status, t < QUICK) == (503, true), "{t:?} {:?}", reply.body);
    stall.resume();

    assert!(
        wait_for(Duration::from_secs(10), || get(&a.url("/api/workers/health")).status == 200),
        "the instance did not recover by itself"
    );
    let back = execute(&a, json!({"type": "text_processing", "data": {"text": "back again"}}));
    assert_eq!(back.status, 200, "{:?}", back.body);
    let early = join(early);
    for answer in &early {
        assert_honest(answer);
    }
    answers.extend(early);
    check_against_redis(&redis, &answers);
}

#[test]
fn a_write_whose_reply_was_lost_is_read_back_when_redis_answers_or_named_unknown() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    // All time out their commands after 800 ms; `patient` and `waiter` wait up to 8 s for
    // Redis to answer again, `hasty` 300 ms. Each instance gets one call at first: calls made
    // while a write is on its way go in the next batch, which a known outage refuses.
    let patient = instance(&redis, "patient", 800, 8000);
    let waiter = instance(&redis, "waiter", 800, 8000);
    let hasty = instance(&redis, "hasty", 800, 300);
    for server in [&patient, &waiter, &hasty] {
        let warm = execute(server, json!({"type": "text_processing", "data": {"text": "warm up"}}));
        assert_eq!(warm.status, 200, "{:?}", warm.body);
    }

    let stall = redis.stall();
    let stalled_at = Instant::now();
    // Sent at once: no command can have timed out yet, so each write goes out to Redis.
    let waiting = vec![fire(&patient, "patient-queued", false), fire(&waiter, "waiter-waited", true)];
    let unknown = join(vec![fire(&hasty, "hasty-queued", false)]);
    let stalled_for = stalled_at.elapsed();
    for answer in &unknown {
        assert_eq!(answer.status, 504, "{answer:?}");
        assert_honest(answer);
    }
    // Meanwhile Redis is known to be down there: refused at once, not queued.
    let refused = join(vec![fire(&hasty, "hasty-refused", true)]);
    assert_eq!(refused[0].status, 503, "{refused:?}");
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(stalled_at.elapsed()));
    stall.resume();
    assert!(stalled_for < Duration::from_millis(2500), "hasty answered after the stall: {unknown:?}");

    // Read back once Redis answered again: queued, and the waited one with its result.
    let settled = join(waiting);
    let by_tag: BTreeMap<&str, &Answer> = settled.iter().map(|a| (a.tag.as_str(), a)).collect();
    let queued = by_tag["patient-queued"];
    assert_eq!((queued.status, queued.body["status"].as_str()), (202, Some("queued")), "{queued:?}");
    let waited = by_tag["waiter-waited"];
    assert_eq!((waited.status, waited.body["status"].as_str()), (200, Some("completed")), "{waited:?}");
    for answer in &settled {
        assert!(answer.took >= Duration::from_millis(2000), "answered before Redis did: {answer:?}");
    }
    // An unknown answer's id can be looked up: that write did reach Redis.
    for answer in &unknown {
        let id = answer.body["id"].as_str().expect("id");
        let ended = wait_for(Duration::from_secs(20), || {
            get(&hasty.url(&format!("/api/tasks/{id}"))).body["status"] == "completed"
        });
        assert!(ended, "{answer:?}");
    }
    let mut answers = settled;
    answers.extend(unknown);
    answers.extend(refused);
    check_against_redis(&redis, &answers);
}

#[test]
fn tasks_requeued_at_sigterm_are_announced_as_requeued_not_failed() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let mut conn = redis.conn();
    std::thread::spawn(move || {
        let mut sub = conn.as_pubsub();
        sub.subscribe("worker_pool_events").expect("SUBSCRIBE");
        sub.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        while let Ok(msg) = sub.get_message() {
            let payload: String = msg.get_payload().unwrap_or_default();
            if tx.send(serde_json::from_str(&payload).unwrap_or(Value::Null)).is_err() {
                return;
            }
        }
    });
    let mut a = instance(&redis, "a", 1000, 3000);
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let reply = execute(
                &a,
                json!({"type": "text_processing", "data": {"op": "sleep", "ms": 5000}, "options": {"wait": false}}),
            );
            assert_eq!(reply.status, 202, "{:?}", reply.body);
            reply.body["id"].as_str().expect("id").to_string()
        })
        .collect();
    let mut events = Vec::new();
    let about = |e: &Value, id: &str| e["data"]["task_id"] == id;
    // Both run, and the instance publishes (someone listens): their task_assigned came.
    let assigned = wait_for(Duration::from_secs(20), || {
        events.extend(rx.try_iter());
        ids.iter().all(|id| events.iter().any(|e| e["event"] == "task_assigned" && about(e, id)))
    });
    assert!(assigned, "{events:#?}");
    assert_eq!(a.signal_and_wait("-TERM", Duration::from_secs(15)), Some(0));
    let announced = wait_for(Duration::from_secs(5), || {
        events.extend(rx.try_iter());
        ids.iter().all(|id| events.iter().any(|e| e["event"] == "task_requeued" && about(e, id)))
    });
    assert!(announced, "{events:#?}");
    for id in &ids {
        let mine: Vec<&Value> = events.iter().filter(|e| about(e, id)).collect();
        assert!(!mine.iter().any(|e| e["event"] == "task_failed"), "{mine:#?}");
        let requeued = mine.iter().find(|e| e["event"] == "task_requeued").expect("task_requeued");
        assert_eq!(requeued["data"]["reason"], "shutdown", "{requeued}");
        assert_eq!(requeued["data"]["task_type"], "text_processing", "{requeued}");
        assert_eq!(requeued["instance_id"], "a", "{requeued}");
        let h: BTreeMap<String, String> =
            redis.conn().hgetall(format!("{{workerpool}}:t:{id}")).expect("HGETALL");
        assert_eq!(
            (h.get("status").map(String::as_str), h.get("attempts").map(String::as_str)),
            (Some("queued"), Some("0")),
            "{h:?}"
        );
    }
}

#[test]
fn an_instance_whose_workers_cannot_start_leaves_the_shared_tasks_to_one_that_can() {
    let Some(redis) = RedisServer::start(&[]) else { return };
    let worker = support::misbehaving::WORKER;
    let broken_cfg = format!(
        "[pool]\nmax_workers = 2\nmin_workers = 0\n\n[types.text_processing]\nmax_concurrent = 2\n\
         queue_size = 1000\ncpu_threshold = 100\nstart_retry_delay_ms = 100\nmax_start_failures = 2\n\
         command = [\"python3\", \"{worker}\", \"crashloop\"]\n\n[redis]\nlease_ms = 10000\nheartbeat_ms = 200\n"
    );
    let broken = Server::start(&broken_cfg, &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", "broken")]);
    // The broken instance takes the first tasks before any of its workers has failed.
    let ids: Vec<String> = (0..6)
        .map(|i| {
            let body = json!({"type": "text_processing", "data": {"text": format!("task {i}")}, "options": {"wait": false}});
            let reply = execute(&broken, body);
            assert_eq!(reply.status, 202, "{reply:?}");
            reply.body["id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let gave_up = wait_for(Duration::from_secs(20), || {
        get(&broken.url("/api/workers/types")).body["types"]["text_processing"]["start_failures"]["gave_up"]
            == true
    });
    assert!(gave_up, "{:#?}", broken.log());
    let good = instance(&redis, "good", 1000, 3000);
    let done = wait_for(Duration::from_secs(30), || {
        ids.iter().all(|id| get(&good.url(&format!("/api/tasks/{id}"))).body["status"] == "completed")
    });
    assert!(
        done,
        "{:#?}",
        ids.iter().map(|id| get(&good.url(&format!("/api/tasks/{id}"))).body).collect::<Vec<_>>()
    );
    for id in &ids {
        let record = get(&good.url(&format!("/api/tasks/{id}"))).body;
        assert_eq!(record["instance_id"], "good", "{record}");
        assert_eq!(record["attempts"], 1, "no attempt spent where no worker started: {record}");
    }
}
