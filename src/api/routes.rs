//! The route table: every route the server serves, with who may call it ([`Access`]), in one
//! list. `configure` registers it and the token check reads it, so a route cannot be served
//! without a stated access; `docs/API.md` and `docs/openapi.json` say the same per route
//! (`tests/access.rs` walks every row and checks the document against it).

use actix_web::http::Method;
use actix_web::web;

use super::{dashboard, events, metrics, probes, tasks, workers};

/// Who may call a route, when the server has `WORKERPOOL_API_TOKEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Never a token: the probes and the dashboard's page and files (they hold no data).
    Open,
    /// The reads, the streams and `/metrics`: open, or with `WORKERPOOL_PROTECT_READS` the
    /// API token or the read token.
    Read,
    /// What changes the pool (execute, scale, restart, cancel, requeue): the API token only.
    Write,
}

/// One row of the table: a method on a path (actix's pattern, `{name}` for a segment).
pub struct Route {
    /// `GET`, `POST` or `DELETE`.
    pub method: Method,
    /// The path pattern, as `HttpRequest::match_pattern` gives it back.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether `HEAD` is served too (every `GET` but the endless streams).
    pub head: bool,
    handler: fn(actix_web::Route) -> actix_web::Route,
}

const fn get(path: &'static str, access: Access, handler: fn(actix_web::Route) -> actix_web::Route) -> Route {
    Route { method: Method::GET, path, access, head: true, handler }
}

const fn stream(path: &'static str, handler: fn(actix_web::Route) -> actix_web::Route) -> Route {
    Route { method: Method::GET, path, access: Access::Read, head: false, handler }
}

const fn write(
    method: Method,
    path: &'static str,
    handler: fn(actix_web::Route) -> actix_web::Route,
) -> Route {
    Route { method, path, access: Access::Write, head: false, handler }
}

use Access::{Open, Read};

/// Every route, in the order they are matched.
pub const ROUTES: &[Route] = &[
    get("/", Open, |r| r.to(dashboard::index)),
    get("/dashboard", Open, |r| r.to(dashboard::index)),
    get("/dashboard/", Open, |r| r.to(dashboard::index)),
    get("/dashboard/{file}", Open, |r| r.to(dashboard::asset)),
    get("/healthz", Open, |r| r.to(probes::healthz)),
    get("/readyz", Open, |r| r.to(probes::readyz)),
    get("/api/workers/stats", Read, |r| r.to(workers::stats)),
    get("/api/workers/status", Read, |r| r.to(workers::status)),
    get("/api/workers/types", Read, |r| r.to(workers::types)),
    write(Method::POST, "/api/workers/execute", |r| r.to(workers::execute)),
    write(Method::POST, "/api/workers/scale/{type}", |r| r.to(workers::scale)),
    write(Method::POST, "/api/workers/restart/{worker_id}", |r| r.to(workers::restart)),
    get("/api/workers/health", Read, |r| r.to(workers::health)),
    get("/api/workers/queues", Read, |r| r.to(workers::queues)),
    get("/api/workers/queues/{type}", Read, |r| r.to(workers::queue_page)),
    get("/api/workers/resources", Read, |r| r.to(workers::resources)),
    stream("/api/workers/events", |r| r.to(events::pool_events)),
    get("/api/workers/dead-letters/{type}", Read, |r| r.to(workers::dead_letters)),
    get("/api/tasks/{id}", Read, |r| r.to(tasks::get)),
    write(Method::DELETE, "/api/tasks/{id}", |r| r.to(tasks::cancel)),
    stream("/api/tasks/{id}/events", |r| r.to(events::task_events)),
    write(Method::POST, "/api/tasks/{id}/requeue", |r| r.to(tasks::requeue)),
    get("/api/openapi.json", Read, |r| r.to(super::openapi)),
    get("/metrics", Read, |r| r.to(metrics::metrics)),
];

/// Registers every row, one resource per path with its methods.
pub(super) fn register(cfg: &mut web::ServiceConfig) {
    for (i, row) in ROUTES.iter().enumerate() {
        if ROUTES[..i].iter().any(|earlier| earlier.path == row.path) {
            continue;
        }
        let mut resource = web::resource(row.path);
        for same in ROUTES.iter().filter(|r| r.path == row.path) {
            resource = resource.route((same.handler)(web::route().method(same.method.clone())));
            if same.head {
                resource = resource.route((same.handler)(web::head()));
            }
        }
        cfg.service(resource);
    }
}

/// The access of a request: its route's, found by the pattern it matched and its method
/// (`HEAD` as `GET`). A path or method the table lacks (a 404 or 405 to come) fails closed: a
/// `GET` or `HEAD` is a read (under `WORKERPOOL_PROTECT_READS` it tells nothing without a
/// token), any other method a write.
pub fn access(method: &Method, pattern: Option<&str>) -> Access {
    let method = if method == Method::HEAD { &Method::GET } else { method };
    let unlisted = if method == Method::GET { Access::Read } else { Access::Write };
    pattern
        .and_then(|p| ROUTES.iter().find(|r| r.path == p && r.method == *method))
        .map_or(unlisted, |r| r.access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_and_path_is_one_row() {
        for (i, row) in ROUTES.iter().enumerate() {
            let twin = ROUTES[..i].iter().any(|r| r.path == row.path && r.method == row.method);
            assert!(!twin, "{} {} is listed twice", row.method, row.path);
        }
    }

    #[test]
    fn access_follows_the_table() {
        assert_eq!(access(&Method::GET, Some("/healthz")), Access::Open);
        assert_eq!(access(&Method::HEAD, Some("/dashboard/{file}")), Access::Open);
        assert_eq!(access(&Method::GET, Some("/api/tasks/{id}")), Access::Read);
        assert_eq!(access(&Method::DELETE, Some("/api/tasks/{id}")), Access::Write);
        assert_eq!(access(&Method::POST, Some("/api/workers/execute")), Access::Write);
        // A method the route does not serve, or no route at all: a read for GET and HEAD, a
        // write for anything else.
        assert_eq!(access(&Method::GET, Some("/api/workers/execute")), Access::Read);
        assert_eq!(access(&Method::HEAD, None), Access::Read);
        assert_eq!(access(&Method::GET, None), Access::Read);
        assert_eq!(access(&Method::PUT, Some("/healthz")), Access::Write);
        assert_eq!(access(&Method::POST, None), Access::Write);
        assert_eq!(access(&Method::DELETE, Some("/api/workers/status")), Access::Write);
    }
}
