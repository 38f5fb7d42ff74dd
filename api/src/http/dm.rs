//! `/api/v1/dm`: direct messages, plain or end-to-end encrypted.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use signaling::protocol::DirectMessage;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json};
use super::ApiContext;
use crate::app::dm::{self, DmInput};
use crate::db::UserRow;
use crate::error::Result;
use crate::ratelimit::Bucket;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(send_dm, list_dms))
        .routes(routes!(conversations))
        .routes(routes!(mark_read))
}

fn me(user: AuthUser) -> UserRow {
    UserRow {
        id: user.id,
        username: user.username,
        created_at: user.created_at,
    }
}

/// Either `text`, or all four encrypted fields (see docs/e2ee.md).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendDmRequest {
    /// Plain text (1-4000 characters), when either side has no key.
    pub text: Option<String>,
    /// AES-256-GCM ciphertext with its tag, base64.
    pub ciphertext: Option<String>,
    /// The 12-byte GCM IV, base64.
    pub iv: Option<String>,
    /// The sender's published key id used for the ECDH.
    pub sender_key_id: Option<String>,
    /// The recipient's published key id used for the ECDH.
    pub recipient_key_id: Option<String>,
}

/// The schema of [`SendDmRequest`]: exactly one of the two shapes. (The handler reads the
/// flat struct and checks the same rule itself, answering 422.)
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SendDmBody {
    Plain(PlainDm),
    Encrypted(EncryptedDm),
}

/// A plain DM, when either side has no key.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct PlainDm {
    /// 1-4000 characters, not only whitespace, no control characters but newline and tab.
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub text: String,
}

/// An end-to-end encrypted DM (see docs/e2ee.md). Both key ids must name keys the two users
/// published, or it is refused with 422.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct EncryptedDm {
    /// AES-256-GCM ciphertext with its tag, base64 or base64url.
    #[schema(min_length = 1, max_length = 24576, pattern = r"^[A-Za-z0-9+/_=-]+$")]
    pub ciphertext: String,
    /// The 12-byte GCM IV, base64 or base64url.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9+/_=-]+$")]
    pub iv: String,
    /// The sender's published key id used for the ECDH.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub sender_key_id: String,
    /// The recipient's published key id used for the ECDH.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub recipient_key_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DmDto {
    pub id: i64,
    pub sender: String,
    pub recipient: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_key_id: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
}

impl From<DirectMessage> for DmDto {
    fn from(m: DirectMessage) -> Self {
        Self {
            id: m.id,
            sender: m.sender,
            recipient: m.recipient,
            text: m.text,
            ciphertext: m.ciphertext,
            iv: m.iv,
            sender_key_id: m.sender_key_id,
            recipient_key_id: m.recipient_key_id,
            created_at: m.created_at,
            read_at: m.read_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDto {
    pub user_id: i64,
    pub username: String,
    /// The other user has a user WebSocket open.
    pub online: bool,
    pub last_message: DmDto,
    /// Their messages you haven't marked read.
    pub unread: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Messages older than this id.
    pub before: Option<i64>,
    /// 1-200, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MarkReadRequest {
    /// Mark their messages up to this id read (default: all).
    pub up_to: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedDto {
    pub marked: u64,
}

/// Send a direct message; it is pushed to both users' WebSockets.
#[utoipa::path(post, path = "/dm/{username}", tag = "dm", security(("bearer" = [])),
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9_.-]{3,32}$", description = "The recipient")), request_body = SendDmBody,
    responses(
        (status = 201, description = "Stored and pushed", body = DmDto),
        (status = 400, description = "`dm_to_self`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Bad text, or missing/invalid encrypted fields or unknown key ids; `field` names which", body = ErrorBody),
        (status = 429, description = "Too many messages", body = ErrorBody),
    ))]
async fn send_dm(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(username): Path<String>,
    Json(req): Json<SendDmRequest>,
) -> Result<(StatusCode, axum::Json<DmDto>)> {
    ctx.rate_limit_user(Bucket::Chat, user.id).await?;
    let input = DmInput {
        text: req.text,
        ciphertext: req.ciphertext,
        iv: req.iv,
        sender_key_id: req.sender_key_id,
        recipient_key_id: req.recipient_key_id,
    };
    let message = dm::send(&ctx.store, &ctx.hub, &ctx.push, &me(user), &username, input).await?;
    Ok((StatusCode::CREATED, axum::Json(message.into())))
}

/// The conversation with a user, newest first.
#[utoipa::path(get, path = "/dm/{username}", tag = "dm", security(("bearer" = [])),
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9_.-]{3,32}$", description = "The other user"), PageQuery),
    responses(
        (status = 200, description = "A page of messages", body = [DmDto]),
        (status = 400, description = "`dm_to_self`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
async fn list_dms(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(username): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Vec<DmDto>>> {
    let page = dm::page(&ctx.store, &me(user), &username, query.before, query.limit).await?;
    Ok(axum::Json(page.into_iter().map(DmDto::from).collect()))
}

/// Your conversations: the last message and unread count of each, most recent first.
#[utoipa::path(get, path = "/dm", tag = "dm", security(("bearer" = [])),
    responses((status = 200, description = "Conversations", body = [ConversationDto])))]
async fn conversations(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<axum::Json<Vec<ConversationDto>>> {
    let list = dm::conversations(&ctx.store, &ctx.hub, &me(user)).await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|c| ConversationDto {
                user_id: c.peer.id,
                username: c.peer.username,
                online: c.online,
                last_message: c.last.into(),
                unread: c.unread,
            })
            .collect(),
    ))
}

/// Mark a user's messages to you read; they get a `dm_read` on their WebSocket.
#[utoipa::path(post, path = "/dm/{username}/read", tag = "dm", security(("bearer" = [])),
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9_.-]{3,32}$", description = "The other user")), request_body = MarkReadRequest,
    responses(
        (status = 200, description = "How many messages were newly marked", body = MarkedDto),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
async fn mark_read(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(username): Path<String>,
    Json(req): Json<MarkReadRequest>,
) -> Result<axum::Json<MarkedDto>> {
    let marked = dm::mark_read(&ctx.store, &ctx.hub, &me(user), &username, req.up_to).await?;
    Ok(axum::Json(MarkedDto { marked }))
}
