//! `/api/v1/rooms/{id}/summary` and `/summaries`: the AI agent's summaries.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use signaling::protocol::Summary;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, RoomId};
use super::ApiContext;
use crate::app::summaries;
use crate::app::telegram::Delivery;
use crate::error::Result;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(post_summary))
        .routes(routes!(list_summaries))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryOutcomeDto {
    pub summary: Summary,
    /// `false`: the session was summarised before and this is the stored summary.
    pub created: bool,
    /// What happened to the Telegram delivery.
    pub telegram: Delivery,
}

/// Stops the room's AI agent and summarises its session (see docs/agent.md). The agent's
/// starter, moderators and the owner may stop a running agent; any member may ask for the
/// summary of an ended session, which is written once and then returned as stored.
#[utoipa::path(post, path = "/rooms/{id}/summary", tag = "agent", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")),
    responses(
        (status = 201, description = "Written, stored, sent to the room and Telegram", body = SummaryOutcomeDto),
        (status = 200, description = "The session's stored summary", body = SummaryOutcomeDto),
        (status = 403, description = "The agent runs and the caller may not stop it", body = ErrorBody),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn post_summary(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(id): RoomId,
) -> Result<(StatusCode, axum::Json<SummaryOutcomeDto>)> {
    // In a task of its own: a client that gives up (or a timeout) must not cancel a summary
    // halfway, after the agent was stopped but before the summary was stored. The hub's
    // tracker owns it, so shutdown waits for it too.
    let tasks = ctx.hub.tasks().clone();
    let task = tasks.spawn(async move { ctx.summaries.summarise(ctx.deps(), id, user.id).await });
    let outcome = task.await??;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(SummaryOutcomeDto {
            summary: outcome.summary,
            created: outcome.created,
            telegram: outcome.delivery,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// At most this many (1-100, default 20).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummariesDto {
    pub room_id: i64,
    /// Newest first.
    pub summaries: Vec<Summary>,
}

/// The room's summaries (members only), newest first.
#[utoipa::path(get, path = "/rooms/{id}/summaries", tag = "agent", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id"), ListParams),
    responses(
        (status = 200, description = "Stored summaries", body = SummariesDto),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn list_summaries(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(id): RoomId,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<SummariesDto>> {
    let list = summaries::list(&ctx.store, user.id, id, params.limit.unwrap_or(20)).await?;
    Ok(axum::Json(SummariesDto {
        room_id: id,
        summaries: list,
    }))
}
