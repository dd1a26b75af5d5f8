//! `docs/openapi.json` against the real server: the document is OpenAPI 3.x, it lists exactly
//! the server's routes, and every documented operation answers one of its documented statuses
//! (never "no route", 405 or 500) with a body of the documented shape.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::openapi::{check, document, resolve};
use support::server::*;
use workerpool::api::{Access, ROUTES};

/// Every route the server serves (the route table, `workerpool::api::ROUTES`), as
/// `(method, path)` with path parameters in OpenAPI's `{name}` form, but the dashboard's files
/// under `/dashboard/{file}` and the page's second spelling `/dashboard/`, which are named in
/// the description of `/` and `/dashboard`, not as operations.
fn server_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .filter(|r| r.path != "/dashboard/" && r.path != "/dashboard/{file}")
        .map(|r| (r.method.as_str().to_lowercase(), r.path.to_string()))
        .collect()
}

/// The access of a documented operation, from the route table.
fn access(method: &str, path: &str) -> Access {
    ROUTES
        .iter()
        .find(|r| r.method.as_str().eq_ignore_ascii_case(method) && r.path == path)
        .map_or_else(|| panic!("{method} {path} is not in the route table"), |r| r.access)
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every documented operation: `(method, path, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// The documented statuses of an operation.
fn statuses(op: &Value) -> BTreeSet<u16> {
    op["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|k| k.parse().expect("a numeric status"))
        .collect()
}

/// The documented response of `status` (resolved).
fn response<'a>(doc: &'a Value, op: &'a Value, status: u16) -> &'a Value {
    resolve(doc, &op["responses"][status.to_string()])
}

#[test]
fn the_document_is_openapi_3_and_lists_exactly_the_servers_routes() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "not OpenAPI 3.x: {version}");
    assert!(
        doc["info"]["title"].is_string() && doc["info"]["version"].is_string(),
        "info needs title and version"
    );

    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let served = server_routes();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "routes the document lacks: {undocumented:?}");
    assert!(unserved.is_empty(), "documented operations the server lacks: {unserved:?}");

    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
    let allowed: BTreeSet<u16> =
        [200, 202, 204, 304, 400, 401, 403, 404, 405, 409, 413, 429, 502, 503, 504].into();
    for (method, path, op) in operations(&doc) {
        let codes = statuses(&op);
        assert!(!codes.is_empty(), "{method} {path}: no responses");
        assert!(codes.is_subset(&allowed), "{method} {path}: unexpected statuses {codes:?}");
        assert!(!codes.contains(&500), "{method} {path}: 500 is never an answer to document");
        // Every path parameter is declared, and nothing else is.
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("a parameter name").to_string())
            .collect();
        assert_eq!(in_path, declared, "{method} {path}: path parameters");
        // The tokens are asked for exactly where the server checks them, and are optional
        // (a server without WORKERPOOL_API_TOKEN asks for none); tests/access.rs checks the
        // schemes of each operation against the table.
        let alts = op["security"].as_array().unwrap_or_else(|| panic!("{method} {path}: no security"));
        let optional = alts.iter().any(|a| a.as_object().is_some_and(|o| o.is_empty()));
        match access(&method, &path) {
            Access::Write => {
                assert!(optional, "{method} {path}: optional");
                assert!(codes.contains(&401) && codes.contains(&403), "{method} {path}: 401 and 403");
            }
            Access::Read => {
                assert!(optional, "{method} {path}: optional");
                assert!(codes.contains(&401) && !codes.contains(&403), "{method} {path}: 401 only");
            }
            Access::Open => {
                assert!(alts.is_empty(), "{method} {path}: documented as secured");
                assert!(
                    !codes.contains(&401) && !codes.contains(&403),
                    "{method} {path}: 401 or 403 on an open route"
                );
            }
        }
        for code in &codes {
            assert!(
                response(&doc, &op, *code)["description"].is_string(),
                "{method} {path} {code}: description"
            );
        }
    }
    // Every local $ref resolves.
    fn refs(doc: &Value, v: &Value) {
        match v {
            Value::Object(map) => {
                if map.contains_key("$ref") {
                    resolve(doc, v);
                }
                map.values().for_each(|x| refs(doc, x));
            }
            Value::Array(list) => list.iter().for_each(|x| refs(doc, x)),
            _ => {}
        }
    }
    refs(&doc, &doc);
}

/// The status line and content type of a request whose answer may be an endless event stream:
/// only the head is read, within a few seconds.
fn stream_head(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500))).expect("read timeout");
    s.set_write_timeout(Some(Duration::from_secs(5))).expect("write timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("GET {path}: {e}"),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {head:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v)
        })
        .unwrap_or("")
        .trim()
        .to_string();
    (status, content_type)
}

/// What the test substitutes for path parameters.
struct Ids {
    task_type: &'static str,
    worker: String,
    /// A completed task.
    done: String,
    /// A task in the dead-letter list.
    dead: String,
}

fn fill(path: &str, ids: &Ids, real: bool) -> String {
    let (task_type, worker, task) = if real {
        let task = if path.ends_with("/requeue") { &ids.dead } else { &ids.done };
        (ids.task_type.to_string(), ids.worker.clone(), task.clone())
    } else {
        (
            "no_such_type".to_string(),
            "no_such_type-1".to_string(),
            "00000000-0000-4000-8000-000000000000".to_string(),
        )
    };
    path.replace("{type}", &task_type).replace("{worker_id}", &worker).replace("{id}", &task)
}

/// The body the test sends to an operation that takes one.
fn body_for(path: &str) -> &'static str {
    if path.ends_with("/execute") {
        r#"{"type":"text_processing","data":{"op":"echo","x":1},"options":{"priority":1,"timeout":20000}}"#
    } else if path.contains("/scale/") {
        r#"{"action":"up","count":1}"#
    } else {
        ""
    }
}

fn is_stream(op: &Value) -> bool {
    op["responses"]["200"]["content"].get("text/event-stream").is_some()
}

#[test]
fn every_documented_operation_answers_a_documented_status() {
    let doc = document();
    let server = Server::start(TEXT_ONLY, &[]);

    // Real values for the path parameters.
    let done =
        post(&server.url("/api/workers/execute"), r#"{"type":"text_processing","data":{"op":"echo"}}"#, None);
    assert_eq!(done.status, 200, "{done:?}");
    let dead = post(
        &server.url("/api/workers/execute"),
        r#"{"type":"text_processing","data":{"op":"fail","retryable":true},"options":{"max_retries":0}}"#,
        None,
    );
    assert_eq!((dead.status, dead.body["status"].as_str()), (502, Some("dead")), "{dead:?}");
    let status = get(&server.url("/api/workers/status"));
    let worker = status.body["workers"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a worker: {status:?}"))
        .to_string();
    let ids = Ids {
        task_type: "text_processing",
        worker,
        done: done.body["id"].as_str().expect("an id").to_string(),
        dead: dead.body["id"].as_str().expect("an id").to_string(),
    };

    for (method, path, op) in operations(&doc) {
        let documented = statuses(&op);
        let has_params = path.contains('{');
        let mut cases = vec![true];
        if has_params && documented.contains(&404) {
            cases.push(false);
        }
        for real in cases {
            let url_path = fill(&path, &ids, real);
            let what = format!("{} {url_path}", method.to_uppercase());
            let (code, content_type, body) = if is_stream(&op) {
                let (code, ct) = stream_head(&server.base, &url_path);
                (code, ct, Value::Null)
            } else {
                let url = server.url(&url_path);
                let r = match method.as_str() {
                    "get" => get(&url),
                    "post" => post(&url, body_for(&path), None),
                    "delete" => delete(&url, None),
                    other => panic!("no client for {other}"),
                };
                (r.status, r.content_type, r.body)
            };
            assert_ne!(code, 405, "{what}: 405 {body}");
            assert_ne!(code, 500, "{what}: 500 {body}");
            let no_route = body["error"].as_str().is_some_and(|e| e.starts_with("no route"));
            assert!(!no_route, "{what}: the server has no such route: {body}");
            assert!(
                documented.contains(&code),
                "{what}: {code} is not among the documented {documented:?}: {body}"
            );
            if !real {
                assert_eq!(code, 404, "{what}: a nonexistent path parameter: {body}");
            }
            // The content type and (for JSON) the body match the documented response.
            let doc_response = response(&doc, &op, code);
            let media = doc_response["content"].as_object().expect("documented content");
            let (media_type, media_obj) =
                media.iter().find(|(m, _)| content_type.starts_with(m.as_str())).unwrap_or_else(|| {
                    panic!("{what}: content type {content_type:?} is not among {:?}", media.keys())
                });
            if media_type == "application/json"
                && !is_stream(&op)
                && let Some(schema) = media_obj.get("schema")
            {
                check(&doc, schema, &body, "body").unwrap_or_else(|e| panic!("{what} {code}: {e}"));
            }
        }
    }

    // The served document is this document.
    let served = get(&server.url("/api/openapi.json"));
    assert_eq!(served.body, doc, "the served /api/openapi.json differs from docs/openapi.json (rebuild?)");
}
