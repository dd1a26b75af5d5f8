//! Connecting to Redis, end to end: a password, `rediss://` with a private authority and
//! with client certificates, an instance started before Redis, and a producer written with
//! redis-py against the documented keys.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::redis_server::RedisServer;
use support::server::*;
use support::shared_queue::*;

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
