//! `/api/v1/ai/prompt`: the caller's system prompt for the summaries they trigger.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json};
use super::ApiContext;
use crate::app::prompts::{self, PromptState};
use crate::error::Result;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(get_prompt, put_prompt, delete_prompt))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromptDto {
    pub prompt: String,
    /// `true`: the server's default prompt (no custom one is saved).
    pub is_default: bool,
}

impl From<PromptState> for PromptDto {
    fn from(s: PromptState) -> Self {
        Self {
            prompt: s.prompt,
            is_default: s.is_default,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutPromptRequest {
    /// 10-4000 characters after trimming surrounding whitespace. Saving the default text
    /// keeps the default.
    #[schema(
        pattern = r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]{8,3998}[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub prompt: String,
}

/// The prompt in force for the caller.
#[utoipa::path(get, path = "/ai/prompt", tag = "agent", security(("bearer" = [])),
    responses((status = 200, description = "The caller's prompt", body = PromptDto)))]
async fn get_prompt(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<axum::Json<PromptDto>> {
    Ok(axum::Json(prompts::get(&ctx.store, user.id).await?.into()))
}

/// Saves the caller's own prompt.
#[utoipa::path(put, path = "/ai/prompt", tag = "agent", security(("bearer" = [])),
    request_body = PutPromptRequest,
    responses(
        (status = 200, description = "Saved", body = PromptDto),
        (status = 422, description = "Shorter than 10 or longer than 4000 characters", body = ErrorBody),
    ))]
async fn put_prompt(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Json(req): Json<PutPromptRequest>,
) -> Result<axum::Json<PromptDto>> {
    Ok(axum::Json(
        prompts::put(&ctx.store, user.id, &req.prompt).await?.into(),
    ))
}

/// Back to the default prompt.
#[utoipa::path(delete, path = "/ai/prompt", tag = "agent", security(("bearer" = [])),
    responses((status = 200, description = "The default prompt", body = PromptDto)))]
async fn delete_prompt(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<axum::Json<PromptDto>> {
    Ok(axum::Json(
        prompts::reset(&ctx.store, user.id).await?.into(),
    ))
}
