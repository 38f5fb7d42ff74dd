//! What the media relay sends between nodes: JSON on each node's own Redis channel,
//! `{prefix}:media:{tag}`. Commands go to the node that carries the room; replies and peer
//! events come back to the node that holds the participant's socket.

use serde::{Deserialize, Serialize};
use signaling::media::MediaError;
use signaling::protocol::{IceCandidate, RoomId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// A media command for the receiving node's SFU from node `from`; `id` when the sender
    /// waits for a [`Message::Reply`].
    Call {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        from: u32,
        command: Command,
    },
    /// The result of call `id`: an SDP (join, restart), or nothing.
    Reply {
        id: u64,
        result: Result<Option<String>, MediaError>,
    },
    /// An event of `peer` in the sender's SFU, for the node that holds its socket.
    Event { peer: u64, event: Event },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    Join {
        room: RoomId,
        peer: u64,
        sdp: String,
    },
    Restart {
        peer: u64,
        sdp: String,
    },
    Answer {
        peer: u64,
        sdp: String,
    },
    Candidate {
        peer: u64,
        candidate: IceCandidate,
    },
    Leave {
        peer: u64,
    },
    SetMuted {
        peer: u64,
        muted: bool,
    },
}

impl Command {
    /// The command's name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Restart { .. } => "restart",
            Self::Answer { .. } => "answer",
            Self::Candidate { .. } => "candidate",
            Self::Leave { .. } => "leave",
            Self::SetMuted { .. } => "set_muted",
        }
    }

    pub fn peer(&self) -> u64 {
        match self {
            Self::Join { peer, .. }
            | Self::Restart { peer, .. }
            | Self::Answer { peer, .. }
            | Self::Candidate { peer, .. }
            | Self::Leave { peer }
            | Self::SetMuted { peer, .. } => *peer,
        }
    }
}

/// [`sfu::PeerEvent`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Offer {
        sdp: String,
    },
    Connected,
    TrackPublished {
        peer: u64,
        /// Absent from nodes older than audio slots.
        #[serde(default)]
        source: u32,
    },
    TrackUnpublished {
        peer: u64,
    },
    Speaking {
        peer: u64,
        speaking: bool,
    },
    ActiveSpeaker {
        peer: u64,
    },
    MediaState {
        peer: u64,
        connected: bool,
    },
    Closed {
        connect_timeout: bool,
    },
}

impl From<sfu::PeerEvent> for Event {
    fn from(event: sfu::PeerEvent) -> Self {
        use sfu::PeerEvent as E;
        match event {
            E::Offer { sdp } => Self::Offer { sdp },
            E::Connected => Self::Connected,
            E::TrackPublished { peer, source } => Self::TrackPublished {
                peer: peer.0,
                source,
            },
            E::TrackUnpublished { peer } => Self::TrackUnpublished { peer: peer.0 },
            E::Speaking { peer, speaking } => Self::Speaking {
                peer: peer.0,
                speaking,
            },
            E::ActiveSpeaker { peer } => Self::ActiveSpeaker { peer: peer.0 },
            E::MediaState { peer, connected } => Self::MediaState {
                peer: peer.0,
                connected,
            },
            E::Closed { reason } => Self::Closed {
                connect_timeout: reason == sfu::CloseReason::ConnectTimeout,
            },
        }
    }
}

impl From<Event> for sfu::PeerEvent {
    fn from(event: Event) -> Self {
        use sfu::PeerId;
        match event {
            Event::Offer { sdp } => Self::Offer { sdp },
            Event::Connected => Self::Connected,
            Event::TrackPublished { peer, source } => Self::TrackPublished {
                peer: PeerId(peer),
                source,
            },
            Event::TrackUnpublished { peer } => Self::TrackUnpublished { peer: PeerId(peer) },
            Event::Speaking { peer, speaking } => Self::Speaking {
                peer: PeerId(peer),
                speaking,
            },
            Event::ActiveSpeaker { peer } => Self::ActiveSpeaker { peer: PeerId(peer) },
            Event::MediaState { peer, connected } => Self::MediaState {
                peer: PeerId(peer),
                connected,
            },
            Event::Closed { connect_timeout } => Self::Closed {
                reason: if connect_timeout {
                    sfu::CloseReason::ConnectTimeout
                } else {
                    sfu::CloseReason::Failed
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_event_survives_the_wire() {
        use sfu::{CloseReason, PeerEvent as E, PeerId};
        let events = [
            E::Offer { sdp: "v=0".into() },
            E::Connected,
            E::TrackPublished {
                peer: PeerId(7),
                source: 3,
            },
            E::TrackUnpublished { peer: PeerId(7) },
            E::Speaking {
                peer: PeerId(1 << 40),
                speaking: true,
            },
            E::ActiveSpeaker { peer: PeerId(3) },
            E::MediaState {
                peer: PeerId(3),
                connected: false,
            },
            E::Closed {
                reason: CloseReason::ConnectTimeout,
            },
            E::Closed {
                reason: CloseReason::Failed,
            },
        ];
        for event in events {
            let json = serde_json::to_string(&Message::Event {
                peer: 9,
                event: event.clone().into(),
            })
            .expect("encodes");
            let Ok(Message::Event { event: back, .. }) = serde_json::from_str(&json) else {
                panic!("decodes: {json}");
            };
            assert_eq!(sfu::PeerEvent::from(back), event, "{json}");
        }
    }

    #[test]
    fn a_refusal_keeps_its_kind_across_nodes() {
        let reply = Message::Reply {
            id: 4,
            result: Err(MediaError::OutOfOrder(
                "a server offer is outstanding".into(),
            )),
        };
        let json = serde_json::to_string(&reply).expect("encodes");
        assert_eq!(
            serde_json::from_str::<Message>(&json).expect("decodes"),
            reply
        );
    }
}
