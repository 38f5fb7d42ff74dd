//! The media plane as signaling sees it: moderation hooks ([`MediaControl`]) and, when the
//! node runs an SFU, the plane itself ([`Media`]) that room sockets join with SDP.

use std::sync::Arc;

use crate::bus::BoxFuture;
use crate::protocol::{
    IceCandidate, MediaCloseReason, MediaState, ParticipantId, RoomId, ServerMessage,
};

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

/// Why a media command failed, on whichever node's SFU it ran (it crosses nodes as JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum MediaError {
    /// The offer, answer or candidate can't be used.
    #[error("{0}")]
    BadSdp(String),
    /// The command crossed another one (a server offer is outstanding, say).
    #[error("out of order: {0}")]
    OutOfOrder(String),
    /// The participant has no media connection (any more).
    #[error("your media connection is closed; join again")]
    Closed,
    /// The SFU that carries the room is stopping or can't be reached.
    #[error("the media server is unavailable: {0}")]
    Unavailable(String),
}

impl From<sfu::SfuError> for MediaError {
    fn from(err: sfu::SfuError) -> Self {
        use sfu::SfuError as E;
        match err {
            E::OutOfOrder(why) => Self::OutOfOrder(why.to_owned()),
            E::UnknownPeer => Self::Closed,
            E::ShuttingDown | E::Bind(_) | E::BindTcp(_) => Self::Unavailable(err.to_string()),
            E::Sdp(_) | E::Candidate(_) | E::Negotiation(_) => Self::BadSdp(err.to_string()),
        }
    }
}

/// Rooms whose media another node carries. In a deployment of several nodes each room's
/// media lives on one node (its owner), so everyone in the call reaches one SFU whichever
/// node their socket came in through; the relay carries a participant's media commands to
/// the owner and its peer events back. The `api` crate implements it over Redis.
pub trait MediaRelay: Send + Sync + 'static {
    /// The node that carries `room`'s media when that is another node, placing the room
    /// first if no live node carries it; `None`: this node does.
    fn owner(&self, room: RoomId) -> BoxFuture<'_, Option<u32>>;

    /// Whether `peer`'s media runs on another node through this relay.
    fn holds(&self, peer: ParticipantId) -> bool;

    /// Starts `peer`'s media on `node`; its events arrive on `events` as if from a local SFU.
    fn join(
        &self,
        node: u32,
        room: RoomId,
        peer: ParticipantId,
        offer: String,
        events: sfu::EventSender,
    ) -> BoxFuture<'_, Result<String, MediaError>>;

    /// An ICE restart of a held peer (see [`sfu::Sfu::restart`]).
    fn restart(
        &self,
        peer: ParticipantId,
        offer: String,
    ) -> BoxFuture<'_, Result<String, MediaError>>;

    /// The answer to a server offer of a held peer.
    fn answer(&self, peer: ParticipantId, sdp: String) -> BoxFuture<'_, Result<(), MediaError>>;

    fn candidate(&self, peer: ParticipantId, candidate: IceCandidate);

    /// Ends a held peer's media; it is no longer held.
    fn leave(&self, peer: ParticipantId);

    fn set_muted(&self, peer: ParticipantId, muted: bool);
}

/// The SFU plus what clients need to reach it. A participant's SFU peer id is its
/// participant id, so the SFU's stream ids (`p<id>`) name participants directly.
#[derive(Clone)]
pub struct Media {
    pub sfu: sfu::Sfu,
    pub ice: Arc<crate::ice::IceServers>,
    /// Set on a node of several: rooms another node carries go through it.
    pub relay: Option<Arc<dyn MediaRelay>>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("sfu", &self.sfu)
            .field("relayed", &self.relay.is_some())
            .finish_non_exhaustive()
    }
}

pub fn peer_of(participant: ParticipantId) -> sfu::PeerId {
    sfu::PeerId(participant.0)
}

pub fn room_of(room: RoomId) -> sfu::RoomId {
    sfu::RoomId(room)
}

/// A client's trickled candidate as the SFU takes it.
pub fn sfu_candidate(candidate: IceCandidate) -> sfu::IceCandidate {
    sfu::IceCandidate {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_mline_index: candidate.sdp_m_line_index,
        username_fragment: candidate.username_fragment,
        ..Default::default()
    }
}

impl Media {
    /// The relay, when `peer`'s media runs on another node.
    fn remote(&self, peer: ParticipantId) -> Option<&dyn MediaRelay> {
        self.relay.as_deref().filter(|relay| relay.holds(peer))
    }

    /// Starts `peer`'s media in `room` with the client's offer, on the node that carries
    /// the room (this one, or the owner through the relay); returns the answer.
    ///
    /// # Errors
    /// [`MediaError`] as the carrying SFU refused it, or [`MediaError::Unavailable`] when
    /// the owner can't be reached.
    pub async fn join(
        &self,
        room: RoomId,
        peer: ParticipantId,
        offer: String,
        events: sfu::EventSender,
    ) -> Result<String, MediaError> {
        if let Some(relay) = &self.relay {
            // An owner that can't be reached (it died moments ago and its record hasn't
            // expired yet) is dropped from the relay's view by the failed call; asking
            // again places the room on a live node.
            for attempt in 0..2 {
                let Some(node) = relay.owner(room).await else {
                    break;
                };
                match relay
                    .join(node, room, peer, offer.clone(), events.clone())
                    .await
                {
                    Err(MediaError::Unavailable(why)) if attempt == 0 => {
                        tracing::warn!(room, node, %why, "the room's media node is unreachable; placing the room again");
                    }
                    result => return result,
                }
            }
        }
        Ok(self
            .sfu
            .join(room_of(room), peer_of(peer), offer, events)
            .await?)
    }

    /// An ICE restart on `peer`'s running media.
    ///
    /// # Errors
    /// See [`sfu::Sfu::restart`].
    pub async fn restart(
        &self,
        room: RoomId,
        peer: ParticipantId,
        offer: String,
    ) -> Result<String, MediaError> {
        match self.remote(peer) {
            Some(relay) => relay.restart(peer, offer).await,
            None => Ok(self
                .sfu
                .restart(room_of(room), peer_of(peer), offer)
                .await?),
        }
    }

    /// The client's answer to a server offer.
    ///
    /// # Errors
    /// See [`sfu::Sfu::answer`].
    pub async fn answer(
        &self,
        room: RoomId,
        peer: ParticipantId,
        sdp: String,
    ) -> Result<(), MediaError> {
        match self.remote(peer) {
            Some(relay) => relay.answer(peer, sdp).await,
            None => Ok(self.sfu.answer(room_of(room), peer_of(peer), sdp).await?),
        }
    }

    /// A trickled candidate; lost quietly when the media is gone (harmless).
    pub fn add_candidate(&self, room: RoomId, peer: ParticipantId, candidate: IceCandidate) {
        match self.remote(peer) {
            Some(relay) => relay.candidate(peer, candidate),
            None => {
                let _ =
                    self.sfu
                        .add_candidate(room_of(room), peer_of(peer), sfu_candidate(candidate));
            }
        }
    }

    /// Ends `peer`'s media wherever it runs.
    pub fn leave(&self, room: RoomId, peer: ParticipantId) {
        match self.remote(peer) {
            Some(relay) => relay.leave(peer),
            None => self.sfu.leave(room_of(room), peer_of(peer)),
        }
    }
}

impl MediaControl for Media {
    fn set_muted(&self, room: RoomId, participant: ParticipantId, muted: bool) {
        match self.remote(participant) {
            Some(relay) => relay.set_muted(participant, muted),
            None => self
                .sfu
                .set_muted(room_of(room), peer_of(participant), muted),
        }
    }

    fn remove_participant(&self, room: RoomId, participant: ParticipantId) {
        self.leave(room, participant);
    }
}

/// What a peer event from the SFU tells the client, if anything.
pub fn to_client(event: sfu::PeerEvent) -> Option<ServerMessage> {
    use sfu::PeerEvent as E;
    let participant = |p: sfu::PeerId| ParticipantId(p.0);
    Some(match event {
        E::Offer { sdp } => ServerMessage::Offer { sdp },
        E::Connected => return None,
        E::TrackPublished { peer, source } => ServerMessage::TrackPublished {
            participant_id: participant(peer),
            source,
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
