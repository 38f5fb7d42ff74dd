//! The per-connection loops, one task per socket, written over `Sink<Frame>` and
//! `Stream<Item = Result<Frame, E>>` so tests can drive them with channels and the `api`
//! crate with axum's WebSocket.
//!
//! Each loop `select!`s on the next client frame, the next event for this socket, the ping
//! timer and the node's shutdown. A bad frame is answered with an `error` message and
//! affects nobody else; a client that keeps sending bad frames, floods one message type, or
//! stops reading what it is sent is disconnected — never the others.
//!
//! - [`frame`]: frames and close codes, independent of the WebSocket library.
//! - `conn`: the sending half with its send timeout and abuse strikes; why a loop ended.
//! - `room`: the room socket's loop and its commands.
//! - `call_media`: the socket's media connection in the SFU.
//! - `errands`: commands that wait on the database or a model, run beside the loop.
//! - `user`: the user socket's loop (DMs, presence).

mod call_media;
mod conn;
mod errands;
pub mod frame;
mod room;
mod user;

#[cfg(test)]
mod tests;

pub use frame::{close_codes, CloseFrame, Frame};
pub use room::run_room;
pub use user::run_user;

use crate::protocol::{RoomId, UserId};

/// Who is on the other end of a room socket. Authenticated and checked to be a member
/// before the upgrade.
#[derive(Debug, Clone)]
pub struct RoomSession {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub username: String,
}
