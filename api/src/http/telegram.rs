//! `/api/v1/telegram/*`: linking the caller's Telegram chat, and the bot's webhook.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json};
use super::ApiContext;
use crate::app::telegram::{self, LinkStatus, Telegram};
use crate::error::{Error, Result};
use crate::telegram::bot::Update;

/// The header the Bot API sends with every webhook call (the `secret_token` of setWebhook).
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(post_link, delete_link))
        .routes(routes!(get_status))
        .routes(routes!(webhook))
}

fn bot(ctx: &ApiContext) -> Result<&Arc<Telegram>> {
    ctx.telegram.as_ref().ok_or(Error::NotEnabled(
        "Telegram is not enabled on this server (TELEGRAM_BOT_TOKEN)",
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkDto {
    /// Single use; expires after 15 minutes.
    pub token: String,
    /// Open it in Telegram: the bot receives `/start <token>` and links the chat.
    pub deep_link: String,
    pub expires_in_secs: u64,
}

/// Starts linking the caller's Telegram chat (replaces an unused earlier link).
#[utoipa::path(post, path = "/telegram/link", tag = "agent", security(("bearer" = [])),
    responses(
        (status = 201, description = "A deep link to open in Telegram", body = LinkDto),
        (status = 404, description = "`not_enabled`: the server has no bot, or no TELEGRAM_BOT_USERNAME", body = ErrorBody),
    ))]
async fn post_link(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<(StatusCode, axum::Json<LinkDto>)> {
    let (token, deep_link) = bot(&ctx)?.start_link(&ctx.store, user.id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(LinkDto {
            token,
            deep_link,
            expires_in_secs: telegram::LINK_TTL.as_secs(),
        }),
    ))
}

/// Unlinks the caller's chat (and drops a pending link).
#[utoipa::path(delete, path = "/telegram/link", tag = "agent", security(("bearer" = [])),
    responses((status = 204, description = "No link any more")))]
async fn delete_link(State(ctx): State<ApiContext>, user: AuthUser) -> Result<StatusCode> {
    ctx.store.delete_telegram_link(user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusDto {
    pub status: LinkStatus,
}

/// Whether the caller's chat is linked.
#[utoipa::path(get, path = "/telegram/status", tag = "agent", security(("bearer" = [])),
    responses((status = 200, description = "confirmed, pending or absent", body = StatusDto)))]
async fn get_status(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<axum::Json<StatusDto>> {
    Ok(axum::Json(StatusDto {
        status: telegram::status(&ctx.store, user.id).await?,
    }))
}

/// The bot's webhook (called by Telegram). Requests without the configured secret in
/// `X-Telegram-Bot-Api-Secret-Token` are refused and change nothing.
#[utoipa::path(post, path = "/telegram/webhook", tag = "agent",
    params(("X-Telegram-Bot-Api-Secret-Token" = String, Header, description = "The webhook secret (`TELEGRAM_WEBHOOK_SECRET`)")),
    request_body(content = Object, description = "A Telegram Update"),
    responses(
        (status = 200, description = "Handled (a bad link token is answered in the chat)"),
        (status = 401, description = "Missing or wrong secret token", body = ErrorBody),
        (status = 404, description = "`not_enabled`: the server has no bot", body = ErrorBody),
    ))]
async fn webhook(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    Json(update): Json<Update>,
) -> Result<StatusCode> {
    let telegram = bot(&ctx)?;
    let secret = headers.get(SECRET_HEADER).map(|v| v.as_bytes());
    if !telegram.webhook_secret_matches(secret) {
        tracing::warn!("Telegram webhook call without the right secret token: refused");
        return Err(Error::Unauthorized);
    }
    telegram.handle_update(&ctx.store, update).await?;
    Ok(StatusCode::OK)
}
