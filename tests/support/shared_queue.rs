//! Instances of `workerpool` sharing one real `redis-server`, and what the Redis tests read
//! of them: task records through any instance, and task hashes in Redis itself.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Commands;
use serde_json::{Value, json};

use super::redis_server::RedisServer;
use super::server::{Server, execute, get, wait_for};

/// Two workers of `text_processing`; short leases and heartbeats so a lost instance is
/// noticed within seconds. The CPU threshold is off: the tests count on both workers
/// starting, which a busy machine would otherwise hold back.
pub fn config(extra_redis: &str) -> String {
    format!(
        "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 300\n\n\
         [types.text_processing]\nmax_concurrent = 2\nqueue_size = 1000\nretry_delay_ms = 50\ncpu_threshold = 100\n\n\
         [redis]\nlease_ms = 1200\nheartbeat_ms = 200\n{extra_redis}"
    )
}

/// An instance named `id` on [`config`], on `redis`.
pub fn instance(redis: &RedisServer, id: &str, extra_redis: &str) -> Server {
    Server::start(&config(extra_redis), &[("REDIS_URL", &redis.url()), ("INSTANCE_ID", id)])
}

/// Queues a task without waiting; returns its id.
pub fn enqueue(server: &Server, data: Value, options: Value) -> String {
    let mut options = options;
    options["wait"] = json!(false);
    let reply = execute(server, json!({"type": "text_processing", "data": data, "options": options}));
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    reply.body["id"].as_str().expect("an id").to_string()
}

pub fn record(server: &Server, id: &str) -> Value {
    get(&server.url(&format!("/api/tasks/{id}"))).body
}

/// An API front end that runs nothing (`consume = false`) and an instance named `name`
/// that runs the tasks.
pub fn front_and(redis: &RedisServer, name: &str) -> (Server, Server) {
    (instance(redis, "front", "consume = false\n"), instance(redis, name, ""))
}

/// Waits (at most 20 s) until a task runs somewhere.
pub fn wait_running(server: &Server, id: &str) {
    assert!(
        wait_for(Duration::from_secs(20), || record(server, id)["status"] == "running"),
        "{id} never ran"
    );
}

/// Waits until every task has ended; returns their records.
pub fn wait_all(server: &Server, ids: &[String], limit: Duration) -> BTreeMap<String, Value> {
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

pub fn sleep_task(ms: u64) -> Value {
    json!({"op": "sleep", "ms": ms})
}

/// The fields of a task's hash in Redis.
pub fn hash(redis: &RedisServer, id: &str) -> BTreeMap<String, String> {
    redis.conn().hgetall(format!("{{workerpool}}:t:{id}")).expect("HGETALL")
}
