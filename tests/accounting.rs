//! What an attempt of a real worker process used, from real samples: `GET /api/tasks/{id}`
//! shows its CPU time and peak memory, and `/metrics` the accounting series. Real server,
//! real demo-worker processes, the resource monitor sampling every 50 ms.

mod support;

use serde_json::{Value, json};
use support::server::*;

/// One warm demo worker (so it is sampled idle before its first task) and quick samples.
const SAMPLED: &str = "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 2000\nresource_monitor_interval_ms = 50\n\n[types.text_processing]\nmax_concurrent = 1\nmin_workers = 1\nqueue_size = 4\nmax_retries = 0\n";

const MB: u64 = 1 << 20;

/// Runs one task and returns its record as `GET /api/tasks/{id}` shows it.
fn run(server: &Server, data: Value) -> Value {
    let reply = execute(server, json!({"type": "text_processing", "data": data}));
    assert_eq!(reply.status, 200, "{reply:?}");
    let id = reply.body["id"].as_str().expect("an id").to_string();
    let record = get(&server.url(&format!("/api/tasks/{id}")));
    assert_eq!(record.status, 200, "{record:?}");
    record.body
}

fn figure(record: &Value, name: &str) -> u64 {
    record["resources"][name].as_u64().unwrap_or_else(|| panic!("no {name}: {record}"))
}

#[test]
fn a_process_tasks_record_carries_what_it_used_from_real_samples() {
    let server = Server::start(SAMPLED, &[]);

    // A task that keeps a core busy for 1.5 s: its CPU time comes from the samples that
    // bracket it, at most its wall time (one thread), and a good part of it.
    let spin = run(&server, json!({"op": "spin", "ms": 1500}));
    let (wall, cpu) = (figure(&spin, "wall_ms"), figure(&spin, "cpu_ms"));
    assert!(wall >= 1500, "{spin}");
    assert!(cpu >= 300 && cpu <= wall + 50, "cpu {cpu} ms of wall {wall} ms: {spin}");
    assert!(figure(&spin, "peak_rss_bytes") > 0, "{spin}");
    assert_eq!(spin["resources"]["gpus"], json!([]), "{spin}");

    // A sleeping task's CPU time is next to nothing, and its peak that of an idle worker;
    // one that holds 96 MiB for a second peaks at least that high. (The worker may keep
    // memory it freed, for its allocator: a later task's peak would show it.)
    let sleep = run(&server, json!({"op": "sleep", "ms": 800}));
    assert!(figure(&sleep, "cpu_ms") < 200, "{sleep}");
    assert!(figure(&sleep, "peak_rss_bytes") < 96 * MB, "{sleep}");
    let alloc = run(&server, json!({"op": "alloc", "mb": 96, "hold_ms": 1000}));
    assert!(figure(&alloc, "peak_rss_bytes") >= 96 * MB, "{alloc}");

    let metrics = get(&server.url("/metrics"));
    let text = metrics.body.as_str().expect("text");
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"workerpool_task_peak_rss_bytes_count{type="text_processing"} "#))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(count, Some(3.0), "every attempt had a known peak");
    assert!(
        text.lines().any(|l| l == r#"workerpool_task_gpu_seconds_total{type="text_processing"} 0"#),
        "no GPUs held, no GPU seconds"
    );
}

/// With Redis: an instance that runs the task (sampled every 50 ms, one warm worker) and a
/// front end that runs nothing.
fn redis_config(extra_redis: &str) -> String {
    format!(
        "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 300\nresource_monitor_interval_ms = 50\n\n\
         [types.text_processing]\nmax_concurrent = 1\nmin_workers = 1\nqueue_size = 10\nmax_retries = 0\n\n\
         [redis]\nlease_ms = 5000\nheartbeat_ms = 200\n{extra_redis}"
    )
}

#[test]
fn with_redis_the_figures_are_in_the_tasks_hash_and_read_from_another_instance() {
    use redis::Commands;
    let Some(redis) = support::redis_server::RedisServer::start(&[]) else { return };
    let env = |id: &'static str| [("REDIS_URL", redis.url()), ("INSTANCE_ID", id.to_string())];
    let start = |extra: &str, id: &'static str| {
        let env = env(id);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start(&redis_config(extra), &env)
    };
    let front = start("consume = false\n", "front");
    let _runner = start("", "runner");
    let record = run(&front, json!({"op": "spin", "ms": 1000}));
    assert_eq!(
        (record["status"].as_str(), record["instance_id"].as_str()),
        (Some("completed"), Some("runner"))
    );
    let id = record["id"].as_str().expect("an id");
    let stored: String =
        redis.conn().hget(format!("{{workerpool}}:t:{id}"), "resources").expect("a resources field");
    let stored: Value = serde_json::from_str(&stored).expect("JSON");
    assert_eq!(stored, record["resources"], "the front end reads what the runner wrote");
    assert!(figure(&record, "wall_ms") >= 1000, "{record}");
    assert!(figure(&record, "cpu_ms") >= 100, "{record}");
    assert!(figure(&record, "peak_rss_bytes") > 0, "{record}");
}
