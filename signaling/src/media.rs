//! The hook through which server-side moderation reaches the media plane.

use crate::protocol::{ParticipantId, RoomId};

/// What the media plane must enforce. Called on the node that holds the participant's
/// connection, after the change is decided and broadcast.
pub trait MediaControl: Send + Sync + 'static {
    /// Stop (or resume) forwarding the participant's audio to everyone else.
    fn set_muted(&self, room: RoomId, participant: ParticipantId, muted: bool);
    /// Close the participant's media: they were removed from the room.
    fn remove_participant(&self, room: RoomId, participant: ParticipantId);
}

/// Until the SFU lands there is no media to control.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn set_muted(&self, _room: RoomId, _participant: ParticipantId, _muted: bool) {}
    fn remove_participant(&self, _room: RoomId, _participant: ParticipantId) {}
}
