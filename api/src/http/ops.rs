//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
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

/// Readiness: the database (and Redis, when configured) answer.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, description = "A dependency is down", body = ErrorBody)))]
async fn readyz(State(ctx): State<ApiContext>) -> Result<axum::Json<Health>> {
    if let Err(err) = ctx.store.ping().await {
        tracing::warn!(error = %err, "readiness: database unreachable");
        return Err(Error::Unavailable("database unreachable".to_owned()));
    }
    if let Some(redis) = &ctx.redis {
        let mut conn = redis.clone();
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if let Err(err) = pong {
            tracing::warn!(error = %err, "readiness: redis unreachable");
            return Err(Error::Unavailable("redis unreachable".to_owned()));
        }
    }
    Ok(axum::Json(Health { status: "ready" }))
}

/// Prometheus text exposition: request counts and latency by matched route, and more.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(ctx): State<ApiContext>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(),
    )
}
