//! `/api/v1/rooms/*`: rooms and their members.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, ClientIp, Json, RoomId};
use super::{timestamp, ApiContext};
use crate::app::rooms::{self, RoomView};
use crate::db::MemberRow;
use crate::domain::{Role, ValidationError};
use crate::error::{Error, Result};
use crate::ratelimit::Bucket;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(get_room, delete_room))
        .routes(routes!(add_member, list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(presence))
}

/// The `{id}` and `{user_id}` of a member route; anything that isn't an id is a 404.
fn member_path(raw: &(String, String)) -> Result<(i64, i64)> {
    let id = |s: &str| s.parse::<i64>().ok().filter(|v| *v > 0);
    match (id(&raw.0), id(&raw.1)) {
        (Some(room), Some(user)) => Ok((room, user)),
        (None, _) => Err(Error::NotFound("room")),
        (_, None) => Err(Error::NotFound("member")),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRoleRequest {
    /// `moderator` or `member`.
    #[schema(value_type = AssignableRole)]
    pub role: String,
}

/// A role that can be given to a member: ownership never changes hands. (Schema only: the
/// handlers parse the string themselves, so an unknown role is a 422 on `role`.)
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum AssignableRole {
    Moderator,
    Member,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceDto {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// Has a user WebSocket (`/api/v1/ws`) open.
    pub online: bool,
    /// In the room's call now.
    pub in_call: bool,
    /// Participants of this member in the call (tabs, devices).
    pub participants: usize,
}

/// Change a member's role (owner only). Broadcast to the room as `role_changed`.
#[utoipa::path(patch, path = "/rooms/{id}/members/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id"), ("user_id" = i64, Path, minimum = 1, description = "The member")),
    request_body = ChangeRoleRequest,
    responses(
        (status = 200, description = "The member with the new role", body = MemberDto),
        (status = 403, description = "Not the owner, or the owner role involved", body = ErrorBody),
        (status = 404, description = "No such room or member", body = ErrorBody),
        (status = 422, description = "Unknown role", body = ErrorBody),
    ))]
async fn change_role(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(raw): Path<(String, String)>,
    Json(req): Json<ChangeRoleRequest>,
) -> Result<axum::Json<MemberDto>> {
    let (room_id, target) = member_path(&raw)?;
    let role: Role = req
        .role
        .parse()
        .map_err(|e: crate::domain::ParseRoleError| ValidationError::new("role", e.to_string()))?;
    let member = rooms::change_role(&ctx.store, &ctx.hub, user.id, room_id, target, role).await?;
    Ok(axum::Json(member.into()))
}

/// Remove a member: their sockets and media in the room are closed, and they can't rejoin
/// until added again. Owner removes anyone else; moderators remove members.
#[utoipa::path(delete, path = "/rooms/{id}/members/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id"), ("user_id" = i64, Path, minimum = 1, description = "The member")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The caller doesn't outrank the member", body = ErrorBody),
        (status = 404, description = "No such room or member", body = ErrorBody),
    ))]
async fn remove_member(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(raw): Path<(String, String)>,
) -> Result<StatusCode> {
    let (room_id, target) = member_path(&raw)?;
    rooms::remove_member(&ctx.store, &ctx.hub, user.id, room_id, target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members with presence: online (user socket open) and in the call.
#[utoipa::path(get, path = "/rooms/{id}/presence", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")),
    responses(
        (status = 200, description = "Every member, owner first", body = [PresenceDto]),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn presence(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(room_id): RoomId,
) -> Result<axum::Json<Vec<PresenceDto>>> {
    let list = rooms::presence(&ctx.store, &ctx.hub, user.id, room_id).await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|p| PresenceDto {
                user_id: p.member.user_id,
                username: p.member.username,
                role: p.member.role,
                online: p.online,
                in_call: p.in_call > 0,
                participants: p.in_call,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRoomRequest {
    /// 1-100 characters after trimming surrounding whitespace, no control characters.
    #[schema(
        pattern = r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F](?:[^\u0000-\u001F\u007F-\u009F]{0,98}[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F])?[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomDto {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub created_at: String,
    /// The caller's role in this room.
    pub role: Role,
}

impl From<RoomView> for RoomDto {
    fn from(view: RoomView) -> Self {
        Self {
            id: view.room.id,
            name: view.room.name,
            owner_id: view.room.owner_id,
            created_at: timestamp(view.room.created_at),
            role: view.role,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMemberRequest {
    #[schema(min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// `moderator` or `member` (default `member`).
    #[serde(default)]
    #[schema(value_type = Option<AssignableRole>)]
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub joined_at: String,
}

impl From<MemberRow> for MemberDto {
    fn from(m: MemberRow) -> Self {
        Self {
            user_id: m.user_id,
            username: m.username,
            role: m.role,
            joined_at: timestamp(m.joined_at),
        }
    }
}

/// Create a room; the caller becomes its owner.
#[utoipa::path(post, path = "/rooms", tag = "rooms", security(("bearer" = [])), request_body = CreateRoomRequest,
    responses(
        (status = 201, description = "Created", body = RoomDto),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "`room_limit`: the caller owns `MAX_ROOMS_PER_USER` rooms already", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
        (status = 429, description = "Too many rooms created; see Retry-After", body = ErrorBody),
    ))]
async fn create_room(
    State(ctx): State<ApiContext>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(req): Json<CreateRoomRequest>,
) -> Result<(StatusCode, axum::Json<RoomDto>)> {
    ctx.rate_limit(Bucket::RoomCreate, ip).await?;
    let max_owned = ctx.settings.caps.rooms_per_user;
    let view = rooms::create(&ctx.store, user.id, &req.name, max_owned).await?;
    Ok((StatusCode::CREATED, axum::Json(view.into())))
}

/// Rooms listed per page when the client doesn't say, and at most.
const ROOM_PAGE_MAX: u32 = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomListQuery {
    /// Rooms with ids below this one: the next page (from the `Link` header).
    pub before: Option<i64>,
    /// Page size, 1-200 (default 200; other values are clamped).
    #[param(minimum = 0, maximum = 4_294_967_295_u64)]
    pub limit: Option<u32>,
}

/// The rooms the caller belongs to, newest first, a page at a time. The body stays a bare
/// array (what clients before paging read); when more rooms follow, a `Link` header with
/// `rel="next"` gives the next page's URL.
#[utoipa::path(get, path = "/rooms", tag = "rooms", security(("bearer" = [])),
    params(RoomListQuery),
    responses(
        (status = 200, description = "Rooms with the caller's role", body = [RoomDto],
            headers(("Link" = String, description = "`</api/v1/rooms?before=ID&limit=N>; rel=\"next\"` when more rooms follow"))),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
async fn list_rooms(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Query(query): Query<RoomListQuery>,
) -> Result<axum::response::Response> {
    let limit = query.limit.unwrap_or(ROOM_PAGE_MAX).clamp(1, ROOM_PAGE_MAX);
    let page = rooms::list(&ctx.store, user.id, query.before, limit as usize).await?;
    let body = axum::Json(
        page.rooms
            .into_iter()
            .map(RoomDto::from)
            .collect::<Vec<_>>(),
    );
    let mut res = body.into_response();
    if let Some(before) = page.next_before {
        let link = format!("</api/v1/rooms?before={before}&limit={limit}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            res.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(res)
}

/// One room (members only).
#[utoipa::path(get, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")),
    responses(
        (status = 200, description = "The room", body = RoomDto),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn get_room(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(id): RoomId,
) -> Result<axum::Json<RoomDto>> {
    Ok(axum::Json(
        rooms::get(&ctx.store, user.id, id).await?.into(),
    ))
}

/// Delete a room (owner only).
#[utoipa::path(delete, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller is a member but not the owner", body = ErrorBody),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn delete_room(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(id): RoomId,
) -> Result<StatusCode> {
    rooms::delete(&ctx.store, &ctx.hub, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a user to the room. Owners add moderators and members; moderators add members.
#[utoipa::path(post, path = "/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")), request_body = AddMemberRequest,
    responses(
        (status = 201, description = "Added", body = MemberDto),
        (status = 403, description = "The caller's role can't add this role", body = ErrorBody),
        (status = 404, description = "No such room or user", body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
        (status = 422, description = "Invalid username or role", body = ErrorBody),
    ))]
async fn add_member(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(id): RoomId,
    Json(req): Json<AddMemberRequest>,
) -> Result<(StatusCode, axum::Json<MemberDto>)> {
    let role = match req.role.as_deref() {
        None => Role::Member,
        Some(raw) => raw.parse().map_err(|e: crate::domain::ParseRoleError| {
            ValidationError::new("role", e.to_string())
        })?,
    };
    let member = rooms::add_member(&ctx.store, user.id, id, &req.username, role).await?;
    Ok((StatusCode::CREATED, axum::Json(member.into())))
}

/// The room's members (members only), owner first.
#[utoipa::path(get, path = "/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")),
    responses(
        (status = 200, description = "Members with their roles", body = [MemberDto]),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn list_members(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(id): RoomId,
) -> Result<axum::Json<Vec<MemberDto>>> {
    let members = rooms::members(&ctx.store, user.id, id).await?;
    Ok(axum::Json(
        members.into_iter().map(MemberDto::from).collect(),
    ))
}
