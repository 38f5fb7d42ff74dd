//! The WebSockets: `/api/v1/rooms/{id}/ws` (call, chat, moderation) and `/api/v1/ws` (DMs,
//! presence, later notifications). The protocol is in `docs/protocol.md`.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use signaling::connection::{run_room, run_user, RoomSession};
use signaling::limits::SocketKind;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, RoomId, WsUser};
use super::ApiContext;
use crate::app::rooms;
use crate::auth::TicketGrant;
use crate::error::{Error, Result};
use crate::realtime::{adapt, ApiRoomService};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(room_socket))
        .routes(routes!(user_socket))
        .routes(routes!(ws_ticket))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicketDto {
    /// Put in the WebSocket URL as `?ticket=`; works once.
    pub ticket: String,
    /// Seconds until the ticket expires unused.
    pub expires_in: u64,
}

/// Get a single-use ticket for opening a WebSocket (browsers can't send `Authorization` on
/// one). It lasts `WS_TICKET_TTL_SECS` (30 s) and works once, on any node; get a new one for
/// every (re)connect.
#[utoipa::path(post, path = "/ws-ticket", tag = "realtime", security(("bearer" = [])),
    responses(
        (status = 200, description = "A ticket", body = WsTicketDto),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 503, description = "The ticket store (Redis) is down", body = ErrorBody),
    ))]
async fn ws_ticket(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<axum::Json<WsTicketDto>> {
    let grant = TicketGrant {
        user_id: user.id,
        ver: user.token_version,
        jti: user.token_id,
        exp: user.token_expires,
    };
    let ticket = ctx.tickets.issue(grant).await?;
    Ok(axum::Json(WsTicketDto {
        ticket,
        expires_in: ctx.tickets.ttl().as_secs(),
    }))
}

/// The transport refuses frames this many times the protocol's limit outright (closing the
/// socket); between the two, the protocol answers `frame_too_large` and the socket lives on.
const TRANSPORT_SLACK: usize = 4;

/// Buffers sized for signaling, not bulk transfer. tungstenite's defaults (128 KiB each way
/// per socket) made 1,000 open room sockets cost ~125 MiB of server memory
/// (bench/reports/soak.md); a larger message still grows the buffer as it needs.
const SOCKET_BUFFER: usize = 4 * 1024;

fn sized<F>(ws: WebSocketUpgrade<F>, limit: usize) -> WebSocketUpgrade<F> {
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
}

/// Open a room's WebSocket (members only): join the call, chat, moderate.
#[utoipa::path(get, path = "/rooms/{id}/ws", tag = "realtime", security(("bearer" = [])),
    params(
        ("id" = i64, Path, minimum = 1, description = "Room id"),
        ("ticket" = Option<String>, Query, description = "A single-use ticket from POST /ws-ticket, for browsers that can't set Authorization on a WebSocket"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol (see docs/protocol.md)"),
        (status = 400, description = "Not a WebSocket handshake (`Upgrade: websocket`, `Sec-WebSocket-Key`, version 13), which OpenAPI can't describe (`bad_request`)", body = ErrorBody),
        (status = 401, description = "Missing or bad token, or a used, expired or unknown ticket; `ws_ticket_required` for `?token=`", body = ErrorBody),
        (status = 503, description = "The ticket store (Redis) is down", body = ErrorBody),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
        (status = 429, description = "The user already has `WS_MAX_SOCKETS_PER_USER` room sockets open (`too_many_sockets`)", body = ErrorBody),
    ))]
async fn room_socket(
    State(ctx): State<ApiContext>,
    WsUser(user): WsUser,
    RoomId(room_id): RoomId,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    // Refused before the upgrade, with the usual JSON error.
    rooms::get(&ctx.store, user.id, room_id).await?;
    let permit = ctx
        .hub
        .open_socket(user.id, SocketKind::Room)
        .map_err(|e| Error::TooManySockets(e.to_string()))?;
    // The socket's task belongs to the hub's tracker: shutdown waits for it to leave.
    let owner = ctx.hub.tasks().token();
    let hub = ctx.hub.clone();
    let limit = hub.config().max_frame_bytes * TRANSPORT_SLACK;
    let service = Arc::new(ApiRoomService { ctx: ctx.clone() });
    // Signing out (or a password change, or deleting the account) closes the socket.
    let signed_in = hub.register_session(user.id, &user.token_id);
    let session = RoomSession {
        room_id,
        user_id: user.id,
        username: user.username,
    };
    Ok(sized(ws, limit).on_upgrade(move |socket| async move {
        let (sink, stream) = adapt(socket);
        run_room(hub, service, session, signed_in.ended(), sink, stream).await;
        drop((permit, owner, signed_in));
    }))
}

/// Open the signed-in user's WebSocket: DMs and read receipts as they happen; being
/// connected makes the user "online".
#[utoipa::path(get, path = "/ws", tag = "realtime", security(("bearer" = [])),
    params(("ticket" = Option<String>, Query, description = "A single-use ticket from POST /ws-ticket, for browsers")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol (see docs/protocol.md)"),
        (status = 400, description = "Not a WebSocket handshake (`Upgrade: websocket`, `Sec-WebSocket-Key`, version 13), which OpenAPI can't describe (`bad_request`)", body = ErrorBody),
        (status = 429, description = "The user already has `WS_MAX_SOCKETS_PER_USER` user sockets open (`too_many_sockets`)", body = ErrorBody),
        (status = 401, description = "Missing or bad token, or a used, expired or unknown ticket; `ws_ticket_required` for `?token=`", body = ErrorBody),
        (status = 503, description = "The ticket store (Redis) is down", body = ErrorBody),
    ))]
async fn user_socket(
    State(ctx): State<ApiContext>,
    WsUser(user): WsUser,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let permit = ctx
        .hub
        .open_socket(user.id, SocketKind::User)
        .map_err(|e| Error::TooManySockets(e.to_string()))?;
    let owner = ctx.hub.tasks().token();
    // A tab is open: from here on the user sees messages as they come.
    ctx.push.seen(user.id).await;
    let hub = ctx.hub.clone();
    let limit = hub.config().max_frame_bytes * TRANSPORT_SLACK;
    let signed_in = hub.register_session(user.id, &user.token_id);
    Ok(sized(ws, limit).on_upgrade(move |socket| async move {
        let (sink, stream) = adapt(socket);
        run_user(hub, user.id, signed_in.ended(), sink, stream).await;
        drop((permit, owner, signed_in));
    }))
}
