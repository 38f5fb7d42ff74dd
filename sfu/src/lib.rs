//! WebCall's media plane: a selective forwarding unit for Opus audio.
//!
//! Each participant's browser sends one Opus track to the server; the server forwards it to
//! every other participant of the room: in a small room each speaker on its own m-line and
//! SSRC, in a large room the loudest speakers on a fixed number of audio slots per listener
//! (the speaker named in the CSRC; see [`audible`] and docs/sfu.md). Built on the sans-I/O
//! WebRTC core `rtc`:
//!
//! - [`audible`]: which speakers hold a large room's places (and so its listeners' slots).
//! - [`audio`]: the audio profile (Opus, levels, RTCP) shared with the project's clients.
//! - [`shard`]: a few shards (one per core by default), each owning one UDP socket, the peers
//!   pinned to it and the rooms they are in. ICE-lite; datagrams are routed to a peer by the
//!   STUN username fragment, then by the remote address that peer answered. A room lives on one
//!   shard, so forwarding is a loop over subscribers with no task or channel hop per packet.
//! - [`ice_lite`]: the server's half of ICE (lite): checks answered, the client's path
//!   followed, liveness judged; `rtc`'s own agent is only shown a well-behaved client.
//! - [`peer`]: one participant's connection, subscriptions and negotiation state.
//! - [`rewrite`]: per-subscriber sequence/timestamp rewriting.
//! - [`speaking`]: RFC 6464 levels to speaking state and the active speaker.
//! - [`tap`]: bounded, lossy subscription to raw Opus for the transcriber.
//! - [`tcp`]: ICE-TCP, for clients whose network drops UDP: one listener per node hands each
//!   connection to the shard of the peer its first check names.
//!
//! The [`Sfu`] handle is what signaling talks to: join with an SDP offer, answer server
//! offers, leave, mute; each peer's [`PeerEvent`]s arrive on the channel given at join.

pub mod audible;
pub mod audio;
mod config;
mod deadlines;
pub mod ice_lite;
pub mod peer;
pub mod rewrite;
pub mod shard;
pub mod speaking;
pub mod stun;
pub mod tap;
pub mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use config::{AudioSlots, SfuConfig};
pub use rtc::peer_connection::transport::RTCIceCandidateInit as IceCandidate;
pub use tap::{TapPacket, TapReceiver};
pub use tcp::TcpLimits;

/// A room, as the media plane knows it (the API's room id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub i64);

/// One participant's media connection. A user with two tabs is two peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SfuError {
    #[error("invalid session description: {0}")]
    Sdp(String),
    #[error("invalid ICE candidate: {0}")]
    Candidate(String),
    #[error("renegotiation failed: {0}")]
    Negotiation(String),
    #[error("out of order: {0}")]
    OutOfOrder(&'static str),
    #[error("unknown peer")]
    UnknownPeer,
    #[error("media plane is shutting down")]
    ShuttingDown,
    #[error("cannot bind UDP socket: {0}")]
    Bind(String),
    #[error("cannot listen for ICE-TCP: {0}")]
    BindTcp(String),
}

/// Why a peer's media connection ended without a `leave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// ICE never connected within the connect timeout.
    ConnectTimeout,
    /// DTLS failed, the client closed its connection, or it stayed disconnected past the
    /// grace period.
    Failed,
}

/// What the media plane tells the signaling connection of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A server-initiated offer (tracks came or went); answer it with [`Sfu::answer`].
    Offer {
        sdp: String,
    },
    /// ICE and DTLS are up.
    Connected,
    /// A participant of the room started sending audio: in a small room on the stream
    /// `p<peer>`, in a large room on the audio slots (`slot<i>`) with `source` in the CSRC.
    TrackPublished {
        peer: PeerId,
        source: u32,
    },
    /// A participant's audio is gone (left, failed).
    TrackUnpublished {
        peer: PeerId,
    },
    Speaking {
        peer: PeerId,
        speaking: bool,
    },
    ActiveSpeaker {
        peer: PeerId,
    },
    /// A participant of the room (this peer too) went silent on the network, or came back.
    /// While disconnected it keeps its place; after the grace period it is closed.
    MediaState {
        peer: PeerId,
        connected: bool,
    },
    /// This peer's media connection is gone; the client must rejoin for media.
    Closed {
        reason: CloseReason,
    },
}

/// Events one peer's signaling socket may fall behind by. A socket that stops reading is
/// closed by its own send timeout; until then its events beyond this are dropped (and
/// counted in `sfu_events_dropped_total`) rather than held without bound.
pub const EVENT_CAPACITY: usize = 256;

/// Where the SFU tells one peer's signaling socket what happened: bounded and never
/// blocking, so a stalled socket can't hold the shard up or grow its memory.
#[derive(Debug, Clone)]
pub struct EventSender(mpsc::Sender<PeerEvent>);

/// The bounded channel of one peer's events ([`EVENT_CAPACITY`]).
pub fn event_channel() -> (EventSender, mpsc::Receiver<PeerEvent>) {
    let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
    (EventSender(tx), rx)
}

/// The event was not delivered: the socket is gone or too far behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotDelivered;

impl EventSender {
    /// Offers `event` without waiting.
    ///
    /// # Errors
    /// [`NotDelivered`] when the receiver is gone or full (the event is dropped and counted).
    pub fn send(&self, event: PeerEvent) -> Result<(), NotDelivered> {
        match self.0.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("sfu_events_dropped_total").increment(1);
                Err(NotDelivered)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotDelivered),
        }
    }
}

/// Commands from the handle to a shard.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        room: RoomId,
        peer: PeerId,
        offer: String,
        events: EventSender,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    Answer {
        peer: PeerId,
        sdp: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Restart {
        peer: PeerId,
        offer: String,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    Candidate {
        peer: PeerId,
        candidate: IceCandidate,
    },
    Leave {
        peer: PeerId,
    },
    SetMuted {
        peer: PeerId,
        muted: bool,
    },
    Tap {
        sender: tap::TapSender,
    },
    Counts {
        reply: oneshot::Sender<Counts>,
    },
    Rooms {
        reply: oneshot::Sender<Vec<RoomId>>,
    },
    /// Whether a peer here has this server ufrag (an ICE-TCP connection looks for its shard).
    KnowsUfrag {
        ufrag: String,
        reply: oneshot::Sender<bool>,
    },
    /// Close every peer (DTLS close_notify goes out), then stop the shard.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// What the media plane holds right now, summed over shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rooms: usize,
    pub peers: usize,
    /// Remote addresses and ICE username fragments routed to peers.
    pub routes: usize,
    pub taps: usize,
    /// Datagrams received since start (a node's load, as packets/s between two reads).
    pub packets_in: u64,
}

/// The handle to the running media plane. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sfu {
    shards: Arc<Vec<shard::ShardHandle>>,
    tcp: Option<Arc<tcp::TcpHandle>>,
}

impl Sfu {
    /// Binds the shards' UDP sockets (and the ICE-TCP port, unless `config.tcp_port` is
    /// `None`) and starts their loops on the current tokio runtime.
    ///
    /// # Errors
    /// [`SfuError::Bind`] / [`SfuError::BindTcp`] when a socket can't be bound.
    pub async fn start(mut config: SfuConfig) -> Result<Self, SfuError> {
        let tcp_listener = match config.tcp_port {
            None => None,
            Some(port) => {
                let addr = SocketAddr::new(config.bind_ip, port);
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| SfuError::BindTcp(format!("{addr}: {e}")))?;
                // Shards advertise the port actually bound (0 picks a free one).
                let bound = listener
                    .local_addr()
                    .map_err(|e| SfuError::BindTcp(e.to_string()))?;
                config.tcp_port = Some(bound.port());
                Some(listener)
            }
        };
        let count = config.shards.max(1);
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            shards.push(shard::spawn(index, &config).await?);
        }
        tracing::info!(shards = count, addrs = ?shards.iter().map(|s| s.local_addr).collect::<Vec<_>>(), "media plane listening (UDP)");
        let shards = Arc::new(shards);
        let tcp = match tcp_listener {
            None => None,
            Some(listener) => {
                let handle = tcp::start(listener, shards.clone(), config.tcp_limits)
                    .map_err(|e| SfuError::BindTcp(e.to_string()))?;
                tracing::info!(tcp = %handle.local_addr, "media plane listening (ICE-TCP)");
                Some(Arc::new(handle))
            }
        };
        Ok(Self { shards, tcp })
    }

    /// The ICE-TCP listener's address, when it is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(|t| t.local_addr)
    }

    /// Closes every peer on every shard — each client gets its DTLS close_notify, so browsers
    /// learn at once that media ended instead of waiting out their ICE timeout — and stops
    /// the shards, then the ICE-TCP connections (after they wrote those close_notifys).
    /// Commands after this fail with [`SfuError::ShuttingDown`].
    pub async fn shutdown(&self) {
        let mut waits = Vec::new();
        for shard in self.shards.iter() {
            let (done, wait) = oneshot::channel();
            if shard.send(Command::Shutdown { done }).is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
        if let Some(tcp) = &self.tcp {
            tcp.shutdown().await;
        }
    }

    /// The UDP addresses the shards listen on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shards.iter().map(|s| s.local_addr).collect()
    }

    fn shard(&self, room: RoomId) -> &shard::ShardHandle {
        // Rooms are pinned to one shard so forwarding never crosses threads.
        let index = usize::try_from(room.0.unsigned_abs() % self.shards.len() as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Joins `room` as `peer` (unique on this node; signaling uses its participant id) with
    /// the client's SDP offer, and returns the SDP answer. The peer's events arrive on
    /// `events`; a server offer with the room's other tracks follows right after.
    ///
    /// # Errors
    /// [`SfuError::Sdp`] for an unusable offer, [`SfuError::OutOfOrder`] if `peer` is
    /// already joined.
    pub async fn join(
        &self,
        room: RoomId,
        peer: PeerId,
        offer: String,
        events: EventSender,
    ) -> Result<String, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.shard(room).send(Command::Join {
            room,
            peer,
            offer,
            events,
            reply,
        })?;
        answer.await.map_err(|_| SfuError::ShuttingDown)?
    }

    /// The client's answer to the last [`PeerEvent::Offer`].
    ///
    /// # Errors
    /// [`SfuError::OutOfOrder`] without an outstanding offer, [`SfuError::Sdp`] for a bad one.
    pub async fn answer(&self, room: RoomId, peer: PeerId, sdp: String) -> Result<(), SfuError> {
        let (reply, done) = oneshot::channel();
        self.shard(room)
            .send(Command::Answer { peer, sdp, reply })?;
        done.await.map_err(|_| SfuError::ShuttingDown)?
    }

    /// The client's new offer for an ICE restart (new username fragment and password) on
    /// its running media connection; returns the answer. Subscriptions and DTLS are kept.
    ///
    /// # Errors
    /// [`SfuError::OutOfOrder`] while a server offer is outstanding (answer it, then retry),
    /// [`SfuError::UnknownPeer`] without a media connection, [`SfuError::Sdp`] for a bad one.
    pub async fn restart(
        &self,
        room: RoomId,
        peer: PeerId,
        offer: String,
    ) -> Result<String, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.shard(room)
            .send(Command::Restart { peer, offer, reply })?;
        answer.await.map_err(|_| SfuError::ShuttingDown)?
    }

    /// A trickled ICE candidate from the client.
    ///
    /// # Errors
    /// [`SfuError::ShuttingDown`] when the media plane is stopping.
    pub fn add_candidate(
        &self,
        room: RoomId,
        peer: PeerId,
        candidate: IceCandidate,
    ) -> Result<(), SfuError> {
        self.shard(room)
            .send(Command::Candidate { peer, candidate })
    }

    /// Removes the peer: its audio disappears for everyone, who are renegotiated.
    pub fn leave(&self, room: RoomId, peer: PeerId) {
        let _ = self.shard(room).send(Command::Leave { peer });
    }

    /// Server-side mute: while muted, the peer's audio is neither forwarded nor tapped,
    /// whatever the client sends.
    pub fn set_muted(&self, room: RoomId, peer: PeerId, muted: bool) {
        let _ = self.shard(room).send(Command::SetMuted { peer, muted });
    }

    /// Rooms, peers, routes and taps currently held: after everyone left, all zero.
    pub async fn counts(&self) -> Counts {
        let mut total = Counts::default();
        for shard in self.shards.iter() {
            let (reply, rx) = oneshot::channel();
            if shard.send(Command::Counts { reply }).is_ok() {
                if let Ok(c) = rx.await {
                    total.rooms += c.rooms;
                    total.peers += c.peers;
                    total.routes += c.routes;
                    total.taps += c.taps;
                    total.packets_in += c.packets_in;
                }
            }
        }
        total
    }

    /// The rooms that have peers here (a node re-asserts its rooms with them).
    pub async fn rooms(&self) -> Vec<RoomId> {
        let mut rooms = Vec::new();
        for shard in self.shards.iter() {
            let (reply, rx) = oneshot::channel();
            if shard.send(Command::Rooms { reply }).is_ok() {
                if let Ok(list) = rx.await {
                    rooms.extend(list);
                }
            }
        }
        rooms
    }

    /// Subscribes to the raw Opus of every participant of `room`, with room for `capacity`
    /// packets; a slower consumer loses packets (counted), never stalls forwarding.
    pub fn tap(&self, room: RoomId, capacity: usize) -> TapReceiver {
        let (sender, receiver) = tap::channel(room, capacity);
        let _ = self.shard(room).send(Command::Tap { sender });
        receiver
    }
}
