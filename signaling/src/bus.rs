//! Cross-node fan-out. Every node publishes what happened (someone joined, a chat message was
//! stored, a mute changed) and every node, itself included, receives it and updates its view
//! and its local sockets. [`LocalBus`] serves a single node; the `api` crate has a Redis
//! pub/sub implementation for several nodes on one Redis.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::protocol::{
    ChatMessage, LeaveReason, ParticipantId, ParticipantInfo, Role, RoomId, ServerMessage, Summary,
    UserId,
};

/// A boxed future, so that the traits of this crate can be used as `dyn Trait`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many envelopes a slow subscriber may fall behind before it loses some.
pub const BUS_CAPACITY: usize = 4096;

/// One published event and the node it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The publishing node's tag (see [`ParticipantId::new`]).
    pub origin: u32,
    pub event: BusEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusEvent {
    /// Something happened in a room's call or chat.
    Room { room_id: RoomId, event: RoomEvent },
    /// A message for every socket of one user (a DM, a read receipt, later invites).
    User {
        user_id: UserId,
        message: ServerMessage,
    },
    /// A node is alive (every [`crate::hub::HubConfig::node_heartbeat`]); `incarnation`
    /// changes when it restarts.
    Heartbeat { node: u32, incarnation: u64 },
    /// Sessions of `user_id` ended: every node closes the sockets they opened.
    SessionsEnded {
        user_id: UserId,
        ending: crate::sessions::Ending,
    },
    /// `node` now holds `connections` user sockets of `user_id`. Absolute counts rather than
    /// deltas, so a repeated or reordered event can't leave a user online forever.
    Presence {
        user_id: UserId,
        node: u32,
        connections: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEvent {
    Joined {
        participant: ParticipantInfo,
    },
    Left {
        participant_id: ParticipantId,
        user_id: UserId,
        reason: LeaveReason,
    },
    Chat {
        message: ChatMessage,
    },
    MuteChanged {
        participant_id: ParticipantId,
        muted: bool,
        mute_locked: bool,
        by_user_id: UserId,
    },
    UnmuteRequested {
        participant_id: ParticipantId,
        by_user_id: UserId,
    },
    RoleChanged {
        user_id: UserId,
        role: Role,
        by_user_id: UserId,
    },
    MemberRemoved {
        user_id: UserId,
        by_user_id: UserId,
    },
    /// The room is gone: every node ends its call and closes its sockets.
    RoomDeleted {
        by_user_id: UserId,
    },
    Transcription {
        active: bool,
        by_user_id: UserId,
        /// The room's language set at the start (nodes that follow use it too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    /// A caption ([`ServerMessage::Caption`] or [`ServerMessage::CaptionPartial`]), passed
    /// through to the room's sockets.
    Caption {
        caption: ServerMessage,
    },
    /// A new summary of the room's agent session.
    Summary {
        summary: Summary,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus publish failed: {0}")]
    Publish(String),
    #[error("bus message could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Publish/subscribe between the nodes of one deployment.
pub trait Bus: Send + Sync + 'static {
    /// Sends `envelope` to every node, this one included.
    ///
    /// # Errors
    /// [`BusError`] when the transport refuses it; the event then reached nobody.
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>>;

    /// Every envelope published from now on, by any node, in one order for all subscribers.
    fn subscribe(&self) -> broadcast::Receiver<Envelope>;
}

/// The single-node bus: a tokio broadcast channel.
#[derive(Debug, Clone)]
pub struct LocalBus {
    tx: broadcast::Sender<Envelope>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus for LocalBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        // No subscriber is not a failure: nobody is listening on this node yet.
        let _ = self.tx.send(envelope);
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }
}
