//! How errors look on the wire: a status and `{"error": {"code", "message", "field"?}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable reason, e.g. `username_taken`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
            },
        }
    }
}

/// The error body for a bare status (used for errors raised outside handlers: 404 routes,
/// 405, body limits, timeouts).
pub fn body_for_status(status: StatusCode) -> ErrorBody {
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal_error",
        _ => "error",
    };
    let message = status.canonical_reason().unwrap_or("error").to_owned();
    ErrorBody::new(code, message)
}

impl Error {
    /// The status, stable code and (for validation errors) field of this error, shared by
    /// HTTP responses and WebSocket `error` messages.
    pub fn classify(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        match self {
            Error::Validation(v) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                Some(v.field),
            ),
            Error::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code, None),
            Error::InvalidBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", None),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            Error::TicketRequired => (StatusCode::UNAUTHORIZED, "ws_ticket_required", None),
            Error::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials", None),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            Error::NotEnabled(_) => (StatusCode::NOT_FOUND, "not_enabled", None),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, *code, None),
            Error::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            Error::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None),
            Error::TooManySockets(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_sockets", None),
            Error::RateLimiterUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "rate_limiter_unavailable",
                None,
            ),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            Error::DatabaseUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                None,
            ),
            Error::StorageFull => (StatusCode::SERVICE_UNAVAILABLE, "storage_full", None),
            Error::TranscriptionUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "transcription_unavailable",
                None,
            ),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code, field) = self.classify();
        if let Error::Internal(detail) = &self {
            // Logged here, once, inside the request's span (with its request id).
            tracing::error!(error = %detail, "internal error");
        }
        let message = match self {
            Error::Internal(_) => "internal server error".to_owned(),
            _ => message,
        };
        let mut body = ErrorBody::new(code, message);
        body.error.field = field.map(str::to_owned);
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            Error::RateLimited { retry_after } | Error::RateLimiterUnavailable { retry_after } => {
                Some(retry_after)
            }
            // The pool's connect timeout is a few seconds; a restart takes about as long.
            Error::DatabaseUnavailable => Some(std::time::Duration::from_secs(5)),
            _ => None,
        };
        if let Some(retry_after) = retry_after {
            // Whole seconds, rounded up: a client that waits this long is let through.
            let secs = retry_after.as_millis().div_ceil(1000).max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
