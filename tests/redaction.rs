//! Secrets never leave the process, end to end: a real server on a password-protected
//! `redis-server`, with an API token and debug logging, has every read route, the event
//! streams, error answers, the CLI and a Redis outage exercised; then every answer, log line,
//! CLI output, published event and key in Redis is searched for the planted password and token.

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::bounded::{run_bounded, text};
use support::redis_server::RedisServer;
use support::server::*;

/// The planted Redis password; long and odd enough to never appear by chance.
const PASSWORD: &str = "pw-planted-7f3a9c51e2";
/// The planted API token.
const TOKEN: &str = "tok-planted-91c2d84b6a";

/// One type on the demo worker; Redis outages are noticed quickly.
const CONFIG: &str = "[pool]\nmax_workers = 2\nmin_workers = 1\ngraceful_shutdown_timeout_ms = 500\n\n\
     [types.text_processing]\nmax_concurrent = 2\nqueue_size = 100\nretry_delay_ms = 20\ncpu_threshold = 100\n\n\
     [redis]\nlease_ms = 4000\nheartbeat_ms = 200\ncommand_timeout_ms = 500\noutcome_wait_ms = 1000\n";

/// Everything collected, each piece with where it came from.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, place: impl Into<String>, text: impl Into<String>) {
        self.0.push((place.into(), text.into()));
    }

    /// `GET path` (with the token), kept; returns the reply.
    fn get(&mut self, server: &Server, path: &str) -> Reply {
        let reply = authed(server, "GET", path, None);
        self.add(format!("GET {path} ({})", reply.status), reply.body.to_string());
        reply
    }

    /// The places where `secret` shows.
    fn leaks(&self, secret: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, text)| text.contains(secret))
            .map(|(place, text)| format!("{place}: {}", excerpt(text, secret)))
            .collect()
    }
}

/// The text around the first `secret` in `text`.
fn excerpt(text: &str, secret: &str) -> String {
    let at = text.find(secret).unwrap_or(0);
    let start = text[..at].char_indices().rev().nth(80).map_or(0, |(i, _)| i);
    text[start..].chars().take(200).collect()
}

/// A request with the bearer token (a POST with `body`, else a GET); any status is a reply.
fn authed(server: &Server, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let url = server.url(path);
    match (method, body) {
        ("POST", Some(b)) => post(&url, &b.to_string(), Some(TOKEN)),
        _ => get_with(&url, Some(TOKEN)),
    }
}

fn run_task(server: &Server, data: Value, options: Value) -> Reply {
    let body = json!({"type": "text_processing", "data": data, "options": options});
    authed(server, "POST", "/api/workers/execute", Some(&body))
}

/// The CLI with `args`, debug logging and the token in its environment; output kept.
fn cli(seen: &mut Seen, server: &str, args: &[&str]) -> i32 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_workerpool"));
    cmd.args(args)
        .env("WORKERPOOL_URL", server)
        .env("WORKERPOOL_API_TOKEN", TOKEN)
        .env("RUST_LOG", "trace")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::piped());
    let (out, timed_out) = run_bounded(&mut cmd, Duration::from_secs(60));
    assert!(!timed_out, "workerpool {args:?} ran past a minute: {}", text(&out));
    seen.add(format!("workerpool {args:?}"), text(&out));
    out.status.code().unwrap_or(-1)
}

/// Subscribes to the event channels (the publisher sends only while someone does) and to
/// every other channel, and keeps what is published until `stop`.
fn listen(redis: &RedisServer, stop: Arc<AtomicBool>) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let mut conn = redis.conn();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    conn.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout");
    let thread = std::thread::spawn(move || {
        let mut sub = conn.as_pubsub();
        sub.subscribe(&["worker_pool_events", "task_progress"]).expect("SUBSCRIBE");
        sub.psubscribe("*").expect("PSUBSCRIBE");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match sub.get_message() {
                Ok(msg) => {
                    let line = format!(
                        "{}: {}",
                        msg.get_channel_name(),
                        String::from_utf8_lossy(msg.get_payload_bytes())
                    );
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => break,
            }
        }
    });
    (got, thread)
}

/// A Redis value as text: every string in it, lossily decoded.
fn flatten(v: &redis::Value) -> String {
    use redis::Value as V;
    match v {
        V::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        V::SimpleString(s) => s.clone(),
        V::Array(items) | V::Set(items) => items.iter().map(flatten).collect::<Vec<_>>().join(" "),
        V::Map(pairs) => pairs.iter().map(|(k, v)| format!("{}={}", flatten(k), flatten(v))).collect(),
        other => format!("{other:?}"),
    }
}

/// Every key in Redis with its value, read as its type requires.
fn dump_redis(redis: &RedisServer) -> Vec<(String, String)> {
    let mut conn = redis.conn();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    for _ in 0..10_000 {
        let (next, batch): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(500).query(&mut conn).expect("SCAN");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(cursor, 0, "SCAN did not finish");
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("TYPE");
            let mut read = |name: &str, extra: &[&str]| -> String {
                let v: redis::Value = redis::cmd(name).arg(&key).arg(extra).query(&mut conn).expect(name);
                flatten(&v)
            };
            let value = match kind.as_str() {
                "string" => read("GET", &[]),
                "hash" => read("HGETALL", &[]),
                "list" => read("LRANGE", &["0", "-1"]),
                "set" => read("SMEMBERS", &[]),
                "zset" => read("ZRANGE", &["0", "-1", "WITHSCORES"]),
                "stream" => read("XRANGE", &["-", "+"]),
                _ => String::new(),
            };
            (format!("redis key {key} ({kind})"), format!("{key} {value}"))
        })
        .collect()
}

/// Opens an event stream with the token; every read waits at most 3 s.
fn open_stream(server: &Server, path: &str) -> support::sse::Stream {
    let auth = format!("Bearer {TOKEN}");
    support::sse::open(server, path, &[("authorization", &auth)], Duration::from_secs(3))
}

/// Reads an opened stream until `stop` (at most 500 messages, each within the read timeout).
fn read_stream(seen: &mut Seen, path: &str, mut stream: support::sse::Stream, stop: impl Fn(&str) -> bool) {
    let messages = stream.read(500, |m| stop(&m.event));
    assert!(!messages.is_empty(), "{path} sent nothing");
    let text = messages.iter().map(|m| format!("{} {}", m.event, m.data)).collect::<Vec<_>>().join("\n");
    seen.add(format!("SSE {path} ({} messages)", messages.len()), format!("{}\n{text}", stream.head));
}

#[test]
fn planted_password_and_token_appear_nowhere() {
    let Some(mut redis) = RedisServer::start(&["--requirepass", PASSWORD]) else { return };
    assert!(redis.url().contains(PASSWORD), "the test must plant the password in the URL");
    let env = [
        ("REDIS_URL", redis.url()),
        ("WORKERPOOL_API_TOKEN", TOKEN.to_string()),
        ("RUST_LOG", "debug".to_string()),
        ("INSTANCE_ID", "redaction-a".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start(CONFIG, &env);
    let mut seen = Seen::default();

    // Everything published to Redis while tasks run.
    let stop = Arc::new(AtomicBool::new(false));
    let (published, listener) = listen(&redis, stop.clone());

    let done = run_task(&server, json!({"op": "progress", "steps": 3, "step_ms": 10}), json!({}));
    assert_eq!(done.status, 200, "{:?}", done.body);
    let task_id = done.body["id"].as_str().unwrap_or_default().to_string();
    seen.add("execute (completed)", done.body.to_string());
    let failed = run_task(&server, json!({"op": "fail", "retryable": false}), json!({}));
    assert_eq!(failed.status, 502, "{:?}", failed.body);
    seen.add("execute (failed)", failed.body.to_string());
    let dead = run_task(&server, json!({"op": "fail"}), json!({"max_retries": 1}));
    assert_eq!(dead.body["status"], "dead", "{:?}", dead.body);
    seen.add("execute (dead)", dead.body.to_string());
    let queued = run_task(&server, json!({"op": "echo"}), json!({"wait": false}));
    assert_eq!(queued.status, 202, "{:?}", queued.body);
    // A worker's environment is the server's, less its secrets.
    let env = run_task(&server, json!({"op": "env"}), json!({}));
    assert_eq!(env.status, 200, "{:?}", env.body);
    let worker_env = &env.body["result"];
    assert!(worker_env["WORKERPOOL_WORKER_ID"].is_string(), "{worker_env}");
    for var in workerpool_actors::redact::SECRET_VARS {
        assert!(worker_env[var].is_null(), "the worker inherited {var}: {worker_env}");
    }
    seen.add("execute (env)", env.body.to_string());

    // The pool's event stream while a task runs (subscribed once its head is read), and a
    // finished task's stream.
    let stream = open_stream(&server, "/api/workers/events");
    let streamed = std::thread::spawn({
        let url = server.url("/api/workers/execute");
        move || {
            let body = json!({"type": "text_processing", "data": {"op": "progress", "steps": 2}});
            post(&url, &body.to_string(), Some(TOKEN))
        }
    });
    read_stream(&mut seen, "/api/workers/events", stream, |e| e == "task_completed");
    let streamed = streamed.join().expect("the streamed task");
    seen.add("execute (streamed)", streamed.body.to_string());
    let path = format!("/api/tasks/{task_id}/events");
    read_stream(&mut seen, &path, open_stream(&server, &path), |_| false);

    // The publisher starts once a heartbeat sees the subscriber: tasks run until it has.
    let events_out = wait_for(Duration::from_secs(10), || {
        let r = run_task(&server, json!({"op": "progress", "steps": 2}), json!({}));
        assert_eq!(r.status, 200, "{:?}", r.body);
        published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m.starts_with("worker_pool_events"))
    });
    assert!(events_out, "no event was published to Redis");

    // Every read route.
    let status = seen.get(&server, "/api/workers/status");
    assert_eq!(status.status, 200, "{:?}", status.body);
    for path in [
        "/api/workers/stats",
        "/api/workers/types",
        "/api/workers/health",
        "/api/workers/queues",
        "/api/workers/queues/text_processing",
        "/api/workers/resources",
        "/api/workers/dead-letters/text_processing",
        &format!("/api/tasks/{task_id}"),
        "/api/openapi.json",
        "/metrics",
        "/healthz",
        "/readyz",
        "/",
        "/dashboard",
    ] {
        seen.get(&server, path);
    }
    // Error answers.
    for path in ["/api/tasks/no-such-task", "/api/workers/queues/no_such_type", "/api/workers/nothing"] {
        seen.get(&server, path);
    }
    let refused = post(&server.url("/api/workers/execute"), r#"{"type":"text_processing"}"#, Some("wrong"));
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    seen.add("execute (wrong token)", refused.body.to_string());
    let bad = authed(&server, "POST", "/api/workers/execute", Some(&json!({"type": 3})));
    seen.add(format!("execute bad body ({})", bad.status), bad.body.to_string());

    // The CLI, at trace level.
    assert_eq!(cli(&mut seen, &server.base, &["status"]), 0);
    assert_eq!(cli(&mut seen, &server.base, &["status", "--json"]), 0);
    let submit = ["submit", "--type", "text_processing", "--data", r#"{"op":"progress","steps":2}"#];
    assert_eq!(cli(&mut seen, &server.base, &submit), 0);
    let with_flag = ["submit", "--token", TOKEN, "--type", "text_processing", "--no-wait"];
    assert_eq!(cli(&mut seen, &server.base, &with_flag), 0);
    // A server URL carrying the password: the CLI's own errors do not repeat it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    assert_ne!(cli(&mut seen, &format!("http://user:{PASSWORD}@127.0.0.1:{port}"), &["status"]), 0);
    assert_eq!(cli(&mut seen, &format!("https://user:{PASSWORD}@127.0.0.1:{port}"), &["status"]), 2);

    stop.store(true, Ordering::Relaxed);
    listener.join().expect("the subscriber");
    seen.add("published to Redis", published.lock().unwrap_or_else(|e| e.into_inner()).join("\n"));

    // Every key, before the outage loses them (the test's Redis keeps nothing on disk).
    let stored = dump_redis(&redis);
    for key in ["{workerpool}:t:", "{workerpool}:instances", "{workerpool}:dead:"] {
        assert!(stored.iter().any(|(_, v)| v.starts_with(key)), "no {key}… key in Redis");
    }
    seen.0.extend(stored);

    // A Redis outage, logged, then Redis back.
    redis.kill();
    let noticed = wait_for(Duration::from_secs(15), || {
        get(&server.url("/api/workers/status")).body["redis"]["status"] == "down"
    });
    assert!(noticed, "the server did not notice Redis was gone");
    seen.get(&server, "/api/workers/status");
    seen.get(&server, "/api/workers/health");
    let during = run_task(&server, json!({"op": "echo"}), json!({}));
    assert_eq!(during.status, 503, "{:?}", during.body);
    seen.add("execute (Redis down)", during.body.to_string());
    redis.restart();
    let back = wait_for(Duration::from_secs(15), || {
        get(&server.url("/api/workers/status")).body["redis"]["status"] == "up"
    });
    assert!(back, "the server did not see Redis again");
    let after = run_task(&server, json!({"op": "echo"}), json!({}));
    assert_eq!(after.status, 200, "{:?}", after.body);
    seen.get(&server, "/api/workers/status");
    // A graceful shutdown, so its lines are in the log too.
    assert_eq!(server.signal_and_wait("-TERM", Duration::from_secs(20)), Some(0));

    let log = server.log();
    assert!(log.iter().any(|l| l.contains("DEBUG")), "the log is not at debug level");
    assert!(log.iter().any(|l| l.contains("Redis is unreachable")), "the outage was not logged");
    assert!(log.iter().any(|l| l.contains("redis://:***@127.0.0.1:")), "the log does not name Redis");
    seen.add("server log", log.join("\n"));
    seen.0.extend(dump_redis(&redis));

    let leaks: Vec<String> = [PASSWORD, TOKEN].iter().flat_map(|s| seen.leaks(s)).collect();
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    assert!(
        status.body["config"]["redis"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("redis://:***@127.0.0.1:")),
        "/status does not show the redacted URL: {}",
        status.body["config"]
    );
}
