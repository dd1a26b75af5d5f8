//! The dashboard at `/` and `/dashboard`: a page and its scripts, compiled into the binary
//! (nothing is built with Node or fetched at run time). The page holds no data of its own; it
//! reads the API like any client, so it is open even where reads need the token, and asks the
//! user for the token when the API does.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ApiError;

/// The files of the page: name, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("dashboard/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("dashboard/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("dashboard/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("dashboard/api.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_str!("dashboard/ui.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_str!("dashboard/overview.js")),
    ("type.js", "text/javascript; charset=utf-8", include_str!("dashboard/type.js")),
    ("task.js", "text/javascript; charset=utf-8", include_str!("dashboard/task.js")),
];

/// What the page may load and where it may connect: only this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page (`/`, `/dashboard`).
pub(super) async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, ASSETS[0])
}

/// One of its files (`/dashboard/{file}`).
pub(super) async fn asset(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let file = ASSETS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        ApiError::new(actix_web::http::StatusCode::NOT_FOUND, "no such file in the dashboard")
    })?;
    Ok(serve(&req, *file))
}

/// A file, with a validator so that a reload costs a `304` (the files change only with the
/// binary).
fn serve(req: &HttpRequest, (_, content_type, body): (&str, &str, &'static str)) -> HttpResponse {
    let etag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)));
    if fresh { res.finish() } else { res.content_type(content_type).body(body) }
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_and_its_files_are_listed() {
        let total: usize = ASSETS.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total < 300 * 1024, "the dashboard is {total} bytes");
        let index = ASSETS[0].2;
        for (name, _, _) in &ASSETS[1..] {
            let linked = index.contains(&format!("/dashboard/{name}"))
                || ASSETS.iter().any(|(_, _, body)| body.contains(&format!("./{name}")));
            assert!(linked, "{name} is served but nothing loads it");
        }
    }

    #[test]
    fn every_module_the_scripts_import_is_served() {
        for (name, _, body) in ASSETS {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split("from \"./").nth(1) else { continue };
                let file = from.split('"').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == file),
                    "{name} imports {file}, which is not served"
                );
            }
        }
    }
}
