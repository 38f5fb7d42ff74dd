//! The single-page app's entry: a GET of a path the app routes itself (`/rooms/3`,
//! `/dm/bob`, `/settings`) that is no file under `STATIC_DIR` answers `index.html`, so a
//! copied link and a reload work. API paths, missing assets (a name with an extension) and
//! anything that looks like a path trick stay 404.

use std::convert::Infallible;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::service_fn;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// Whether `path` (as received, still percent-encoded) is one the app may route.
fn is_app_route(path: &str) -> bool {
    if path.starts_with("/api/") || path == "/api" || path.starts_with("/metrics") {
        return false;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let plain = |s: &&str| {
        let lower = s.to_ascii_lowercase();
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@' | b'%'))
            && !["%2e", "%2f", "%5c", "%00"]
                .iter()
                .any(|bad| lower.contains(bad))
    };
    // A trailing slash leaves one empty segment; that is still a route.
    let last_empty = segments.last().is_some_and(|s| s.is_empty());
    let n = segments.len() - usize::from(last_empty);
    segments[..n].iter().all(plain)
}

/// The `ServeDir` fallback: `index.html` for app routes, 404 for everything else.
pub fn entry_service(
    index: PathBuf,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    service_fn(move |req: Request| {
        let index = index.clone();
        async move {
            let routed = matches!(*req.method(), Method::GET | Method::HEAD)
                && is_app_route(req.uri().path());
            if !routed {
                return Ok(StatusCode::NOT_FOUND.into_response());
            }
            let (parts, _) = req.into_parts();
            let req = Request::from_parts(parts, Body::empty());
            match ServeFile::new(index).oneshot(req).await {
                Ok(res) => Ok(res.map(Body::new)),
                Err(err) => match err {},
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::is_app_route;

    #[test]
    fn app_routes_are_served_the_entry_page() {
        for path in [
            "/login",
            "/rooms/3",
            "/dm/bob",
            "/settings",
            "/rooms/",
            "/dm/%D0%B1",
        ] {
            assert!(is_app_route(path), "{path}");
        }
    }

    #[test]
    fn api_assets_and_path_tricks_are_not() {
        for path in [
            "/api/v1/nothing",
            "/api",
            "/metrics",
            "/missing.js",
            "/../etc/passwd",
            "//etc/passwd",
            "/%2e%2e/Cargo.toml",
            "/..%2f..%2fetc%2fpasswd",
            "/..\\Cargo.toml",
            "/%5c..%5cCargo.toml",
            "/a%00b",
        ] {
            assert!(!is_app_route(path), "{path}");
        }
    }
}
