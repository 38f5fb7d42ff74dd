//! The sans-I/O state of one shard: its peers and their rooms.
//!
//! Datagrams, calls (join, answer, leave, …) and timeouts go in, each with the time passed
//! in; what it wants done comes out of [`ShardCore::poll_output`]: datagrams to send, events
//! for a participant's signaling, and when to call [`ShardCore::handle_timeout`] next. It
//! owns no socket, no channel and no clock, so its tests run without either
//! (`core_tests.rs`); [`super::spawn`] wraps it in a tokio task with the socket.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::audible::{AudibleSpeakers, Candidate};
use crate::deadlines::Deadlines;
use crate::peer::{InboundRtp, Peer, PeerState, ServerAddrs, Transport};
use crate::speaking::ActiveSpeaker;
use crate::tap::{TapPacket, TapSender};
use crate::{
    stun, CloseReason, Counts, IceCandidate, PeerEvent, PeerId, RoomId, SfuConfig, SfuError,
};

/// Runs input from the network through the WebRTC stack so that a panic in it (a bug the
/// input triggered) costs that one peer, not the shard and every call on it.
fn contain<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        metrics::counter!("sfu_contained_panics_total").increment(1);
    })
}

/// How often speaking hangovers and connect timeouts are checked when nothing else happens.
const TICK: Duration = Duration::from_millis(100);

/// What the shard wants done, in order ([`ShardCore::poll_output`]).
#[derive(Debug)]
pub enum Output {
    /// A datagram to send from the shard's socket.
    Transmit { to: SocketAddr, data: BytesMut },
    /// An event for `peer`'s signaling (its participant's socket).
    Event { peer: PeerId, event: PeerEvent },
    /// `peer` left the shard: nothing more will be said to it.
    Released { peer: PeerId },
    /// Nothing more now: call [`ShardCore::handle_timeout`] at this time (`None`: no peers,
    /// no timers).
    Timeout(Option<Instant>),
}

/// Where one publisher's packets go ([`ShardCore::route`]).
enum Route {
    /// A small room: every other member, each on its own stream of this publisher.
    Everyone(Vec<PeerId>),
    /// A large room: (listener, slot) pairs.
    Slots(Vec<(PeerId, usize)>),
    /// A large room where this publisher holds no place.
    Nowhere,
}

#[derive(Default)]
struct RoomState {
    peers: Vec<PeerId>,
    active_speaker: ActiveSpeaker<PeerId>,
    /// The loudest speakers at fixed places (slots + 1: a listener who holds one of the
    /// first `slots` places hears the spare one there instead of itself), kept up to date
    /// in every room so a room that turns large starts from who is talking.
    audible: AudibleSpeakers<PeerId>,
    /// The room has had more than `AudioSlots::above` participants since it was last empty:
    /// its listeners have audio slots, and only the places' speakers are forwarded.
    large: bool,
}

/// How `entry`'s media reaches us now, given the shard's ICE-TCP connections.
fn transport_of(tcp_remotes: &HashSet<SocketAddr>, entry: &Peer) -> Option<Transport> {
    let path = entry.media_path()?;
    Some(if !tcp_remotes.is_empty() && tcp_remotes.contains(&path) {
        Transport::Tcp
    } else if entry.is_relay(path) {
        Transport::Relay
    } else {
        Transport::Udp
    })
}

/// The state of one shard, without I/O.
pub struct ShardCore {
    config: SfuConfig,
    /// The shard's socket and the candidates its peers' answers offer.
    server: ServerAddrs,
    /// Remote addresses that are ICE-TCP connections this shard adopted.
    tcp_remotes: HashSet<SocketAddr>,
    /// Boxed: a peer is several KiB, and a map holding values inline keeps spare capacity
    /// of that size (about 14 KiB per participant in the massif profile of a large room).
    peers: HashMap<PeerId, Box<Peer>>,
    rooms: HashMap<RoomId, RoomState>,
    /// Transcriber taps by room: a packet looks up its own room's, never walks the others.
    taps: HashMap<RoomId, Vec<TapSender>>,
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    transmits: VecDeque<(SocketAddr, BytesMut)>,
    /// Events and releases, in the order they happened (before any datagram: they are few).
    notices: VecDeque<Output>,
    inbound: Vec<InboundRtp>,
    /// When the periodic checks (speaking hangovers, connect timeouts) are next due. Absolute,
    /// so steady traffic can't keep pushing it into the future.
    next_tick: Instant,
    /// Each peer's next `rtc` timer, asked again only for peers something touched.
    deadlines: Deadlines,
    /// Datagrams received, for the node's load in the cluster registry.
    packets_in: u64,
    /// The CSRC the next peer's audio goes by (never 0, unique among the shard's peers).
    next_source: u32,
}

impl ShardCore {
    pub fn new(config: SfuConfig, local_addr: SocketAddr, now: Instant) -> Self {
        let public_ip = config.public_ip.unwrap_or(local_addr.ip());
        let server = ServerAddrs {
            local: local_addr,
            udp: SocketAddr::new(public_ip, local_addr.port()),
            tcp: config
                .tcp_port
                .filter(|port| *port != 0)
                .map(|port| SocketAddr::new(public_ip, port)),
        };
        Self {
            config,
            server,
            tcp_remotes: HashSet::new(),
            peers: HashMap::new(),
            rooms: HashMap::new(),
            taps: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            transmits: VecDeque::new(),
            notices: VecDeque::new(),
            next_tick: now + TICK,
            deadlines: Deadlines::default(),
            inbound: Vec::new(),
            packets_in: 0,
            next_source: 1,
        }
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether a peer here answers to server ufrag `ufrag`.
    pub fn knows_ufrag(&self, ufrag: &str) -> bool {
        self.by_ufrag.contains_key(ufrag)
    }

    /// An ICE-TCP connection from `remote` now carries datagrams both ways.
    pub fn tcp_opened(&mut self, remote: SocketAddr) {
        self.tcp_remotes.insert(remote);
    }

    /// The ICE-TCP connection from `remote` closed. A peer whose media went that way is
    /// judged by its liveness like one whose UDP path went silent.
    pub fn tcp_closed(&mut self, remote: SocketAddr) {
        self.tcp_remotes.remove(&remote);
    }

    /// Routes one datagram to its peer: STUN by username fragment, everything else by the
    /// address that peer has answered a connectivity check from.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        metrics::counter!("sfu_packets_in_total").increment(1);
        self.packets_in += 1;
        metrics::counter!("sfu_bytes_in_total").increment(data.len() as u64);
        // Requests carry our ufrag; responses and keepalives don't, and go by address.
        let by_ufrag = stun::is_stun(data)
            .then(|| {
                stun::local_ufrag(data)
                    .and_then(|u| self.by_ufrag.get(u))
                    .copied()
            })
            .flatten();
        let peer = by_ufrag.or_else(|| self.by_addr.get(&from).copied());
        let Some(id) = peer else {
            metrics::counter!("sfu_packets_dropped_total", "reason" => "unknown_source")
                .increment(1);
            return;
        };
        if let Some(entry) = self.peers.get_mut(&id) {
            let fed = contain(|| entry.handle_datagram(now, from, data));
            if fed.is_err() {
                tracing::error!(peer = id.0, %from, "a datagram crashed the peer's WebRTC stack; removing that peer only");
                self.remove_peer(now, id, Some(CloseReason::Failed));
                return;
            }
        }
        self.drain_peer(now, id);
    }

    /// A participant joins `room` with its offer; returns the answer. Events for it come out
    /// of [`Self::poll_output`] as [`Output::Event`] addressed to `id`.
    ///
    /// # Errors
    /// [`SfuError::OutOfOrder`] if `id` is here already; [`SfuError::Sdp`] for an unusable offer.
    pub fn join(
        &mut self,
        now: Instant,
        room: RoomId,
        id: PeerId,
        offer: String,
    ) -> Result<String, SfuError> {
        let answer = self.admit(now, room, id, offer)?;
        self.drain_peer(now, id);
        Ok(answer)
    }

    /// The client's answer to the last server offer.
    ///
    /// # Errors
    /// [`SfuError::UnknownPeer`], [`SfuError::OutOfOrder`] with no offer out, or
    /// [`SfuError::Sdp`].
    pub fn answer(&mut self, now: Instant, peer: PeerId, sdp: String) -> Result<(), SfuError> {
        let result = match self.peers.get_mut(&peer) {
            None => Err(SfuError::UnknownPeer),
            Some(entry) => contain(|| entry.handle_answer(now, sdp))
                .unwrap_or_else(|()| {
                    Err(SfuError::Sdp(
                        "the answer could not be processed".to_owned(),
                    ))
                })
                .map(|again| {
                    if again {
                        self.negotiate(now, peer);
                    }
                }),
        };
        self.drain_peer(now, peer);
        result
    }

    /// An ICE restart (a new client offer on the same connection); returns the answer.
    ///
    /// # Errors
    /// [`SfuError::UnknownPeer`], [`SfuError::OutOfOrder`] while a server offer is out, or
    /// [`SfuError::Sdp`].
    pub fn restart(
        &mut self,
        now: Instant,
        peer: PeerId,
        offer: String,
    ) -> Result<String, SfuError> {
        let result = match self.peers.get_mut(&peer) {
            None => Err(SfuError::UnknownPeer),
            Some(entry) => {
                contain(|| entry.handle_restart_offer(now, offer)).unwrap_or_else(|()| {
                    Err(SfuError::Sdp("the offer could not be processed".to_owned()))
                })
            }
        };
        if result.is_ok() {
            metrics::counter!("sfu_ice_restarts_total").increment(1);
            if self
                .peers
                .get(&peer)
                .is_some_and(|e| e.has_pending_subscriptions())
            {
                self.negotiate(now, peer);
            }
        }
        self.drain_peer(now, peer);
        result
    }

    /// A trickled remote candidate (an ICE-lite server doesn't need them).
    pub fn add_candidate(&mut self, peer: PeerId, candidate: IceCandidate) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            if let Err(err) = entry.add_remote_candidate(candidate) {
                tracing::debug!(peer = peer.0, error = %err, "remote candidate ignored");
            }
            self.deadlines.touch(peer);
        }
    }

    /// The participant left: its connection closes and the room's others stop getting it.
    pub fn leave(&mut self, now: Instant, peer: PeerId) {
        self.remove_peer(now, peer, None);
    }

    /// A moderator or the participant (un)muted it: a muted peer's packets go nowhere.
    pub fn set_muted(&mut self, now: Instant, peer: PeerId, muted: bool) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        entry.muted = muted;
        let room = entry.room;
        if muted && entry.speaking.is_speaking() {
            entry.speaking = Default::default();
            self.broadcast(
                room,
                &PeerEvent::Speaking {
                    peer,
                    speaking: false,
                },
            );
            self.reselect(now, room);
        }
    }

    /// A transcription's tap on its room: every packet of the room is offered to it.
    pub(crate) fn add_tap(&mut self, sender: TapSender) {
        // Each new tap clears the dead ones, so even a shard with no peers (and so no
        // ticks) holds at most the taps of transcriptions still running.
        self.sweep_taps();
        self.taps.entry(sender.room).or_default().push(sender);
    }

    pub fn rooms(&self) -> Vec<RoomId> {
        self.rooms.keys().copied().collect()
    }

    pub fn counts(&mut self) -> Counts {
        self.sweep_taps();
        Counts {
            rooms: self.rooms.len(),
            peers: self.peers.len(),
            routes: self.by_ufrag.len() + self.by_addr.len(),
            taps: self.taps.values().map(Vec::len).sum(),
            packets_in: self.packets_in,
        }
    }

    /// What to do next, in order: events and releases, then datagrams, then the time to
    /// call [`Self::handle_timeout`] at (always last: poll until it comes).
    pub fn poll_output(&mut self, now: Instant) -> Output {
        if let Some(notice) = self.notices.pop_front() {
            return notice;
        }
        if let Some((to, data)) = self.transmits.pop_front() {
            return Output::Transmit { to, data };
        }
        Output::Timeout(self.poll_timeout(now))
    }

    /// An event for `peer`'s signaling.
    fn emit(&mut self, peer: PeerId, event: PeerEvent) {
        self.notices.push_back(Output::Event { peer, event });
    }

    fn admit(
        &mut self,
        now: Instant,
        room: RoomId,
        id: PeerId,
        offer: String,
    ) -> Result<String, SfuError> {
        if self.peers.contains_key(&id) {
            return Err(SfuError::OutOfOrder(
                "this participant already has a media connection",
            ));
        }
        let server = self.server;
        let source = self.take_source();
        let (mut peer, answer) =
            contain(|| Peer::answer_offer(id, room, offer, server, source, now)).unwrap_or_else(
                |()| Err(SfuError::Sdp("the offer could not be processed".to_owned())),
            )?;
        let members = self.rooms.get(&room).map_or(0, |r| r.peers.len());
        let was_large = self.rooms.get(&room).is_some_and(|r| r.large);
        let turns_large = !was_large
            && self
                .config
                .audio_slots
                .is_some_and(|slots| members + 1 > slots.above);
        let publishers: Vec<(PeerId, u32)> = self
            .rooms
            .get(&room)
            .map(|r| {
                r.peers
                    .iter()
                    .filter_map(|p| self.peers.get(p).map(|e| (*p, &**e)))
                    .filter(|(_, peer)| peer.publishing)
                    .map(|(p, peer)| (p, peer.source))
                    .collect()
            })
            .unwrap_or_default();
        // A large room's newcomer gets its audio slots in one server offer, whoever speaks;
        // a small room's subscribes to everyone already publishing, in one offer too.
        let slots = self.config.audio_slots.map_or(0, |s| s.slots);
        let needs_offer = if was_large || turns_large {
            peer.open_slots(slots)?;
            true
        } else {
            for (publisher, _) in &publishers {
                peer.subscribe(*publisher)?;
            }
            !publishers.is_empty()
        };
        for (publisher, source) in &publishers {
            self.emit(
                id,
                PeerEvent::TrackPublished {
                    peer: *publisher,
                    source: *source,
                },
            );
        }
        self.by_ufrag.insert(peer.ufrag.clone(), id);
        self.peers.insert(id, Box::new(peer));
        let room_state = self.rooms.entry(room).or_default();
        if room_state.peers.is_empty() {
            metrics::gauge!("sfu_rooms").increment(1.0);
        }
        room_state.peers.push(id);
        metrics::gauge!("sfu_participants").increment(1.0);
        if turns_large {
            self.turn_large(now, room, id);
        }
        if needs_offer {
            self.negotiate(now, id);
        }
        self.reselect(now, room);
        tracing::info!(
            room = room.0,
            peer = id.0,
            large = was_large || turns_large,
            "peer joined the media plane"
        );
        Ok(answer)
    }

    /// A fresh CSRC for a joining peer.
    fn take_source(&mut self) -> u32 {
        loop {
            let source = self.next_source;
            self.next_source = self.next_source.wrapping_add(1).max(1);
            if !self.peers.values().any(|e| e.source == source) {
                return source;
            }
        }
    }

    /// The room grew past the limit: everyone already in it moves to audio slots (one server
    /// offer each, once; from now on joins and leaves send no offer to them).
    fn turn_large(&mut self, now: Instant, room: RoomId, newcomer: PeerId) {
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        state.large = true;
        metrics::counter!("sfu_rooms_turned_large_total").increment(1);
        let members: Vec<PeerId> = state
            .peers
            .iter()
            .copied()
            .filter(|p| *p != newcomer)
            .collect();
        let slots = self.config.audio_slots.map_or(0, |s| s.slots);
        for member in members {
            let Some(entry) = self.peers.get_mut(&member) else {
                continue;
            };
            if let Err(err) = entry.open_slots(slots) {
                tracing::warn!(peer = member.0, error = %err, "audio slots failed");
                continue;
            }
            self.negotiate(now, member);
            self.drain_peer(now, member);
        }
        tracing::info!(
            room = room.0,
            slots,
            "room turned large: listeners get audio slots"
        );
    }

    /// Sends a server offer to `id` if its subscriptions changed and none is outstanding.
    fn negotiate(&mut self, now: Instant, id: PeerId) {
        let Some(entry) = self.peers.get_mut(&id) else {
            return;
        };
        self.deadlines.touch(id);
        match entry.poll_offer(now, true) {
            Ok(Some(sdp)) => {
                tracing::trace!(peer = id.0, %sdp, "server offer");
                self.notices.push_back(Output::Event {
                    peer: id,
                    event: PeerEvent::Offer { sdp },
                });
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(peer = id.0, error = %err, "renegotiation failed"),
        }
    }

    fn broadcast(&mut self, room: RoomId, event: &PeerEvent) {
        if let Some(state) = self.rooms.get(&room) {
            for p in &state.peers {
                self.notices.push_back(Output::Event {
                    peer: *p,
                    event: event.clone(),
                });
            }
        }
    }

    /// Removes a peer and everything that points at it; the room's others lose its track.
    fn remove_peer(&mut self, now: Instant, id: PeerId, reason: Option<CloseReason>) {
        let Some(mut entry) = self.peers.remove(&id) else {
            return;
        };
        self.deadlines.remove(id);
        entry.close();
        // Flush what close() produced (DTLS close_notify) to the client.
        while let Some(t) = entry.poll_transmit() {
            self.transmits.push_back(t);
        }
        if entry.is_reported_disconnected() {
            metrics::gauge!("sfu_peers_disconnected").decrement(1.0);
        }
        if let Some(transport) = entry.transport {
            metrics::gauge!("sfu_peers", "transport" => transport.as_str()).decrement(1.0);
        }
        if let Some(reason) = reason {
            let label = match reason {
                CloseReason::ConnectTimeout => "connect_timeout",
                CloseReason::Failed => "failed",
            };
            metrics::counter!("sfu_peers_closed_total", "reason" => label).increment(1);
            self.emit(id, PeerEvent::Closed { reason });
        }
        self.notices.push_back(Output::Released { peer: id });
        self.by_ufrag.remove(&entry.ufrag);
        self.by_addr.retain(|_, p| *p != id);
        metrics::gauge!("sfu_participants").decrement(1.0);
        let room = entry.room;
        let mut others = Vec::new();
        let mut large = false;
        if let Some(state) = self.rooms.get_mut(&room) {
            state.peers.retain(|p| *p != id);
            state.active_speaker.remove(id);
            state.audible.remove(id);
            others = state.peers.clone();
            large = state.large;
            if state.peers.is_empty() {
                self.rooms.remove(&room);
                metrics::gauge!("sfu_rooms").decrement(1.0);
            }
        }
        let published = entry.is_publishing_announced();
        for other in others {
            if let Some(e) = self.peers.get_mut(&other) {
                if e.is_subscribed_to(id) {
                    e.unsubscribe(id);
                    self.emit(other, PeerEvent::TrackUnpublished { peer: id });
                    self.negotiate(now, other);
                    self.drain_peer(now, other);
                } else if large && published {
                    // Its slot simply carries someone else next: no offer.
                    self.emit(other, PeerEvent::TrackUnpublished { peer: id });
                }
            }
        }
        self.reselect(now, room);
        tracing::info!(
            room = room.0,
            peer = id.0,
            ?reason,
            "peer left the media plane"
        );
    }

    /// Collects what a peer produced: its datagrams, its state changes, and the RTP it
    /// received, which is forwarded to the room right here.
    fn drain_peer(&mut self, now: Instant, id: PeerId) {
        self.deadlines.touch(id);
        let mut inbound = std::mem::take(&mut self.inbound);
        let (room, state, muted) = {
            let Some(entry) = self.peers.get_mut(&id) else {
                return;
            };
            let was_connected = entry.state == PeerState::Connected;
            entry.poll_inbound(&mut inbound);
            let first_media =
                entry.publishing && !inbound.is_empty() && !entry.is_publishing_announced();
            if first_media {
                entry.mark_publishing_announced();
            }
            let transport = transport_of(&self.tcp_remotes, entry);
            if transport != entry.transport {
                if let Some(old) = entry.transport {
                    metrics::gauge!("sfu_peers", "transport" => old.as_str()).decrement(1.0);
                }
                if let Some(new) = transport {
                    metrics::gauge!("sfu_peers", "transport" => new.as_str()).increment(1.0);
                    tracing::info!(
                        room = entry.room.0,
                        peer = id.0,
                        transport = new.as_str(),
                        "peer media path"
                    );
                }
                entry.transport = transport;
            }
            if !was_connected && entry.state == PeerState::Connected {
                // Joins that got media, beside `sfu_peers_closed_total{reason="connect_timeout"}`
                // for those that never did: the join success rate.
                metrics::counter!("sfu_peers_connected_total").increment(1);
                self.notices.push_back(Output::Event {
                    peer: id,
                    event: PeerEvent::Connected,
                });
            }
            let room = entry.room;
            let liveness = entry.take_liveness_change();
            if let Some(connected) = liveness {
                tracing::info!(room = room.0, peer = id.0, connected, "peer media state");
                if connected {
                    metrics::gauge!("sfu_peers_disconnected").decrement(1.0);
                    metrics::counter!("sfu_peer_reconnects_total").increment(1);
                } else {
                    metrics::gauge!("sfu_peers_disconnected").increment(1.0);
                    metrics::counter!("sfu_peer_disconnects_total").increment(1);
                }
                self.broadcast(
                    room,
                    &PeerEvent::MediaState {
                        peer: id,
                        connected,
                    },
                );
            }
            if first_media {
                self.on_first_media(now, room, id);
            }
            let entry = match self.peers.get_mut(&id) {
                Some(e) => e,
                None => return,
            };
            for addr in entry.take_forgotten() {
                if self.by_addr.get(&addr) == Some(&id) {
                    self.by_addr.remove(&addr);
                }
            }
            while let Some((addr, bytes)) = entry.poll_transmit() {
                if stun::is_binding_success(&bytes) {
                    // The agent answered a check that passed message integrity: from now on
                    // this address speaks for this peer.
                    self.by_addr.insert(addr, id);
                }
                self.transmits.push_back((addr, bytes));
            }
            (room, entry.state, entry.muted)
        };
        if state == PeerState::Failed {
            inbound.clear();
            self.inbound = inbound;
            self.remove_peer(now, id, Some(CloseReason::Failed));
            return;
        }
        if !inbound.is_empty() {
            self.forward(now, room, id, muted, &mut inbound);
        }
        inbound.clear();
        self.inbound = inbound;
    }

    /// A publisher's first packet: every other peer of the room subscribes to it.
    fn on_first_media(&mut self, now: Instant, room: RoomId, publisher: PeerId) {
        let others: Vec<PeerId> = self
            .rooms
            .get(&room)
            .map(|r| {
                r.peers
                    .iter()
                    .copied()
                    .filter(|p| *p != publisher)
                    .collect()
            })
            .unwrap_or_default();
        let source = self.peers.get(&publisher).map_or(0, |e| e.source);
        self.broadcast(
            room,
            &PeerEvent::TrackPublished {
                peer: publisher,
                source,
            },
        );
        if self.rooms.get(&room).is_some_and(|r| r.large) {
            // Listeners hear it on their slots once it speaks: nobody renegotiates.
            return;
        }
        for other in others {
            let Some(entry) = self.peers.get_mut(&other) else {
                continue;
            };
            if let Err(err) = entry.subscribe(publisher) {
                tracing::warn!(peer = other.0, error = %err, "subscription failed");
                continue;
            }
            self.negotiate(now, other);
        }
    }

    /// Where `publisher`'s packets go now: in a small room to every other member on its own
    /// stream; in a large room, if it holds a place, onto that place's slot of every other
    /// member (the spare place onto the slot of whoever holds the place it stands in for).
    fn route(&self, room: RoomId, publisher: PeerId) -> Route {
        let Some(r) = self.rooms.get(&room) else {
            return Route::Nowhere;
        };
        if !r.large {
            return Route::Everyone(
                r.peers
                    .iter()
                    .copied()
                    .filter(|p| *p != publisher)
                    .collect(),
            );
        }
        // A place's holder is forwarded while speaking (the detector's hangover carries the
        // ends of words); its silence would only cost every listener packets.
        if !self
            .peers
            .get(&publisher)
            .is_some_and(|e| e.speaking.is_speaking())
        {
            return Route::Nowhere;
        }
        let slots = self.config.audio_slots.map_or(0, |s| s.slots);
        match r.audible.place_of(publisher) {
            None => Route::Nowhere,
            Some(place) if place < slots => Route::Slots(
                r.peers
                    .iter()
                    .copied()
                    .filter(|p| *p != publisher)
                    .map(|p| (p, place))
                    .collect(),
            ),
            Some(_) => Route::Slots(
                (0..slots)
                    .filter_map(|slot| r.audible.at(slot).map(|holder| (holder, slot)))
                    .filter(|(holder, _)| *holder != publisher)
                    .collect(),
            ),
        }
    }

    fn forward(
        &mut self,
        now: Instant,
        room: RoomId,
        publisher: PeerId,
        muted: bool,
        inbound: &mut [InboundRtp],
    ) {
        // Wall time of the work, for the histogram: not the shard's clock, which is `now`.
        let started = Instant::now();
        let csrc = self.peers.get(&publisher).map_or(0, |e| e.source);
        let mut route = self.route(room, publisher);
        let mut paused = 0u64;
        let mut reached: Vec<PeerId> = Vec::new();
        for rtp in inbound.iter() {
            if let Some(level) = rtp.audio_level {
                if !muted && self.update_speaking(now, room, publisher, level) {
                    // Speech started or stopped: this publisher may have gained or lost a place.
                    route = self.route(room, publisher);
                }
            }
            if muted {
                metrics::counter!("sfu_packets_dropped_total", "reason" => "muted").increment(1);
                continue;
            }
            // The transcriber hears everyone, forwarded or not, and is told which.
            let heard = !matches!(route, Route::Nowhere);
            self.offer_to_taps(now, room, publisher, heard, &rtp.packet);
            match &route {
                Route::Nowhere => paused += 1,
                Route::Everyone(listeners) => {
                    for listener in listeners {
                        if let Some(entry) = self.peers.get_mut(listener) {
                            if !entry.forward(now, publisher, &rtp.packet) {
                                metrics::counter!("sfu_packets_dropped_total", "reason" => "not_subscribed").increment(1);
                            }
                        }
                        reached.push(*listener);
                    }
                }
                Route::Slots(targets) => {
                    for (listener, slot) in targets {
                        if let Some(entry) = self.peers.get_mut(listener) {
                            if !entry.forward_to_slot(now, *slot, publisher, csrc, &rtp.packet) {
                                metrics::counter!("sfu_packets_dropped_total", "reason" => "no_slot").increment(1);
                            }
                        }
                        reached.push(*listener);
                    }
                }
            }
        }
        if inbound.len() > 1 {
            reached.sort_unstable();
            reached.dedup();
        }
        for listener in &reached {
            if let Some(entry) = self.peers.get_mut(listener) {
                while let Some(t) = entry.poll_transmit() {
                    self.transmits.push_back(t);
                }
            }
        }
        if paused > 0 {
            metrics::counter!("sfu_packets_dropped_total", "reason" => "not_loudest")
                .increment(paused);
        }
        metrics::histogram!("sfu_forward_duration_seconds").record(started.elapsed().as_secs_f64());
    }

    fn offer_to_taps(
        &mut self,
        now: Instant,
        room: RoomId,
        peer: PeerId,
        heard: bool,
        packet: &rtc::rtp::Packet,
    ) {
        // Most rooms aren't transcribed: no hash lookup per packet then.
        if self.taps.is_empty() {
            return;
        }
        let Some(taps) = self.taps.get_mut(&room) else {
            return;
        };
        taps.retain(|tap| {
            tap.offer(TapPacket {
                room,
                peer,
                sequence: packet.header.sequence_number,
                rtp_timestamp: packet.header.timestamp,
                arrival: now,
                heard,
                payload: packet.payload.clone(),
            })
        });
        if taps.is_empty() {
            self.taps.remove(&room);
        }
    }

    /// Drops taps whose transcription ended, in rooms where nobody is sending (where packets
    /// flow, [`Self::offer_to_taps`] drops them already). Without this a start/stop loop in a
    /// silent room would leave one dead tap per round.
    fn sweep_taps(&mut self) {
        self.taps.retain(|_, taps| {
            taps.retain(|t| !t.is_closed());
            !taps.is_empty()
        });
    }

    /// Feeds one packet's audio level; returns whether speaking started or stopped (and the
    /// room's forwarded speakers were chosen again).
    fn update_speaking(&mut self, now: Instant, room: RoomId, peer: PeerId, level: u8) -> bool {
        // One lookup per packet: the change, and whether this publisher speaks now.
        let (changed, speaks_now) = self.peers.get_mut(&peer).map_or((None, false), |e| {
            let changed = e.speaking.handle_level(now, level);
            (changed, e.speaking.is_speaking())
        });
        if let Some(speaking) = changed {
            self.broadcast(room, &PeerEvent::Speaking { peer, speaking });
            self.reselect(now, room);
        }
        // The choice walks the whole room; a packet of someone silent, who neither spoke nor
        // stopped, can't change it. In a large room those are nearly all packets: the open
        // microphones of everyone listening.
        if changed.is_some() || speaks_now {
            self.update_active_speaker(now, room);
        }
        changed.is_some()
    }

    /// Chooses again which publishers hold the places (on speech starting or stopping,
    /// joins, leaves and each tick; never per packet).
    fn reselect(&mut self, now: Instant, room: RoomId) {
        let Some(slots) = self.config.audio_slots else {
            return;
        };
        let Some(state) = self.rooms.get(&room) else {
            return;
        };
        let candidates: Vec<Candidate<PeerId>> = state
            .peers
            .iter()
            .filter_map(|p| {
                self.peers.get(p).map(|e| Candidate {
                    key: *p,
                    speaking: e.speaking.is_speaking() && !e.muted,
                    level: e.speaking.level(),
                })
            })
            .collect();
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        let before: Vec<PeerId> = state.audible.selected().collect();
        if !state
            .audible
            .update(now, slots.slots + 1, slots.slots, &candidates)
            || !state.large
        {
            return;
        }
        let newly = state
            .audible
            .selected()
            .filter(|p| !before.contains(p))
            .count();
        metrics::counter!("sfu_loudest_switches_total").increment(newly as u64);
    }

    fn update_active_speaker(&mut self, now: Instant, room: RoomId) {
        let Some(state) = self.rooms.get(&room) else {
            return;
        };
        let loudest = state
            .peers
            .iter()
            .filter_map(|p| self.peers.get(p).map(|e| (*p, &e.speaking)))
            .filter(|(_, s)| s.is_speaking())
            .min_by(|a, b| a.1.level().total_cmp(&b.1.level()))
            .map(|(p, _)| p);
        let changed = self
            .rooms
            .get_mut(&room)
            .and_then(|s| s.active_speaker.update(now, loudest));
        if let Some(peer) = changed {
            self.broadcast(room, &PeerEvent::ActiveSpeaker { peer });
        }
    }

    /// Drives the timers of the peers that are due and, once per tick, every peer's speaking
    /// hangover, connect timeout and liveness.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refresh_deadlines();
        for id in self.deadlines.take_due(now) {
            let Some(entry) = self.peers.get_mut(&id) else {
                continue;
            };
            entry.handle_timeout(now);
            self.drain_peer(now, id);
        }
        if now >= self.next_tick {
            self.tick(now);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.next_tick = now + TICK;
        self.sweep_taps();
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        // Forwarding doesn't refresh its listeners' deadlines (see `deadlines.rs`): this does.
        self.deadlines.touch_all(ids.iter().copied());
        for id in ids {
            let Some(entry) = self.peers.get_mut(&id) else {
                continue;
            };
            if let PeerState::Connecting { since } = entry.state {
                if now.duration_since(since) >= self.config.connect_timeout {
                    self.remove_peer(now, id, Some(CloseReason::ConnectTimeout));
                    continue;
                }
            }
            entry.check_liveness(
                now,
                self.config.ice_disconnected_timeout,
                self.config.disconnect_grace,
            );
            let room = entry.room;
            if let Some(speaking) = entry.speaking.handle_timeout(now) {
                self.broadcast(room, &PeerEvent::Speaking { peer: id, speaking });
            }
            self.drain_peer(now, id);
        }
        // Once per tick, after the hangovers above: speech that ended frees a place, and a
        // louder voice displaces a speaking one only after a hold (time alone can change it).
        if self.config.audio_slots.is_some() {
            let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
            for room in rooms {
                self.reselect(now, room);
            }
        }
    }

    fn refresh_deadlines(&mut self) {
        let peers = &mut self.peers;
        self.deadlines
            .refresh(|id| peers.get_mut(&id).and_then(|e| e.poll_timeout()));
    }

    /// When [`Self::handle_timeout`] is next due: the earliest peer timer or the next tick.
    fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if self.peers.is_empty() {
            return None;
        }
        self.refresh_deadlines();
        let tick = self.next_tick.max(now);
        Some(self.deadlines.earliest().map_or(tick, |t| t.min(tick)))
    }

    /// Closes every peer (shutdown): each gets its DTLS close_notify. Not a failure, so
    /// neither counted in `sfu_peers_closed_total` nor told `media_closed`: the signaling
    /// sockets close with "server shutting down" at the same time.
    pub fn close_all(&mut self, now: Instant) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.remove_peer(now, id, None);
        }
    }
}
