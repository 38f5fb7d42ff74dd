//! A shard: one UDP socket, the peers pinned to it and their rooms, driven by one task.
//!
//! [`ShardCore`] is the sans-I/O part: datagrams, commands and timeouts go in; datagrams to
//! send and the next deadline come out. [`spawn`] wraps it in a tokio task with the socket.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::audible::{AudibleSpeakers, Candidate};
use crate::deadlines::Deadlines;
use crate::peer::{InboundRtp, Peer, PeerState};
use crate::speaking::ActiveSpeaker;
use crate::tap::{TapPacket, TapSender};
use crate::{
    stun, CloseReason, Command, EventSender, PeerEvent, PeerId, RoomId, SfuConfig, SfuError,
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

struct PeerEntry {
    peer: Peer,
    events: EventSender,
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

/// The state of one shard, without I/O.
pub struct ShardCore {
    config: SfuConfig,
    local_addr: SocketAddr,
    advertised: SocketAddr,
    peers: HashMap<PeerId, PeerEntry>,
    rooms: HashMap<RoomId, RoomState>,
    /// Transcriber taps by room: a packet looks up its own room's, never walks the others.
    taps: HashMap<RoomId, Vec<TapSender>>,
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    transmits: VecDeque<(SocketAddr, BytesMut)>,
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
    pub fn new(config: SfuConfig, local_addr: SocketAddr) -> Self {
        let advertised = SocketAddr::new(
            config.public_ip.unwrap_or(local_addr.ip()),
            local_addr.port(),
        );
        Self {
            config,
            local_addr,
            advertised,
            peers: HashMap::new(),
            rooms: HashMap::new(),
            taps: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            transmits: VecDeque::new(),
            next_tick: Instant::now() + TICK,
            deadlines: Deadlines::default(),
            inbound: Vec::new(),
            packets_in: 0,
            next_source: 1,
        }
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
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
            let fed = contain(|| entry.peer.handle_datagram(now, from, data));
            if fed.is_err() {
                tracing::error!(peer = id.0, %from, "a datagram crashed the peer's WebRTC stack; removing that peer only");
                self.remove_peer(now, id, Some(CloseReason::Failed));
                return;
            }
        }
        self.drain_peer(now, id);
    }

    pub(crate) fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Join {
                room,
                peer,
                offer,
                events,
                reply,
            } => {
                let result = self.join(now, room, peer, offer, events);
                let joined = result.is_ok();
                let _ = reply.send(result);
                if joined {
                    self.drain_peer(now, peer);
                }
            }
            Command::Answer { peer, sdp, reply } => {
                let result = match self.peers.get_mut(&peer) {
                    None => Err(SfuError::UnknownPeer),
                    Some(entry) => contain(|| entry.peer.handle_answer(now, sdp))
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
                let _ = reply.send(result);
                self.drain_peer(now, peer);
            }
            Command::Restart { peer, offer, reply } => {
                let result = match self.peers.get_mut(&peer) {
                    None => Err(SfuError::UnknownPeer),
                    Some(entry) => contain(|| entry.peer.handle_restart_offer(now, offer))
                        .unwrap_or_else(|()| {
                            Err(SfuError::Sdp("the offer could not be processed".to_owned()))
                        }),
                };
                if result.is_ok() {
                    metrics::counter!("sfu_ice_restarts_total").increment(1);
                }
                let renegotiate = result.is_ok()
                    && self
                        .peers
                        .get(&peer)
                        .is_some_and(|e| e.peer.has_pending_subscriptions());
                let _ = reply.send(result);
                if renegotiate {
                    self.negotiate(now, peer);
                }
                self.drain_peer(now, peer);
            }
            Command::Candidate { peer, candidate } => {
                if let Some(entry) = self.peers.get_mut(&peer) {
                    if let Err(err) = entry.peer.add_remote_candidate(candidate) {
                        tracing::debug!(peer = peer.0, error = %err, "remote candidate ignored");
                    }
                    self.deadlines.touch(peer);
                }
            }
            Command::Leave { peer } => self.remove_peer(now, peer, None),
            Command::SetMuted { peer, muted } => {
                let Some(entry) = self.peers.get_mut(&peer) else {
                    return;
                };
                entry.peer.muted = muted;
                let room = entry.peer.room;
                if muted && entry.peer.speaking.is_speaking() {
                    entry.peer.speaking = Default::default();
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
            Command::Tap { sender } => {
                // Each new tap clears the dead ones, so even a shard with no peers (and so no
                // ticks) holds at most the taps of transcriptions still running.
                self.sweep_taps();
                self.taps.entry(sender.room).or_default().push(sender);
            }
            // The run loop stops on it; a core driven directly just closes its peers.
            Command::Shutdown { done } => {
                self.close_all(now);
                let _ = done.send(());
            }
            Command::Rooms { reply } => {
                let _ = reply.send(self.rooms.keys().copied().collect());
            }
            Command::Counts { reply } => {
                self.sweep_taps();
                let _ = reply.send(crate::Counts {
                    rooms: self.rooms.len(),
                    peers: self.peers.len(),
                    routes: self.by_ufrag.len() + self.by_addr.len(),
                    taps: self.taps.values().map(Vec::len).sum(),
                    packets_in: self.packets_in,
                });
            }
        }
    }

    fn join(
        &mut self,
        now: Instant,
        room: RoomId,
        id: PeerId,
        offer: String,
        events: EventSender,
    ) -> Result<String, SfuError> {
        if self.peers.contains_key(&id) {
            return Err(SfuError::OutOfOrder(
                "this participant already has a media connection",
            ));
        }
        let (local, advertised) = (self.local_addr, self.advertised);
        let source = self.take_source();
        let (mut peer, answer) =
            contain(|| Peer::answer_offer(id, room, offer, local, advertised, source, now))
                .unwrap_or_else(|()| {
                    Err(SfuError::Sdp("the offer could not be processed".to_owned()))
                })?;
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
                    .filter_map(|p| self.peers.get(p).map(|e| (*p, &e.peer)))
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
            let _ = events.send(PeerEvent::TrackPublished {
                peer: *publisher,
                source: *source,
            });
        }
        self.by_ufrag.insert(peer.ufrag.clone(), id);
        self.peers.insert(id, PeerEntry { peer, events });
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
            if !self.peers.values().any(|e| e.peer.source == source) {
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
            if let Err(err) = entry.peer.open_slots(slots) {
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
        match entry.peer.poll_offer(now, true) {
            Ok(Some(sdp)) => {
                tracing::trace!(peer = id.0, %sdp, "server offer");
                let _ = entry.events.send(PeerEvent::Offer { sdp });
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(peer = id.0, error = %err, "renegotiation failed"),
        }
    }

    fn broadcast(&self, room: RoomId, event: &PeerEvent) {
        if let Some(state) = self.rooms.get(&room) {
            for p in &state.peers {
                if let Some(entry) = self.peers.get(p) {
                    let _ = entry.events.send(event.clone());
                }
            }
        }
    }

    /// Removes a peer and everything that points at it; the room's others lose its track.
    fn remove_peer(&mut self, now: Instant, id: PeerId, reason: Option<CloseReason>) {
        let Some(mut entry) = self.peers.remove(&id) else {
            return;
        };
        self.deadlines.remove(id);
        entry.peer.close();
        // Flush what close() produced (DTLS close_notify) to the client.
        while let Some(t) = entry.peer.poll_transmit() {
            self.transmits.push_back(t);
        }
        if entry.peer.is_reported_disconnected() {
            metrics::gauge!("sfu_peers_disconnected").decrement(1.0);
        }
        if let Some(reason) = reason {
            let label = match reason {
                CloseReason::ConnectTimeout => "connect_timeout",
                CloseReason::Failed => "failed",
            };
            metrics::counter!("sfu_peers_closed_total", "reason" => label).increment(1);
            let _ = entry.events.send(PeerEvent::Closed { reason });
        }
        self.by_ufrag.remove(&entry.peer.ufrag);
        self.by_addr.retain(|_, p| *p != id);
        metrics::gauge!("sfu_participants").decrement(1.0);
        let room = entry.peer.room;
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
        let published = entry.peer.is_publishing_announced();
        for other in others {
            if let Some(e) = self.peers.get_mut(&other) {
                if e.peer.is_subscribed_to(id) {
                    e.peer.unsubscribe(id);
                    let _ = e.events.send(PeerEvent::TrackUnpublished { peer: id });
                    self.negotiate(now, other);
                    self.drain_peer(now, other);
                } else if large && published {
                    // Its slot simply carries someone else next: no offer.
                    let _ = e.events.send(PeerEvent::TrackUnpublished { peer: id });
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
            let was_connected = entry.peer.state == PeerState::Connected;
            entry.peer.poll_inbound(&mut inbound);
            let first_media = entry.peer.publishing
                && !inbound.is_empty()
                && !entry.peer.is_publishing_announced();
            if first_media {
                entry.peer.mark_publishing_announced();
            }
            if !was_connected && entry.peer.state == PeerState::Connected {
                // Joins that got media, beside `sfu_peers_closed_total{reason="connect_timeout"}`
                // for those that never did: the join success rate.
                metrics::counter!("sfu_peers_connected_total").increment(1);
                let _ = entry.events.send(PeerEvent::Connected);
            }
            let room = entry.peer.room;
            let liveness = entry.peer.take_liveness_change();
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
            for addr in entry.peer.take_forgotten() {
                if self.by_addr.get(&addr) == Some(&id) {
                    self.by_addr.remove(&addr);
                }
            }
            while let Some((addr, bytes)) = entry.peer.poll_transmit() {
                if stun::is_binding_success(&bytes) {
                    // The agent answered a check that passed message integrity: from now on
                    // this address speaks for this peer.
                    self.by_addr.insert(addr, id);
                }
                self.transmits.push_back((addr, bytes));
            }
            (room, entry.peer.state, entry.peer.muted)
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
        let source = self.peers.get(&publisher).map_or(0, |e| e.peer.source);
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
            if let Err(err) = entry.peer.subscribe(publisher) {
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
            .is_some_and(|e| e.peer.speaking.is_speaking())
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
        let started = Instant::now();
        let csrc = self.peers.get(&publisher).map_or(0, |e| e.peer.source);
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
                            if !entry.peer.forward(now, publisher, &rtp.packet) {
                                metrics::counter!("sfu_packets_dropped_total", "reason" => "not_subscribed").increment(1);
                            }
                        }
                        reached.push(*listener);
                    }
                }
                Route::Slots(targets) => {
                    for (listener, slot) in targets {
                        if let Some(entry) = self.peers.get_mut(listener) {
                            if !entry
                                .peer
                                .forward_to_slot(now, *slot, publisher, csrc, &rtp.packet)
                            {
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
                while let Some(t) = entry.peer.poll_transmit() {
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
        let changed = self
            .peers
            .get_mut(&peer)
            .and_then(|e| e.peer.speaking.handle_level(now, level));
        if let Some(speaking) = changed {
            self.broadcast(room, &PeerEvent::Speaking { peer, speaking });
            self.reselect(now, room);
        }
        self.update_active_speaker(now, room);
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
                    speaking: e.peer.speaking.is_speaking() && !e.peer.muted,
                    level: e.peer.speaking.level(),
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
            .filter_map(|p| self.peers.get(p).map(|e| (*p, &e.peer.speaking)))
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
            entry.peer.handle_timeout(now);
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
            if let PeerState::Connecting { since } = entry.peer.state {
                if now.duration_since(since) >= self.config.connect_timeout {
                    self.remove_peer(now, id, Some(CloseReason::ConnectTimeout));
                    continue;
                }
            }
            entry.peer.check_liveness(
                now,
                self.config.ice_disconnected_timeout,
                self.config.disconnect_grace,
            );
            let room = entry.peer.room;
            if let Some(speaking) = entry.peer.speaking.handle_timeout(now) {
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

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, BytesMut)> {
        self.transmits.pop_front()
    }

    fn refresh_deadlines(&mut self) {
        let peers = &mut self.peers;
        self.deadlines
            .refresh(|id| peers.get_mut(&id).and_then(|e| e.peer.poll_timeout()));
    }

    /// When [`Self::handle_timeout`] is next due: the earliest peer timer or the next tick.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
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

/// The handle to a running shard.
#[derive(Debug)]
pub struct ShardHandle {
    pub local_addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
}

impl ShardHandle {
    pub(crate) fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands
            .send(command)
            .map_err(|_| SfuError::ShuttingDown)
    }
}

/// Binds shard `index`'s socket and starts its loop. The loop ends when every handle is gone.
///
/// # Errors
/// [`SfuError::Bind`] when the socket can't be bound.
pub async fn spawn(index: usize, config: &SfuConfig) -> Result<ShardHandle, SfuError> {
    let port = if config.port == 0 {
        0
    } else {
        config
            .port
            .saturating_add(u16::try_from(index).unwrap_or(0))
    };
    let socket = bind_media_socket(SocketAddr::new(config.bind_ip, port))
        .map_err(|e| SfuError::Bind(format!("{}:{port}: {e}", config.bind_ip)))?;
    let local_addr = socket
        .local_addr()
        .map_err(|e| SfuError::Bind(e.to_string()))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let core = ShardCore::new(config.clone(), local_addr);
    tokio::spawn(run(core, socket, rx));
    Ok(ShardHandle {
        local_addr,
        commands: tx,
    })
}

/// The receive buffer asked of the kernel for a shard's socket. One socket carries every
/// peer of the shard, and publishers' packets come in bursts (their 20 ms clocks tick
/// together): Linux's default 208 KiB holds about 90 small datagrams, which a busy shard
/// overflowed at 36 talking participants (UDP `RcvbufErrors`, 0.6 % loss, while Janus with a
/// socket per connection lost none; `bench/reports/side-by-side.md`). 1 MiB holds several
/// rounds of such bursts; more would only queue delay when the shard is overloaded (a 4 MiB
/// buffer let a saturated shard's latency pass 50 ms). The kernel caps it at
/// `net.core.rmem_max`.
const RECV_BUFFER_BYTES: usize = 1 << 20;

fn bind_media_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(RECV_BUFFER_BYTES)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // Linux reports twice what it granted (the bookkeeping overhead it adds).
    let granted = socket.recv_buffer_size()? / 2;
    if granted < RECV_BUFFER_BYTES {
        tracing::info!(
            granted,
            wanted = RECV_BUFFER_BYTES,
            "media socket receive buffer capped by net.core.rmem_max; raise it for large calls"
        );
    }
    UdpSocket::from_std(socket.into())
}

async fn run(
    mut core: ShardCore,
    socket: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut buf = vec![0u8; 2048];
    let mut stopped = None;
    loop {
        while let Some((addr, bytes)) = core.poll_transmit() {
            metrics::counter!("sfu_packets_out_total").increment(1);
            metrics::counter!("sfu_bytes_out_total").increment(bytes.len() as u64);
            if let Err(err) = socket.send_to(&bytes, addr).await {
                tracing::debug!(%addr, error = %err, "send failed");
            }
        }
        // The select below prefers datagrams; under steady traffic its timer branch could
        // starve, so overdue timers (RTCP, ICE keepalives, hangovers) are served here first.
        let now = Instant::now();
        let next = core.poll_timeout(now);
        if next.is_some_and(|t| t <= now) {
            core.handle_timeout(now);
            continue;
        }
        let deadline = next.unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Shutdown { done }) => {
                    stopped = Some(done);
                    break;
                }
                Some(command) => core.handle_command(Instant::now(), command),
                None => break,
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    core.handle_datagram(Instant::now(), from, &buf[..n]);
                    // Take what else is queued before flushing, to batch the work.
                    for _ in 0..32 {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => core.handle_datagram(Instant::now(), from, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                Err(err) => tracing::debug!(error = %err, "recv failed"),
            },
            () = tokio::time::sleep_until(deadline.into()) => core.handle_timeout(Instant::now()),
        }
    }
    core.close_all(Instant::now());
    while let Some((addr, bytes)) = core.poll_transmit() {
        let _ = socket.send_to(&bytes, addr).await;
    }
    if let Some(done) = stopped {
        let _ = done.send(());
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn a_shard_socket_gets_a_receive_buffer_for_bursts_up_to_the_kernel_cap() {
        let socket = bind_media_socket("127.0.0.1:0".parse().expect("address")).expect("bind");
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(RECV_BUFFER_BYTES);
        let granted = socket2::SockRef::from(&socket)
            .recv_buffer_size()
            .expect("SO_RCVBUF")
            / 2;
        // The default (208 KiB) overflowed at 36 talking participants.
        assert!(
            granted >= RECV_BUFFER_BYTES.min(cap),
            "granted {granted} bytes, cap {cap}"
        );
    }

    #[test]
    fn taps_of_ended_transcriptions_are_dropped_even_in_a_silent_room() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut core = ShardCore::new(SfuConfig::default(), addr);
        let now = Instant::now();
        // A start/stop loop with nobody speaking: each round's tap is dropped by its owner.
        for _ in 0..50 {
            let (sender, receiver) = crate::tap::channel(RoomId(1), 4);
            core.handle_command(now, Command::Tap { sender });
            drop(receiver);
        }
        let (sender, _running) = crate::tap::channel(RoomId(2), 4);
        core.handle_command(now, Command::Tap { sender });
        let (reply, mut counts) = oneshot::channel();
        core.handle_command(now, Command::Counts { reply });
        let counts = counts.try_recv().expect("counts answered at once");
        assert_eq!(
            counts.taps, 1,
            "only the running transcription's tap is held"
        );
    }
}
