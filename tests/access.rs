//! Who may call what: every route of the route table (`workerpool::api::ROUTES`, the one the
//! server registers), called with no token, the read token and the API token, with reads open
//! and protected, answers with the status class its access gives; the OpenAPI document lists
//! the same routes with the same requirement.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::openapi::document;
use support::server::*;
use workerpool::api::{Access, ROUTES};

const API: &str = "api-s3cret";
const READ: &str = "read-s3cret";
const WRONG: &str = "api-s3cre";

/// The path of a row with harmless values for its parameters: nothing exists under them, so
/// an allowed write changes nothing (404 or 400).
fn fill(path: &str) -> String {
    path.replace("{type}", "no_such_type")
        .replace("{worker_id}", "no_such_type-1")
        .replace("{id}", "00000000-0000-4000-8000-000000000000")
        .replace("{file}", "app.js")
}

/// `path` with its first letter percent-encoded (`/api/…` as `/%61pi/…`): the router decodes
/// it to the same route, so the token check must too. `None` for a path without a letter.
fn encoded(path: &str) -> Option<String> {
    let at = path.find(|c: char| c.is_ascii_alphabetic())?;
    Some(format!("{}%{:02X}{}", &path[..at], path.as_bytes()[at], &path[at + 1..]))
}

/// The status of `method path` with `token`; the body is never read (a stream's never ends).
fn status(server: &Server, method: &str, path: &str, token: Option<&str>) -> u16 {
    let url = server.url(path);
    let auth = token.map(|t| format!("Bearer {t}"));
    let agent = agent();
    let res = match method {
        "GET" | "HEAD" | "DELETE" => {
            let mut req = match method {
                "GET" => agent.get(&url),
                "HEAD" => agent.head(&url),
                _ => agent.delete(&url),
            };
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.call()
        }
        "POST" => {
            let mut req = agent.post(&url).header("content-type", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.send(r#"{"type":"no_such_type","action":"up","count":1}"#)
        }
        other => panic!("no client for {other}"),
    };
    res.unwrap_or_else(|e| panic!("{method} {path}: {e}")).status().as_u16()
}

/// What a caller with `token` (none, a wrong one, the read token, the API token) must get
/// from a route of `access`: `Some(401)`, `Some(403)`, or `None` for "let through" (any
/// status but those).
fn expected(access: Access, protect_reads: bool, token: Option<&str>) -> Option<u16> {
    let known = token == Some(API) || token == Some(READ);
    match access {
        Access::Open => None,
        Access::Read if !protect_reads || known => None,
        Access::Read => Some(401),
        Access::Write if token == Some(API) => None,
        Access::Write if token == Some(READ) => Some(403),
        Access::Write => Some(401),
    }
}

fn walk(protect_reads: bool) {
    let mut env = vec![("WORKERPOOL_API_TOKEN", API), ("WORKERPOOL_READ_TOKEN", READ)];
    if protect_reads {
        env.push(("WORKERPOOL_PROTECT_READS", "1"));
    }
    let server = Server::start(TEXT_ONLY, &env);
    let mut walked = 0;
    for row in ROUTES {
        let plain = fill(row.path);
        let mut methods = vec![row.method.as_str()];
        if row.head {
            methods.push("HEAD");
        }
        let paths = [Some(plain.clone()), encoded(&plain)];
        for (method, path) in methods.iter().flat_map(|m| paths.iter().flatten().map(move |p| (*m, p))) {
            for token in [None, Some(WRONG), Some(READ), Some(API)] {
                let got = status(&server, method, path, token);
                let what = format!("{method} {path} with {token:?} (protect_reads {protect_reads})");
                match expected(row.access, protect_reads, token) {
                    Some(want) => assert_eq!(got, want, "{what}"),
                    None => {
                        assert!(got != 401 && got != 403, "{what}: {got}");
                        assert!(got != 405 && got < 500 || got == 503, "{what}: {got}");
                    }
                }
                walked += 1;
            }
        }
    }
    assert!(walked >= ROUTES.len() * 8 - 4, "{walked}");
    // The 403 says why.
    let r = post(&server.url("/api/workers/execute"), r#"{"type":"text_processing"}"#, Some(READ));
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body["error"].as_str().is_some_and(|e| e.contains("WORKERPOOL_API_TOKEN")), "{r:?}");
}

#[test]
fn paths_encode_their_first_letter() {
    assert_eq!(encoded("/api/workers/execute").as_deref(), Some("/%61pi/workers/execute"));
    assert_eq!(encoded("/"), None);
}

#[test]
fn every_route_with_each_token_and_open_reads() {
    walk(false);
}

#[test]
fn every_route_with_each_token_and_protected_reads() {
    walk(true);
}

#[test]
fn the_read_token_follows_streams_and_metrics_under_protected_reads() {
    let env =
        [("WORKERPOOL_API_TOKEN", API), ("WORKERPOOL_READ_TOKEN", READ), ("WORKERPOOL_PROTECT_READS", "1")];
    let server = Server::start(TEXT_ONLY, &env);
    let done = post(
        &server.url("/api/workers/execute"),
        r#"{"type":"text_processing","data":{"op":"echo"}}"#,
        Some(API),
    );
    assert_eq!(done.status, 200, "{done:?}");
    let id = done.body["id"].as_str().expect("an id");
    // The stream ends after the result, so its body is read to its end.
    let stream = get_with(&server.url(&format!("/api/tasks/{id}/events")), Some(READ));
    assert_eq!(stream.status, 200, "{stream:?}");
    assert!(stream.body.as_str().is_some_and(|t| t.contains("event: result")), "{stream:?}");
    let metrics = get_with(&server.url("/metrics"), Some(READ));
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(metrics.body.as_str().is_some_and(|t| t.contains("workerpool_tasks_total")), "{metrics:?}");
}

/// The document's operations are the table's rows (but the dashboard's files and the second
/// spelling of its page, named in the page's description), and each one's `security` says
/// what the row's access is: none for open routes, either token (or none, when reads are
/// open) for reads, the API token (or none, without one) for writes.
#[test]
fn the_document_lists_the_tables_routes_with_their_access() {
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            documented.insert((method.to_uppercase(), path.clone(), security(op)));
        }
    }
    let table: BTreeSet<(String, String, Vec<String>)> = ROUTES
        .iter()
        .filter(|r| r.path != "/dashboard/" && r.path != "/dashboard/{file}")
        .map(|r| {
            let schemes = match r.access {
                Access::Open => vec![],
                Access::Read => vec!["".into(), "bearerAuth".into(), "readBearerAuth".into()],
                Access::Write => vec!["".into(), "bearerAuth".into()],
            };
            (r.method.as_str().to_string(), r.path.to_string(), schemes)
        })
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "table but not document: {missing:#?}\ndocument but not table: {extra:#?}"
    );
    let schemes = &doc["components"]["securitySchemes"];
    for name in ["bearerAuth", "readBearerAuth"] {
        assert_eq!(
            (schemes[name]["type"].as_str(), schemes[name]["scheme"].as_str()),
            (Some("http"), Some("bearer"))
        );
    }
}

/// An operation's security alternatives, by scheme name (`""` for none needed), sorted.
fn security(op: &Value) -> Vec<String> {
    let mut names: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|alt| alt.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default())
        .collect();
    names.sort();
    names
}

#[test]
fn a_read_token_alone_or_equal_to_the_api_token_exits_2() {
    for (env, says) in [
        (vec![("WORKERPOOL_READ_TOKEN", READ)], "without WORKERPOOL_API_TOKEN"),
        (
            vec![("WORKERPOOL_API_TOKEN", API), ("WORKERPOOL_READ_TOKEN", API)],
            "the same as WORKERPOOL_API_TOKEN",
        ),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_workerpool"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny.toml"))
            .env_remove("WORKERPOOL_API_TOKEN")
            .env_remove("WORKERPOOL_READ_TOKEN")
            .envs(env);
        let (out, timed_out) = support::bounded::run_bounded(&mut cmd, Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!timed_out && out.status.code() == Some(2), "{:?} {err}", out.status);
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
}
