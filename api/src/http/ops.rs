//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::ApiContext;
use crate::error::{Error, Result};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the database (and Redis, when configured) answer, and the node is not
/// draining.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, description = "A dependency is down", body = ErrorBody)))]
async fn readyz(State(ctx): State<ApiContext>) -> Result<axum::Json<Health>> {
    if ctx.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::Unavailable(
            "draining: this node is shutting down".to_owned(),
        ));
    }
    if let Err(err) = ctx.store.ping().await {
        tracing::warn!(error = %err, "readiness: database unreachable");
        return Err(Error::Unavailable("database unreachable".to_owned()));
    }
    if let Some(redis) = &ctx.redis {
        let mut conn = redis.clone();
        // A readiness probe must answer, not hang with Redis: a second is plenty for a PING.
        let pong = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match pong {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness: redis unreachable");
                return Err(Error::Unavailable("redis unreachable".to_owned()));
            }
            Err(_) => {
                tracing::warn!("readiness: redis gave no answer within 1 s");
                return Err(Error::Unavailable("redis unreachable".to_owned()));
            }
        }
    }
    Ok(axum::Json(Health { status: "ready" }))
}

/// Prometheus text exposition: request counts and latency by matched route, and more. With
/// `METRICS_TOKEN` set it wants `Authorization: Bearer <METRICS_TOKEN>`; without, it is open
/// (keep it on a private network then).
#[utoipa::path(get, path = "/metrics", tag = "ops", security((), ("bearer" = [])),
    responses(
        (status = 200, content_type = "text/plain", body = String),
        (status = 401, description = "`METRICS_TOKEN` is set and the request doesn't carry it", body = ErrorBody),
    ))]
async fn metrics(State(ctx): State<ApiContext>, headers: HeaderMap) -> Result<impl IntoResponse> {
    if let Some(expected) = &ctx.settings.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .unwrap_or("");
        // Constant time: the comparison must not tell how much of the token was right.
        let matches: bool = expected
            .expose_secret()
            .as_bytes()
            .ct_eq(given.trim().as_bytes())
            .into();
        if !matches {
            return Err(Error::Unauthorized);
        }
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(),
    ))
}
