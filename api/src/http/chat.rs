//! `/api/v1/rooms/{id}/messages`: room chat over HTTP (the same use cases as the WebSocket).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use signaling::protocol::ChatMessage;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
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
    /// 1-4000 characters, not only whitespace, no control characters but newline and tab.
    /// Plain text: stored and returned verbatim.
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
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

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// Messages older than this id (newest first).
    pub before: Option<i64>,
    /// Messages newer than this id, oldest first: what a reconnecting client missed.
    pub after: Option<i64>,
    /// Page size, 1-200 (default 50; larger values are capped).
    pub limit: Option<u32>,
}

/// The schema of [`HistoryQuery`]. `before` and `after` exclude each other, which separate
/// query parameters can't say; so the page is one exploded (`style=form`) object parameter,
/// whose schema can. utoipa has no `not`, so it goes in as an extension, which serializes
/// in place.
pub struct HistoryPage;

impl PartialSchema for HistoryPage {
    fn schema() -> RefOr<Schema> {
        let id = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .description(Some(description))
        };
        let mut page = ObjectBuilder::new()
            .property("before", id("Messages older than this id (newest first)."))
            .property(
                "after",
                id("Messages newer than this id, oldest first: what a reconnecting client missed. Not with `before`."),
            )
            .property(
                "limit",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                    .minimum(Some(0))
                    .maximum(Some(u32::MAX))
                    .description(Some("Page size, 1-200 (default 50; other values are clamped).")),
            )
            .build();
        page.extensions.get_or_insert_with(Default::default).insert(
            "not".to_owned(),
            serde_json::json!({ "required": ["before", "after"] }),
        );
        Schema::Object(page).into()
    }
}

impl ToSchema for HistoryPage {}

/// Send a chat message to the room; it is stored, then broadcast to the room's sockets.
#[utoipa::path(post, path = "/rooms/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")), request_body = PostMessageRequest,
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
    params(
        ("id" = i64, Path, minimum = 1, description = "Room id"),
        ("page" = inline(HistoryPage), Query, style = Form, explode, description = "`before` or `after` (not both), and `limit`"),
    ),
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
