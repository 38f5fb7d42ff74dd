//! `/api/v1/rooms/{id}/invites` and `/api/v1/invites/*`: ringing people into a room's call.
//! The ringing itself goes over the user WebSocket (`invite`, `invite_ended`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use signaling::protocol::Invite;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json, RoomId};
use super::ApiContext;
use crate::db::UserRow;
use crate::error::{Error, Result};
use crate::invites::InviteDeps;
use crate::ratelimit::Bucket;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create_invite))
        .routes(routes!(list_invites))
        .routes(routes!(accept_invite))
        .routes(routes!(decline_invite))
        .routes(routes!(cancel_invite))
}

fn deps(ctx: &ApiContext) -> InviteDeps<'_> {
    InviteDeps {
        store: &ctx.store,
        hub: &ctx.hub,
        push: &ctx.push,
    }
}

/// Invite ids are 32 hex digits; anything else can't name a pending invite.
fn invite_id(raw: &str) -> Result<&str> {
    if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw)
    } else {
        Err(Error::NotFound("invite"))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateInviteRequest {
    /// Who to ring (not yourself).
    #[schema(min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitesDto {
    /// Ringing you.
    pub incoming: Vec<Invite>,
    /// You are calling them.
    pub outgoing: Vec<Invite>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedDto {
    /// The room to open and join: you are a member now.
    pub room_id: i64,
}

/// Ring a user into this room's call (any member may, `RATE_LIMIT_INVITE` a minute). Their
/// open tabs ring until they accept or decline, you cancel, or it times out
/// (`INVITE_TIMEOUT_SECS`); with no tab open they get a push notification. Someone a
/// moderator removed from the room can be invited back only by a moderator or the owner.
#[utoipa::path(post, path = "/rooms/{id}/invites", tag = "invites", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")),
    request_body = CreateInviteRequest,
    responses(
        (status = 201, description = "Ringing", body = Invite),
        (status = 403, description = "A moderator removed them; only a moderator or the owner can invite them back", body = ErrorBody),
        (status = 404, description = "No such room (or you are not a member), or no such user", body = ErrorBody),
        (status = 409, description = "`busy`: they are in a call; `invite_pending`: already ringing for this room", body = ErrorBody),
        (status = 422, description = "Inviting yourself, or a malformed username", body = ErrorBody),
        (status = 429, description = "Too many invites", body = ErrorBody),
    ))]
async fn create_invite(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(room_id): RoomId,
    Json(req): Json<CreateInviteRequest>,
) -> Result<(StatusCode, axum::Json<Invite>)> {
    ctx.rate_limit_user(Bucket::Invite, user.id).await?;
    let from = UserRow {
        id: user.id,
        username: user.username,
        created_at: user.created_at,
    };
    let invite = ctx
        .invites
        .invite(deps(&ctx), &from, room_id, &req.username)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(invite)))
}

/// Your pending invites, both ways (a tab that opens while one rings shows it).
#[utoipa::path(get, path = "/invites", tag = "invites", security(("bearer" = [])),
    responses((status = 200, description = "Pending invites", body = InvitesDto)))]
async fn list_invites(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<axum::Json<InvitesDto>> {
    let (incoming, outgoing) = ctx.invites.pending(user.id).await?;
    Ok(axum::Json(InvitesDto { incoming, outgoing }))
}

/// Accept an invite to you: you become a member of the room; open it and join the call.
#[utoipa::path(post, path = "/invites/{invite_id}/accept", tag = "invites", security(("bearer" = [])),
    params(("invite_id" = String, Path, pattern = r"^[0-9a-fA-F]{32}$", description = "32 hex digits")),
    responses(
        (status = 200, description = "Accepted", body = AcceptedDto),
        (status = 403, description = "A moderator removed you, and the invite is not from a moderator or the owner", body = ErrorBody),
        (status = 404, description = "No such pending invite to you (ended, or the room is gone)", body = ErrorBody),
    ))]
async fn accept_invite(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<axum::Json<AcceptedDto>> {
    let room_id = ctx
        .invites
        .accept(deps(&ctx), user.id, invite_id(&raw)?)
        .await?;
    Ok(axum::Json(AcceptedDto { room_id }))
}

/// Decline an invite to you.
#[utoipa::path(post, path = "/invites/{invite_id}/decline", tag = "invites", security(("bearer" = [])),
    params(("invite_id" = String, Path, pattern = r"^[0-9a-fA-F]{32}$", description = "32 hex digits")),
    responses(
        (status = 204, description = "Declined"),
        (status = 404, description = "No such pending invite to you", body = ErrorBody),
    ))]
async fn decline_invite(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    ctx.invites
        .decline(&ctx.hub, user.id, invite_id(&raw)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancel an invite you sent (hang up before they answer).
#[utoipa::path(delete, path = "/invites/{invite_id}", tag = "invites", security(("bearer" = [])),
    params(("invite_id" = String, Path, pattern = r"^[0-9a-fA-F]{32}$", description = "32 hex digits")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "No such pending invite from you", body = ErrorBody),
    ))]
async fn cancel_invite(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    ctx.invites
        .cancel(&ctx.hub, user.id, invite_id(&raw)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
