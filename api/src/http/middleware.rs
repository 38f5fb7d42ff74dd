//! Cross-cutting request handling: request ids, timing, metrics, uniform JSON errors and
//! security headers.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Response, StatusCode};
use axum::middleware::Next;

use super::error::{body_for_status, ErrorBody};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The Content-Security-Policy of every response. No `'unsafe-inline'` anywhere: the SPA
/// loads only its own module scripts and styles.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// A client-sent request id is kept only if it is short and plain, so it can't inject
/// anything into logs or headers; otherwise it is dropped and a fresh one generated.
pub fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn drop_insane_request_id(mut req: Request) -> Request {
    if req
        .headers()
        .get(&X_REQUEST_ID)
        .is_some_and(|v| !is_sane_request_id(v))
    {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
}

/// `Server-Timing: app;dur=<ms>`: the time spent in the handler, visible in browser devtools.
pub async fn server_timing(req: Request, next: Next) -> Response<Body> {
    let start = Instant::now();
    let mut response = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={ms:.3}")) {
        response.headers_mut().append("server-timing", value);
    }
    response
}

/// The route pattern (`/api/v1/rooms/{id}`), never the raw path, so ids don't become labels.
pub fn route_label(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

pub async fn record_metrics(req: Request, next: Next) -> Response<Body> {
    let path = route_label(&req);
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "path" => path)
        .record(seconds);
    response
}

/// Errors produced outside our handlers (unknown route, 405, timeouts) come with an empty or
/// plain-text body; give them the same JSON shape as every other error.
pub async fn json_errors(req: Request, next: Next) -> Response<Body> {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&body_for_status(status)).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// A panicking handler answers 500 like any internal error; the server goes on.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    let body = serde_json::to_vec(&ErrorBody::new("internal_error", "internal server error"))
        .unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
