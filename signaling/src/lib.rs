//! WebCall's WebSocket side: the wire protocol, room call state, the per-connection loops and
//! the cross-node bus. No HTTP framework, database or Redis here: the `api` crate implements
//! [`service::RoomService`] and [`bus::Bus`] and adapts its WebSocket to [`connection::Frame`].
//!
//! - [`protocol`]: `ClientMessage` / `ServerMessage`, ids, error codes.
//! - [`room`]: who is in each room's call, and the fan-out channel per room.
//! - [`hub`]: one node's rooms and user sockets, and the dispatcher of bus events.
//! - [`connection`]: the room-socket and user-socket loops over `Sink + Stream`.
//! - [`limits`]: sockets per user and message rates per type.
//! - [`service`]: what the loops need from the application (storage, permissions).
//! - [`bus`]: cross-node publish/subscribe, with the in-process [`bus::LocalBus`].
//! - [`media`]: the hook through which mutes and removals reach the media plane.

pub mod bus;
pub mod connection;
pub mod hub;
pub mod ice;
pub mod limits;
pub mod media;
pub mod nodes;
pub mod protocol;
pub mod room;
pub mod service;
pub mod sessions;

pub use bus::{Bus, LocalBus};
pub use hub::{Hub, HubConfig};
pub use media::{Media, MediaControl, NoMedia};
