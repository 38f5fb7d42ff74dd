//! One participant's WebRTC connection to the SFU: the `rtc` peer connection plus what the
//! SFU tracks about it (published track, subscriptions, negotiation, speaking).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceCandidateInit};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::audio::{
    audio_engine, audio_level, audio_track, extmap_id, host_candidate, opus_payload_type,
    passive_tcp_candidate, AUDIO_LEVEL_URI, OPUS_PAYLOAD_TYPE,
};
use crate::ice_lite::{Credentials, IceLite};
use crate::rewrite::SequenceRewriter;
use crate::speaking::SpeakingDetector;
use crate::{PeerId, RoomId, SfuError};

/// Where a peer is in the offer/answer dance. The client offers once (join); after that only
/// the server offers, one at a time, so offers never cross (no glare).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    Stable,
    /// A server offer is out; changes made meanwhile wait for its answer.
    AwaitingAnswer {
        changed_since: bool,
    },
}

/// Lifecycle of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Connecting {
        since: Instant,
    },
    Connected,
    /// Nothing authenticated has arrived from the client for a while (network blip, sleep,
    /// Wi-Fi change). Its slot, subscriptions and SSRCs are kept; any check or packet from
    /// a proven address, or an ICE restart, brings it back.
    Disconnected {
        since: Instant,
    },
    /// DTLS failed, the client closed, or it stayed disconnected past the grace period:
    /// remove it.
    Failed,
}

/// An outgoing stream: one publisher's audio, sent to this peer on its own m-line and SSRC.
#[derive(Debug)]
struct Subscription {
    sender: RTCRtpSenderId,
    ssrc: u32,
    rewriter: SequenceRewriter,
    first_seq: u16,
    first_ts: u32,
    /// Sending starts only once the client has answered an offer that announced this
    /// stream; packets on an SSRC it doesn't know yet would be bound to an anonymous track.
    stage: SubscriptionStage,
}

/// One of a listener's audio slots in a large room: a stream negotiated once, at join, on
/// which the shard puts whichever speaker holds the slot's place now. Each packet names its
/// speaker in the CSRC list.
#[derive(Debug)]
struct AudioSlot {
    stream: Subscription,
    /// The speaker whose packets this slot carried last.
    source: Option<PeerId>,
    last_sent: Option<Instant>,
}

impl Subscription {
    /// The sequence number and timestamp `source` goes out with on this stream.
    fn rewrite(&mut self, source: &rtc::rtp::Packet) -> (u16, u32) {
        self.rewriter.rewrite(
            source.header.ssrc,
            source.header.sequence_number,
            source.header.timestamp,
            self.first_seq,
            self.first_ts,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubscriptionStage {
    Pending,
    Offered,
    Live,
}

/// RTP that arrived from this peer's client, to be forwarded by the shard.
#[derive(Debug)]
pub struct InboundRtp {
    pub packet: rtc::rtp::Packet,
    pub audio_level: Option<u8>,
}

pub struct Peer {
    pub id: PeerId,
    pub room: RoomId,
    pub ufrag: String,
    pub state: PeerState,
    pub negotiation: Negotiation,
    pub muted: bool,
    pub speaking: SpeakingDetector,
    /// RTP has arrived from the client.
    pub publishing: bool,
    publishing_announced: bool,
    pc: RTCPeerConnection,
    local_addr: SocketAddr,
    /// The ICE checks are answered here, not by `rtc`'s agent (see `ice_lite`).
    ice: IceLite,
    /// The address `rtc`'s ICE transport believes the client has; its datagrams are
    /// re-addressed to wherever the client is now ([`IceLite::path`]).
    anchor: Option<SocketAddr>,
    /// `rtc`'s ICE transport has a selected pair, so DTLS and SRTP pass through it.
    rtc_ice_ready: bool,
    /// Our STUN responses, sent before anything `rtc` produces.
    outbox: VecDeque<(SocketAddr, BytesMut)>,
    /// Proven addresses the ICE layer forgot; the shard drops their routes.
    forgotten: Vec<SocketAddr>,
    /// A change between connected and disconnected not yet reported to the room.
    liveness_change: Option<bool>,
    reported_disconnected: bool,
    audio_level_id: Option<u8>,
    /// Opus's payload type in this client's SDP (the forwarded packets carry it).
    opus_pt: u8,
    subscriptions: HashMap<PeerId, Subscription>,
    /// Subscriptions of publishers who left: their m-lines are reused before new ones are
    /// added, so the SDP doesn't grow with every join and leave.
    idle: Vec<Subscription>,
    /// In a large room: the audio slots (and no subscriptions).
    slots: Vec<AudioSlot>,
    /// The number this peer's audio goes by in the CSRC of slot packets: unique on its shard.
    pub source: u32,
    /// The client's relay (TURN) candidates, from its trickled candidates: media from one of
    /// these addresses comes through a TURN server.
    relays: Vec<SocketAddr>,
    /// How its media reached us when last counted (`sfu_peers{transport}`).
    pub transport: Option<Transport>,
}

/// Where the server is for a peer: the shard's socket, and the candidates it advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerAddrs {
    /// The shard's UDP socket.
    pub local: SocketAddr,
    /// The UDP host candidate (the public address behind 1:1 NAT).
    pub udp: SocketAddr,
    /// The passive ICE-TCP candidate, when ICE-TCP is on.
    pub tcp: Option<SocketAddr>,
}

/// How a client's media reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Straight over UDP.
    Udp,
    /// Over an ICE-TCP connection to our passive candidate.
    Tcp,
    /// Through the client's TURN server (any protocol between the client and TURN).
    Relay,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Relay => "relay",
        }
    }
}

/// Most relay candidates kept per client (a browser gathers one per TURN URL and family).
const MAX_RELAYS: usize = 8;

/// The address of a `typ relay` candidate line (`candidate:… <ip> <port> typ relay …`).
fn relay_address(candidate: &str) -> Option<SocketAddr> {
    let fields: Vec<&str> = candidate.split_whitespace().collect();
    let typ = fields.iter().position(|f| *f == "typ")?;
    if fields.get(typ + 1) != Some(&"relay") || typ < 2 {
        return None;
    }
    let ip = fields[typ - 2].parse().ok()?;
    let port = fields[typ - 1].parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("room", &self.room)
            .field("state", &self.state)
            .field("subscriptions", &self.subscriptions.len())
            .finish_non_exhaustive()
    }
}

/// The track a subscriber receives for `publisher`: the stream id names the publisher, so the
/// client can tell whose audio it is.
fn outgoing_track(publisher: PeerId, ssrc: u32) -> MediaStreamTrack {
    audio_track(
        format!("p{}", publisher.0),
        format!("a{}-{ssrc}", publisher.0),
        format!("participant {}", publisher.0),
        ssrc,
    )
}

/// A slot that carried nothing for longer than this (three 20 ms frames) was paused on
/// purpose: its speaker stopped speaking or lost the place. Shorter gaps are loss upstream,
/// left for the receiver to conceal.
const SLOT_RESUME_GAP: Duration = Duration::from_millis(60);

/// The track of a listener's audio slot `index`: the stream id `slot<index>` names no
/// speaker; each packet's CSRC does.
fn slot_track(index: usize, ssrc: u32) -> MediaStreamTrack {
    audio_track(
        format!("slot{index}"),
        format!("slot{index}-{ssrc}"),
        format!("audio slot {index}"),
        ssrc,
    )
}

/// The parser accepts nearly anything; refuse what is plainly not a client's audio offer
/// before it becomes a peer connection.
fn validate_offer(sdp: &str) -> Result<(), SfuError> {
    const MAX_SDP_BYTES: usize = 32 * 1024;
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SfuError::Sdp(format!(
            "offer is larger than {MAX_SDP_BYTES} bytes"
        )));
    }
    if !sdp.starts_with("v=0") {
        return Err(SfuError::Sdp("offer does not start with v=0".to_owned()));
    }
    let media: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
    if !media.iter().any(|m| m.starts_with("m=audio ")) {
        return Err(SfuError::Sdp("offer has no audio section".to_owned()));
    }
    if media.len() > 4 {
        return Err(SfuError::Sdp(
            "offer has too many media sections".to_owned(),
        ));
    }
    Ok(())
}

/// The client's ICE username fragment and password, which every offer must carry.
fn offer_credentials(sdp: &str) -> Result<Credentials, SfuError> {
    Credentials::from_sdp(sdp)
        .ok_or_else(|| SfuError::Sdp("offer has no ICE username fragment and password".to_owned()))
}

/// Applies the client's offer and returns our answer.
fn answer(pc: &mut RTCPeerConnection, now: Instant, offer_sdp: String) -> Result<String, SfuError> {
    let sdp_err = |e: rtc::shared::error::Error| SfuError::Sdp(e.to_string());
    let offer = RTCSessionDescription::offer(offer_sdp).map_err(sdp_err)?;
    pc.set_remote_description(now, offer).map_err(sdp_err)?;
    let answer = pc.create_answer(None).map_err(sdp_err)?;
    pc.set_local_description(now, answer).map_err(sdp_err)?;
    pc.local_description()
        .map(|d| d.sdp)
        .ok_or_else(|| SfuError::Sdp("no local description after answering".to_owned()))
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Peer {
    /// Creates the server side of a client's offer and returns the answer SDP.
    ///
    /// # Errors
    /// [`SfuError::Sdp`] when the offer can't be used.
    pub fn answer_offer(
        id: PeerId,
        room: RoomId,
        offer_sdp: String,
        server: ServerAddrs,
        source: u32,
        now: Instant,
    ) -> Result<(Self, String), SfuError> {
        let local_addr = server.local;
        let sdp_err = |e: rtc::shared::error::Error| SfuError::Sdp(e.to_string());
        // The server picks its own ICE username fragment so the shard can route STUN by it.
        let ufrag = random_token(16);
        let pwd = random_token(32);
        validate_offer(&offer_sdp)?;
        let remote = offer_credentials(&offer_sdp)?;
        let ice = IceLite::new(
            Credentials {
                ufrag: ufrag.clone(),
                pwd: pwd.clone(),
            },
            remote,
        )
        .map_err(|e| SfuError::Sdp(e.to_string()))?;
        // Liveness is judged by `IceLite` (any authenticated datagram on any proven path),
        // so `rtc`'s agent gets no timers of its own: zero disables them.
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), pwd)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .with_ice_timeouts(
                Some(Duration::ZERO),
                Some(Duration::ZERO),
                Some(Duration::ZERO),
            )
            .build();
        let (media, registry) = audio_engine().map_err(sdp_err)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(sdp_err)?;

        let audio_level_id = extmap_id(&offer_sdp, AUDIO_LEVEL_URI);
        let opus_pt = opus_payload_type(&offer_sdp).unwrap_or(OPUS_PAYLOAD_TYPE);
        let offer = RTCSessionDescription::offer(offer_sdp).map_err(sdp_err)?;
        pc.set_remote_description(now, offer).map_err(sdp_err)?;
        let candidate = host_candidate(server.udp).map_err(sdp_err)?;
        pc.add_local_candidate(candidate).map_err(sdp_err)?;
        if let Some(tcp) = server.tcp {
            // After the UDP one, and at a lower priority: browsers take it only when UDP fails.
            let candidate = passive_tcp_candidate(tcp).map_err(sdp_err)?;
            pc.add_local_candidate(candidate).map_err(sdp_err)?;
        }
        let answer = pc.create_answer(None).map_err(sdp_err)?;
        pc.set_local_description(now, answer).map_err(sdp_err)?;
        let answer_sdp = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| SfuError::Sdp("no local description after answering".to_owned()))?;

        Ok((
            Self {
                id,
                room,
                ufrag,
                state: PeerState::Connecting { since: now },
                negotiation: Negotiation::Stable,
                muted: false,
                speaking: SpeakingDetector::default(),
                publishing: false,
                publishing_announced: false,
                pc,
                local_addr,
                ice,
                anchor: None,
                rtc_ice_ready: false,
                outbox: VecDeque::new(),
                forgotten: Vec::new(),
                liveness_change: None,
                reported_disconnected: false,
                audio_level_id,
                opus_pt,
                subscriptions: HashMap::new(),
                idle: Vec::new(),
                slots: Vec::new(),
                source,
                relays: Vec::new(),
                transport: None,
            },
            answer_sdp,
        ))
    }

    /// Feeds one datagram from the client: checks are answered here; DTLS and SRTP from a
    /// proven address go to `rtc`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if crate::stun::is_stun(data) {
            let known = self.ice.is_proven(from);
            match self.ice.handle_check(now, from, data) {
                Ok(answered) => {
                    self.forgotten.extend(answered.forgotten);
                    if !known {
                        tracing::debug!(peer = self.id.0, %from, nominated = answered.nominated, "client address proven");
                    }
                    self.outbox
                        .push_back((from, BytesMut::from(&answered.response[..])));
                    if answered.moved {
                        tracing::debug!(peer = self.id.0, %from, nominated = answered.nominated, "client path");
                    }
                    if !self.rtc_ice_ready {
                        self.connect_rtc(now, from);
                    }
                    self.heard();
                }
                Err(err) => tracing::debug!(peer = self.id.0, %from, error = %err, "check ignored"),
            }
            return;
        }
        if !self.ice.handle_media(now, from) {
            return;
        }
        self.heard();
        // `rtc` only checks that a selected pair exists; the anchor keeps its view stable.
        self.feed_rtc(now, self.anchor.unwrap_or(from), data);
    }

    /// Something authenticated arrived from the client.
    fn heard(&mut self) {
        if let PeerState::Disconnected { .. } = self.state {
            self.state = PeerState::Connected;
            self.liveness_change = Some(true);
        }
    }

    /// Brings `rtc`'s ICE transport to a selected pair by playing a well-behaved client at
    /// `anchor`: a check, the answer to the agent's triggered check, a nominating check.
    /// Everything happens here, synchronously, so DTLS from the real client (which starts
    /// once our success response reaches it) finds the transport ready.
    fn connect_rtc(&mut self, now: Instant, anchor: SocketAddr) {
        self.anchor = Some(anchor);
        for nominate in [false, true] {
            let check = match self.ice.rtc_check(nominate) {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(peer = self.id.0, error = %err, "could not drive the ICE transport");
                    return;
                }
            };
            self.feed_rtc(now, anchor, &check);
            self.answer_rtc_pings(now, anchor);
        }
        // Confirmed (or withdrawn) by the transport's state events in `poll_inbound`.
        self.rtc_ice_ready = true;
    }

    fn feed_rtc(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        };
        if let Err(err) = self.pc.handle_read(msg) {
            tracing::debug!(peer = self.id.0, error = %err, "datagram rejected");
        }
    }

    /// Answers the checks `rtc`'s agent sends (to the anchor) as the client would; its own
    /// responses are dropped (ours went out already); anything else is kept for sending.
    fn answer_rtc_pings(&mut self, now: Instant, anchor: SocketAddr) {
        while let Some(m) = self.pc.poll_write() {
            if !crate::stun::is_stun(&m.message) {
                let to = self.ice.path().unwrap_or(m.transport.peer_addr);
                self.outbox.push_back((to, m.message));
                continue;
            }
            match self.ice.rtc_ping_response(&m.message, self.local_addr) {
                Ok(Some(response)) => self.feed_rtc(now, anchor, &response),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(peer = self.id.0, error = %err, "could not answer the ICE transport")
                }
            }
        }
    }

    /// Checks the client's liveness: no authenticated datagram for `disconnected_after`
    /// makes it disconnected; staying so for `grace` fails it.
    pub fn check_liveness(&mut self, now: Instant, disconnected_after: Duration, grace: Duration) {
        match self.state {
            PeerState::Connected => {
                let silent = self
                    .ice
                    .last_heard()
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                if silent >= disconnected_after {
                    self.state = PeerState::Disconnected { since: now };
                    self.liveness_change = Some(false);
                }
            }
            PeerState::Disconnected { since } if now.saturating_duration_since(since) >= grace => {
                self.state = PeerState::Failed;
            }
            _ => {}
        }
    }

    /// Where the client's media comes from now, as its ICE nominated it.
    pub fn media_path(&self) -> Option<SocketAddr> {
        self.ice.path()
    }

    /// Whether `addr` is one of the client's relay candidates.
    pub fn is_relay(&self, addr: SocketAddr) -> bool {
        self.relays.contains(&addr)
    }

    /// Addresses no longer proven for this peer (their routes must go).
    pub fn take_forgotten(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.forgotten)
    }

    /// A change between connected (`true`) and disconnected to tell the room about.
    pub fn take_liveness_change(&mut self) -> Option<bool> {
        let change = self.liveness_change.take();
        if let Some(connected) = change {
            self.reported_disconnected = !connected;
        }
        change
    }

    /// The room was told this peer is disconnected and not yet that it is back.
    pub fn is_reported_disconnected(&self) -> bool {
        self.reported_disconnected
    }

    /// The client restarted ICE: a new offer with a new username fragment and password
    /// (after a network change, or when its ICE failed). Subscriptions, SSRCs and DTLS are
    /// kept. Returns the answer.
    ///
    /// # Errors
    /// [`SfuError::OutOfOrder`] while a server offer is outstanding (the client answers it
    /// and retries); [`SfuError::Sdp`] for an unusable offer.
    pub fn handle_restart_offer(&mut self, now: Instant, sdp: String) -> Result<String, SfuError> {
        if self.negotiation != Negotiation::Stable {
            return Err(SfuError::OutOfOrder(
                "a server offer is outstanding: answer it, then offer again",
            ));
        }
        validate_offer(&sdp)?;
        let remote = offer_credentials(&sdp)?;
        let answer_sdp = answer(&mut self.pc, now, sdp)?;
        if remote != *self.ice.remote() {
            tracing::info!(peer = self.id.0, "ICE restart");
            self.ice.set_remote(remote);
            // `rtc` restarted its agent (no selected pair: DTLS and SRTP would be dropped):
            // show it the client again right away, so media on the old path keeps flowing
            // while the client checks its new candidates.
            self.rtc_ice_ready = false;
            if let Some(anchor) = self.anchor {
                self.connect_rtc(now, anchor);
            }
        }
        Ok(answer_sdp)
    }

    /// Whether subscriptions wait for a server offer.
    pub fn has_pending_subscriptions(&self) -> bool {
        self.subscriptions
            .values()
            .chain(self.slots.iter().map(|s| &s.stream))
            .any(|s| s.stage == SubscriptionStage::Pending)
    }

    /// The client's remote ICE candidate (trickle). An ICE-lite server doesn't need them to
    /// connect, but takes them for completeness.
    pub fn add_remote_candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), SfuError> {
        if let Some(relay) = relay_address(&candidate.candidate) {
            if self.relays.len() < MAX_RELAYS && !self.relays.contains(&relay) {
                self.relays.push(relay);
            }
        }
        self.pc
            .add_remote_candidate(candidate)
            .map_err(|e| SfuError::Candidate(e.to_string()))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(err) = self.pc.handle_timeout(now) {
            tracing::debug!(peer = self.id.0, error = %err, "timeout handling failed");
        }
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    /// Datagrams to send, as (destination, bytes): our STUN responses, then what `rtc`
    /// produced, re-addressed to the client's current path.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, BytesMut)> {
        if let Some(t) = self.outbox.pop_front() {
            return Some(t);
        }
        loop {
            let m = self.pc.poll_write()?;
            // `rtc`'s agent only ever talks to the synthetic client (answered in
            // `connect_rtc`); a lite agent sends the real one no checks.
            if crate::stun::is_stun(&m.message) {
                continue;
            }
            let to = self.ice.path().unwrap_or(m.transport.peer_addr);
            return Some((to, m.message));
        }
    }

    /// Processes the connection's events; returns the RTP received from the client.
    pub fn poll_inbound(&mut self, inbound: &mut Vec<InboundRtp>) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                    tracing::debug!(peer = self.id.0, %state, "ice state");
                    match state {
                        RTCIceConnectionState::Connected | RTCIceConnectionState::Completed => {
                            self.rtc_ice_ready = true;
                        }
                        // Its agent has no timers; this is a restart. The next check from
                        // the client shows it the way again.
                        _ => self.rtc_ice_ready = false,
                    }
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    tracing::debug!(peer = self.id.0, %state, "connection state");
                    match state {
                        // DTLS is up. Later liveness is ours to judge (`check_liveness`).
                        RTCPeerConnectionState::Connected => {
                            if let PeerState::Connecting { .. } = self.state {
                                self.state = PeerState::Connected;
                            }
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            self.state = PeerState::Failed
                        }
                        _ => {}
                    }
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    tracing::debug!(peer = self.id.0, track = %init.track_id, ssrc = init.ssrc, "client track open");
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_track, packet) = message {
                let audio_level = audio_level(&packet.header, self.audio_level_id);
                self.publishing = true;
                inbound.push(InboundRtp {
                    packet,
                    audio_level,
                });
            }
        }
    }

    pub fn is_publishing_announced(&self) -> bool {
        self.publishing_announced
    }

    pub fn mark_publishing_announced(&mut self) {
        self.publishing_announced = true;
    }

    pub fn is_subscribed_to(&self, publisher: PeerId) -> bool {
        self.subscriptions.contains_key(&publisher)
    }

    /// Starts sending `publisher`'s audio to this peer (takes effect after renegotiation).
    ///
    /// # Errors
    /// [`SfuError::Negotiation`] when the connection refuses the new sender.
    pub fn subscribe(&mut self, publisher: PeerId) -> Result<(), SfuError> {
        if self.subscriptions.contains_key(&publisher) || self.in_large_room() {
            return Ok(());
        }
        let subscription = self.open_stream(format!("p{}", publisher.0), |ssrc| {
            outgoing_track(publisher, ssrc)
        })?;
        self.subscriptions.insert(publisher, subscription);
        self.mark_changed();
        Ok(())
    }

    /// An m-line sending `track`: a freed one reused (same SSRC, and the rewriter carries
    /// its numbering on, so to the receiver it is one stream that paused and resumed with a
    /// new source and msid), or a new one.
    fn open_stream(
        &mut self,
        stream: String,
        track: impl Fn(u32) -> MediaStreamTrack,
    ) -> Result<Subscription, SfuError> {
        let neg = |e: rtc::shared::error::Error| SfuError::Negotiation(e.to_string());
        Ok(match self.idle.pop() {
            Some(mut idle) => {
                if let Some(mut t) = self.pc.rtp_transceiver(idle.sender.into()) {
                    t.set_direction(RTCRtpTransceiverDirection::Sendonly);
                }
                let mut sender = self
                    .pc
                    .rtp_sender(idle.sender)
                    .ok_or_else(|| SfuError::Negotiation("idle sender vanished".to_owned()))?;
                sender.replace_track(track(idle.ssrc)).map_err(neg)?;
                sender.set_streams(vec![stream]);
                idle.stage = SubscriptionStage::Pending;
                idle
            }
            None => {
                let ssrc = rand::random::<u32>();
                let init = RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![stream],
                    send_encodings: vec![],
                };
                let transceiver = self
                    .pc
                    .add_transceiver_from_track(track(ssrc), Some(init))
                    .map_err(neg)?;
                let sender = self
                    .pc
                    .rtp_transceiver(transceiver)
                    .and_then(|t| t.sender())
                    .ok_or_else(|| {
                        SfuError::Negotiation("new transceiver has no sender".to_owned())
                    })?;
                Subscription {
                    sender,
                    ssrc,
                    rewriter: SequenceRewriter::new(),
                    first_seq: rand::random(),
                    first_ts: rand::random(),
                    stage: SubscriptionStage::Pending,
                }
            }
        })
    }

    /// This peer is in a large room: it gets `count` audio slots (takes effect after the next
    /// server offer) in place of its per-publisher streams, whose m-lines the slots reuse.
    /// Done once; later joins and leaves in the room change nothing here.
    ///
    /// # Errors
    /// [`SfuError::Negotiation`] when the connection refuses a new sender.
    pub fn open_slots(&mut self, count: usize) -> Result<(), SfuError> {
        if self.in_large_room() {
            return Ok(());
        }
        let publishers: Vec<PeerId> = self.subscriptions.keys().copied().collect();
        for publisher in publishers {
            self.unsubscribe(publisher);
        }
        for index in 0..count {
            let stream =
                self.open_stream(format!("slot{index}"), |ssrc| slot_track(index, ssrc))?;
            self.slots.push(AudioSlot {
                stream,
                source: None,
                last_sent: None,
            });
        }
        self.mark_changed();
        Ok(())
    }

    /// Whether this peer listens through audio slots.
    pub fn in_large_room(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Stops sending `publisher`'s audio; its m-line goes inactive and is kept for reuse.
    pub fn unsubscribe(&mut self, publisher: PeerId) {
        let Some(sub) = self.subscriptions.remove(&publisher) else {
            return;
        };
        if let Some(mut t) = self.pc.rtp_transceiver(sub.sender.into()) {
            t.set_direction(RTCRtpTransceiverDirection::Inactive);
        }
        self.idle.push(sub);
        self.mark_changed();
    }

    fn mark_changed(&mut self) {
        if let Negotiation::AwaitingAnswer { .. } = self.negotiation {
            self.negotiation = Negotiation::AwaitingAnswer {
                changed_since: true,
            };
        }
    }

    /// Forwards one publisher packet to this peer under the subscription's SSRC and numbering.
    /// Returns false when the packet could not be written (counted as dropped).
    pub fn forward(&mut self, now: Instant, publisher: PeerId, source: &rtc::rtp::Packet) -> bool {
        let connecting = matches!(self.state, PeerState::Connecting { .. });
        let Some(sub) = self.subscriptions.get_mut(&publisher) else {
            return false;
        };
        // Not live yet, or SRTP not keyed yet (DTLS still running): nothing to send it with.
        if sub.stage != SubscriptionStage::Live || connecting {
            return true;
        }
        let (seq, ts) = sub.rewrite(source);
        let (sender, ssrc) = (sub.sender, sub.ssrc);
        self.write(
            now,
            sender,
            ssrc,
            seq,
            ts,
            source.header.marker,
            Vec::new(),
            source,
        )
    }

    /// Forwards one packet of `publisher` (whose CSRC is `csrc`) on audio slot `index`. A
    /// packet from another speaker than the slot's last, or after the slot carried nothing
    /// for a while (its speaker stopped and spoke again), continues the stream: the numbering
    /// goes on without a gap, the timestamp moves by the real time since the slot's last
    /// packet, and the marker bit starts a talkspurt, so the receiver's jitter buffer sees a
    /// pause in one stream and re-syncs rather than conceals packets that never existed.
    /// Returns false when the packet could not be written.
    pub fn forward_to_slot(
        &mut self,
        now: Instant,
        index: usize,
        publisher: PeerId,
        csrc: u32,
        source: &rtc::rtp::Packet,
    ) -> bool {
        let connecting = matches!(self.state, PeerState::Connecting { .. });
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        if slot.stream.stage != SubscriptionStage::Live || connecting {
            return true;
        }
        let switched = slot.source != Some(publisher);
        let elapsed = slot
            .last_sent
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let resumed = slot.last_sent.is_some() && elapsed > SLOT_RESUME_GAP;
        if (switched && slot.source.is_some()) || resumed {
            // 48 kHz Opus clock; a slot silent for over a day wraps harmlessly.
            let units = u32::try_from(elapsed.as_micros() * 48 / 1000).unwrap_or(u32::MAX);
            slot.stream.rewriter.switch_source(units);
        }
        slot.source = Some(publisher);
        slot.last_sent = Some(now);
        let sub = &mut slot.stream;
        let (seq, ts) = sub.rewrite(source);
        let (sender, ssrc) = (sub.sender, sub.ssrc);
        let marker = source.header.marker || switched || resumed;
        self.write(now, sender, ssrc, seq, ts, marker, vec![csrc], source)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        now: Instant,
        sender: RTCRtpSenderId,
        ssrc: u32,
        sequence_number: u16,
        timestamp: u32,
        marker: bool,
        csrc: Vec<u32>,
        source: &rtc::rtp::Packet,
    ) -> bool {
        // A fresh header rather than a clone of the publisher's: extension ids are negotiated
        // per leg (the publisher's mean nothing here), and cloning their list only to clear
        // it cost an allocation per forwarded packet. The payload is shared, not copied.
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker,
                payload_type: self.opus_pt,
                sequence_number,
                timestamp,
                ssrc,
                csrc,
                ..Default::default()
            },
            payload: source.payload.clone(),
        };
        match self.pc.rtp_sender(sender) {
            Some(mut s) => match s.write_rtp(now, packet) {
                Ok(()) => true,
                Err(err) => {
                    tracing::trace!(peer = self.id.0, error = %err, "write_rtp failed");
                    false
                }
            },
            None => false,
        }
    }

    /// Starts a server offer if subscriptions changed and no offer is out. Returns the SDP to
    /// send to the client.
    ///
    /// # Errors
    /// [`SfuError::Negotiation`] when the offer can't be made.
    pub fn poll_offer(&mut self, now: Instant, changed: bool) -> Result<Option<String>, SfuError> {
        if !changed || self.negotiation != Negotiation::Stable {
            return Ok(None);
        }
        let neg = |e: rtc::shared::error::Error| SfuError::Negotiation(e.to_string());
        let offer = self.pc.create_offer(None).map_err(neg)?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(now, offer).map_err(neg)?;
        self.negotiation = Negotiation::AwaitingAnswer {
            changed_since: false,
        };
        let slots = self.slots.iter_mut().map(|s| &mut s.stream);
        for sub in self.subscriptions.values_mut().chain(slots) {
            if sub.stage == SubscriptionStage::Pending {
                sub.stage = SubscriptionStage::Offered;
            }
        }
        Ok(Some(sdp))
    }

    /// The client's answer to our last offer. Returns whether another offer is needed for
    /// changes made while this one was out.
    ///
    /// # Errors
    /// [`SfuError::OutOfOrder`] with no offer out; [`SfuError::Sdp`] for a bad answer.
    pub fn handle_answer(&mut self, now: Instant, sdp: String) -> Result<bool, SfuError> {
        let Negotiation::AwaitingAnswer { changed_since } = self.negotiation else {
            return Err(SfuError::OutOfOrder("answer without an outstanding offer"));
        };
        let answer =
            RTCSessionDescription::answer(sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        self.negotiation = Negotiation::Stable;
        let slots = self.slots.iter_mut().map(|s| &mut s.stream);
        for sub in self.subscriptions.values_mut().chain(slots) {
            if sub.stage == SubscriptionStage::Offered {
                sub.stage = SubscriptionStage::Live;
            }
        }
        Ok(changed_since)
    }

    pub fn close(&mut self) {
        let _ = self.pc.close();
    }
}

#[cfg(test)]
mod tests {
    use super::relay_address;

    #[test]
    fn relay_candidates_are_told_from_the_others_by_their_type() {
        let relay =
            "candidate:1 1 udp 41885695 203.0.113.7 49152 typ relay raddr 10.0.0.2 rport 5000";
        assert_eq!(
            relay_address(relay),
            Some("203.0.113.7:49152".parse().expect("address"))
        );
        let host = "candidate:2 1 udp 2113937151 10.0.0.2 5000 typ host";
        assert_eq!(relay_address(host), None);
        assert_eq!(
            relay_address("typ relay"),
            None,
            "too short to name an address"
        );
        assert_eq!(relay_address("candidate:3 1 udp 1 x y typ relay"), None);
    }
}
