//! `/api/v1/rooms/{id}/messages`: room chat over HTTP (the same use cases as the WebSocket).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use signaling::protocol::ChatMessage;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json, RoomId};
use super::ApiContext;
use crate::app::chat;
use crate::error::Result;
use crate::ratelimit::Bucket;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(post_message, list_messages))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PostMessageRequest {
    /// 1-4000 characters, not only whitespace. Plain text: stored and returned verbatim.
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessageDto {
    pub id: i64,
    pub room_id: i64,
    pub user_id: i64,
    pub username: String,
    pub text: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<ChatMessage> for ChatMessageDto {
    fn from(m: ChatMessage) -> Self {
        Self {
            id: m.id,
            room_id: m.room_id,
            user_id: m.user_id,
            username: m.username,
            text: m.text,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryDto {
    /// Newest first; with `after`, oldest first.
    pub messages: Vec<ChatMessageDto>,
    /// More messages exist in the direction asked for.
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Messages older than this id (newest first).
    pub before: Option<i64>,
    /// Messages newer than this id, oldest first: what a reconnecting client missed.
    pub after: Option<i64>,
    /// Page size, 1-200 (default 50; larger values are capped).
    pub limit: Option<u32>,
}

/// Send a chat message to the room; it is stored, then broadcast to the room's sockets.
#[utoipa::path(post, path = "/rooms/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Room id")), request_body = PostMessageRequest,
    responses(
        (status = 201, description = "Stored and broadcast", body = ChatMessageDto),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
        (status = 422, description = "Empty, whitespace-only, too long or control characters", body = ErrorBody),
        (status = 429, description = "Too many messages; see Retry-After", body = ErrorBody),
    ))]
async fn post_message(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(room_id): RoomId,
    Json(req): Json<PostMessageRequest>,
) -> Result<(StatusCode, axum::Json<ChatMessageDto>)> {
    ctx.rate_limit_user(Bucket::Chat, user.id).await?;
    let message = chat::post(ctx.chat_deps(), user.id, &user.username, room_id, req.text).await?;
    Ok((StatusCode::CREATED, axum::Json(message.into())))
}

/// Chat history (members only): newest first, or with `after` what came since.
#[utoipa::path(get, path = "/rooms/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Room id"), HistoryQuery),
    responses(
        (status = 200, description = "A page of messages", body = HistoryDto),
        (status = 400, description = "Both before and after given", body = ErrorBody),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn list_messages(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(room_id): RoomId,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<HistoryDto>> {
    let (messages, has_more) = chat::history(
        &ctx.store,
        user.id,
        room_id,
        query.before,
        query.after,
        query.limit,
    )
    .await?;
    Ok(axum::Json(HistoryDto {
        messages: messages.into_iter().map(ChatMessageDto::from).collect(),
        has_more,
    }))
}
