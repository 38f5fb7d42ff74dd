//! The media plane as signaling sees it: moderation hooks ([`MediaControl`]) and, when the
//! node runs an SFU, the plane itself ([`Media`]) that room sockets join with SDP.

use std::sync::Arc;

use crate::protocol::{MediaCloseReason, MediaState, ParticipantId, RoomId, ServerMessage};

/// What the media plane must enforce. Called on the node that holds the participant's
/// connection, after the change is decided and broadcast.
pub trait MediaControl: Send + Sync + 'static {
    /// Stop (or resume) forwarding the participant's audio to everyone else.
    fn set_muted(&self, room: RoomId, participant: ParticipantId, muted: bool);
    /// Close the participant's media: they were removed from the room.
    fn remove_participant(&self, room: RoomId, participant: ParticipantId);
}

/// A node without a media plane (tests of the chat side, or media disabled).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn set_muted(&self, _room: RoomId, _participant: ParticipantId, _muted: bool) {}
    fn remove_participant(&self, _room: RoomId, _participant: ParticipantId) {}
}

/// The SFU plus what clients need to reach it. A participant's SFU peer id is its
/// participant id, so the SFU's stream ids (`p<id>`) name participants directly.
#[derive(Debug, Clone)]
pub struct Media {
    pub sfu: sfu::Sfu,
    pub ice: Arc<crate::ice::IceServers>,
}

pub fn peer_of(participant: ParticipantId) -> sfu::PeerId {
    sfu::PeerId(participant.0)
}

pub fn room_of(room: RoomId) -> sfu::RoomId {
    sfu::RoomId(room)
}

impl MediaControl for Media {
    fn set_muted(&self, room: RoomId, participant: ParticipantId, muted: bool) {
        self.sfu
            .set_muted(room_of(room), peer_of(participant), muted);
    }

    fn remove_participant(&self, room: RoomId, participant: ParticipantId) {
        self.sfu.leave(room_of(room), peer_of(participant));
    }
}

/// What a peer event from the SFU tells the client, if anything.
pub fn to_client(event: sfu::PeerEvent) -> Option<ServerMessage> {
    use sfu::PeerEvent as E;
    let participant = |p: sfu::PeerId| ParticipantId(p.0);
    Some(match event {
        E::Offer { sdp } => ServerMessage::Offer { sdp },
        E::Connected => return None,
        E::TrackPublished { peer } => ServerMessage::TrackPublished {
            participant_id: participant(peer),
        },
        E::TrackUnpublished { peer } => ServerMessage::TrackUnpublished {
            participant_id: participant(peer),
        },
        E::Speaking { peer, speaking } => ServerMessage::Speaking {
            participant_id: participant(peer),
            speaking,
        },
        E::ActiveSpeaker { peer } => ServerMessage::ActiveSpeaker {
            participant_id: participant(peer),
        },
        E::MediaState { peer, connected } => ServerMessage::MediaState {
            participant_id: participant(peer),
            state: if connected {
                MediaState::Connected
            } else {
                MediaState::Disconnected
            },
        },
        E::Closed { reason } => ServerMessage::MediaClosed {
            reason: match reason {
                sfu::CloseReason::ConnectTimeout => MediaCloseReason::ConnectTimeout,
                sfu::CloseReason::Failed => MediaCloseReason::Failed,
            },
        },
    })
}
