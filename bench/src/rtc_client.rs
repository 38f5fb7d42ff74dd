//! A WebRTC audio client: the browser's side of a call, on the sans-I/O `rtc` core.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sfu::audio::{
    audio_engine, audio_track, extmap_id, host_candidate, AUDIO_LEVEL_URI, OPUS_PAYLOAD_TYPE,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::impair::{is_media, ImpairedLink, Impairment};
use crate::latency::{self, LatencyHistogram};
use crate::tone::{FrameSource, ToneSource, FRAME_SAMPLES};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("webrtc: {0}")]
    Rtc(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    #[error("client stopped")]
    Stopped,
}

/// The level a talking participant's packets announce: -20 dBov.
pub const TALKING_LEVEL: u8 = 20;

fn rtc_err(e: rtc::shared::error::Error) -> ClientError {
    ClientError::Rtc(e.to_string())
}

/// What arrived from one remote participant (keyed by the stream id `p<peer>`).
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub packets: u64,
    pub bytes: u64,
    pub ssrcs: Vec<u32>,
    /// Sequence numbers that never arrived between the first and last one seen.
    pub missing: u64,
    last_seq: Option<u16>,
    /// The CSRC of the last packet (a large room's slot: who it carries now).
    pub last_csrc: Option<u32>,
    /// RTP timestamp and arrival of the last packet: across a switch of speaker the
    /// timestamp must move on by about the time that passed.
    last_ts: Option<(u32, Instant)>,
    /// The largest difference seen between a packet's timestamp step and its arrival step
    /// (ms), over packets that follow a switch of speaker.
    pub worst_switch_skew_ms: f64,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    pub connected_after: Option<Duration>,
    pub failed: bool,
    pub sent_packets: u64,
    pub streams: HashMap<String, StreamStats>,
    /// Packets by the speaker their CSRC names (a large room's audio slots).
    pub sources: HashMap<u32, SourceStats>,
    /// Packets whose stream changed speaker (CSRC) from the one before on that stream, and
    /// how many of those carried the marker bit (a new talkspurt).
    pub switches: u64,
    pub marked_switches: u64,
}

/// What arrived naming one speaker in its CSRC, on whichever stream.
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    pub packets: u64,
    pub last_at: Option<Instant>,
}

impl ClientStats {
    pub fn packets_from(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |s| s.packets)
    }

    /// Sequence gaps over every stream received (a large room's slots carry several
    /// speakers each, so their gaps belong to no one speaker).
    pub fn missing_total(&self) -> u64 {
        self.streams.values().map(|s| s.missing).sum()
    }

    /// Packets whose CSRC named `source`.
    pub fn packets_from_source(&self, source: u32) -> u64 {
        self.sources.get(&source).map_or(0, |s| s.packets)
    }
}

enum Command {
    SetAnswer(String, oneshot::Sender<Result<(), ClientError>>),
    HandleOffer(String, oneshot::Sender<Result<String, ClientError>>),
    Publish(bool),
    Level(u8),
    StampSendTimes,
    Offline(bool),
    Impair(Impairment),
    Rebind(oneshot::Sender<Result<SocketAddr, ClientError>>),
    Stop,
    Vanish,
}

/// A running client. Dropping it stops the client without a goodbye (like a crashed tab).
pub struct RtcClient {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<Mutex<ClientStats>>,
    /// Kept apart from `stats`, which is copied often: this is 40 KB.
    latency: Arc<Mutex<LatencyHistogram>>,
    pub local_addr: SocketAddr,
}

impl RtcClient {
    /// Binds a UDP socket on 127.0.0.1, creates the offer (one sendrecv Opus track) and starts
    /// the client loop. Publishing a `tone_hz` sine starts right away unless paused.
    ///
    /// # Errors
    /// When the socket, the encoder or the offer can't be made.
    pub async fn start(tone_hz: f32) -> Result<(Self, String), ClientError> {
        Self::start_with_source(Box::new(ToneSource::new(tone_hz)?)).await
    }

    /// As [`RtcClient::start`], publishing `source` (e.g. speech from a
    /// [`crate::tone::PcmSource`]) instead of a tone.
    ///
    /// # Errors
    /// When the socket or the offer can't be made.
    pub async fn start_with_source(
        source: Box<dyn FrameSource>,
    ) -> Result<(Self, String), ClientError> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local_addr = socket.local_addr()?;
        let now = Instant::now();
        let (media, registry) = audio_engine().map_err(rtc_err)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(rtc_err)?;
        let ssrc = rand::random::<u32>();
        let track = audio_track(
            "mic".to_owned(),
            "mic-audio".to_owned(),
            "microphone".to_owned(),
            ssrc,
        );
        let sender = pc.add_track(track).map_err(rtc_err)?;
        pc.add_local_candidate(host_candidate(local_addr).map_err(rtc_err)?)
            .map_err(rtc_err)?;
        let offer = pc.create_offer(None).map_err(rtc_err)?;
        let offer_sdp = offer.sdp.clone();
        pc.set_local_description(now, offer).map_err(rtc_err)?;
        let level_id = extmap_id(&offer_sdp, AUDIO_LEVEL_URI);

        let stats = Arc::new(Mutex::new(ClientStats::default()));
        let latency = Arc::new(Mutex::new(LatencyHistogram::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver {
            pc,
            socket,
            local_addr,
            sender: Some(sender),
            ssrc,
            level_id,
            tone: source,
            publishing: true,
            level: TALKING_LEVEL,
            offline: false,
            seq: rand::random(),
            timestamp: rand::random(),
            started: now,
            stats: stats.clone(),
            latency: latency.clone(),
            stamp: false,
            track_streams: HashMap::new(),
            ssrc_streams: HashMap::new(),
            key_by_ssrc: false,
            outbound: ImpairedLink::default(),
            inbound: ImpairedLink::default(),
        };
        tokio::spawn(driver.run(rx));
        Ok((
            Self {
                commands: tx,
                stats,
                latency,
                local_addr,
            },
            offer_sdp,
        ))
    }

    /// A client that only receives: no track and no offer of its own; it answers the offers
    /// a server makes (a Janus VideoRoom subscriber, say) with [`RtcClient::handle_offer`].
    ///
    /// # Errors
    /// When the socket can't be bound.
    pub async fn receive_only() -> Result<Self, ClientError> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local_addr = socket.local_addr()?;
        let now = Instant::now();
        let (media, registry) = audio_engine().map_err(rtc_err)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(rtc_err)?;
        pc.add_local_candidate(host_candidate(local_addr).map_err(rtc_err)?)
            .map_err(rtc_err)?;
        let stats = Arc::new(Mutex::new(ClientStats::default()));
        let latency = Arc::new(Mutex::new(LatencyHistogram::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver {
            pc,
            socket,
            local_addr,
            sender: None,
            ssrc: 0,
            level_id: None,
            tone: Box::new(crate::tone::SilenceSource),
            publishing: false,
            level: TALKING_LEVEL,
            offline: false,
            seq: 0,
            timestamp: 0,
            started: now,
            stats: stats.clone(),
            latency: latency.clone(),
            stamp: false,
            track_streams: HashMap::new(),
            ssrc_streams: HashMap::new(),
            key_by_ssrc: true,
            outbound: ImpairedLink::default(),
            inbound: ImpairedLink::default(),
        };
        tokio::spawn(driver.run(rx));
        Ok(Self {
            commands: tx,
            stats,
            latency,
            local_addr,
        })
    }

    /// The server's answer to our offer.
    ///
    /// # Errors
    /// When the answer is unusable.
    pub async fn set_answer(&self, sdp: String) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SetAnswer(sdp, tx))
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// A server offer (renegotiation); returns our answer.
    ///
    /// # Errors
    /// When the offer is unusable.
    pub async fn handle_offer(&self, sdp: String) -> Result<String, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::HandleOffer(sdp, tx))
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Pauses or resumes sending the tone (the track stays).
    pub fn set_publishing(&self, on: bool) {
        let _ = self.commands.send(Command::Publish(on));
    }

    /// The audio level (RFC 6464, -dBov: 0 loudest, 127 silence) each packet announces from
    /// now on; [`TALKING_LEVEL`] by default. 127 is a participant whose microphone is open in
    /// a quiet room: packets flow, nobody speaks.
    pub fn set_audio_level(&self, level: u8) {
        let _ = self.commands.send(Command::Level(level.min(127)));
    }

    /// From now on, every payload sent carries its send time and no longer decodes as Opus:
    /// for load runs that measure forwarding latency ([`crate::latency`]).
    pub fn stamp_send_times(&self) {
        let _ = self.commands.send(Command::StampSendTimes);
    }

    /// The delays of stamped packets received so far (all streams together).
    pub fn latency(&self) -> LatencyHistogram {
        self.latency.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// A second handle to the same client, for a task that answers server offers.
    pub fn clone_handle(&self) -> RtcClient {
        RtcClient {
            commands: self.commands.clone(),
            stats: self.stats.clone(),
            latency: self.latency.clone(),
            local_addr: self.local_addr,
        }
    }

    pub fn stats(&self) -> ClientStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Closes the connection politely (DTLS close).
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Goes silent without a goodbye, like a tab that crashed or a laptop that lost Wi-Fi.
    pub fn vanish(&self) {
        let _ = self.commands.send(Command::Vanish);
    }

    /// Drops every datagram both ways while `on` (a network blip, a laptop lid closed); the
    /// client keeps its state and carries on when back.
    pub fn set_offline(&self, on: bool) {
        let _ = self.commands.send(Command::Offline(on));
    }

    /// Makes the link lossy and reordering, both ways, for media datagrams (see
    /// [`crate::impair`]); `Impairment::default()` makes it clean again.
    pub fn set_impairment(&self, impairment: Impairment) {
        let _ = self.commands.send(Command::Impair(impairment));
    }

    /// Moves to a new UDP socket (a new local port), as a browser does when it switches to
    /// another candidate pair or a NAT rebinds. Returns the new address.
    ///
    /// # Errors
    /// When no socket can be bound.
    pub async fn rebind(&self) -> Result<SocketAddr, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Rebind(tx))
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }
}

struct Driver {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    /// `None` for a receive-only client.
    sender: Option<RTCRtpSenderId>,
    ssrc: u32,
    level_id: Option<u8>,
    tone: Box<dyn FrameSource>,
    publishing: bool,
    /// RFC 6464 level each packet announces, -dBov.
    level: u8,
    offline: bool,
    seq: u16,
    timestamp: u32,
    started: Instant,
    stats: Arc<Mutex<ClientStats>>,
    latency: Arc<Mutex<LatencyHistogram>>,
    /// Stamp each payload with its send time (load runs; the audio no longer decodes).
    stamp: bool,
    track_streams: HashMap<String, String>,
    /// `a=ssrc:<ssrc> msid:<stream> <track>` of the latest remote description: the SFU may
    /// reuse an m-line (and its SSRC) for another participant, and says so in the SDP.
    ssrc_streams: HashMap<u32, String>,
    /// Count each SSRC as its own stream (a receive-only client of another SFU, whose SDP
    /// may give every stream the same msid).
    key_by_ssrc: bool,
    outbound: ImpairedLink<TaggedBytesMut>,
    inbound: ImpairedLink<(BytesMut, SocketAddr)>,
}

fn ssrc_streams(sdp: &str) -> HashMap<u32, String> {
    sdp.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("a=ssrc:")?;
            let (ssrc, attr) = rest.split_once(' ')?;
            let stream = attr.strip_prefix("msid:")?.split_whitespace().next()?;
            Some((ssrc.parse().ok()?, stream.to_owned()))
        })
        .collect()
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut frames = tokio::time::interval(Duration::from_millis(20));
        frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            self.flush().await;
            let deadline = self
                .pc
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Vanish) => return,
                    None | Some(Command::Stop) => {
                        let _ = self.pc.close();
                        self.flush().await;
                        return;
                    }
                    Some(Command::SetAnswer(sdp, reply)) => {
                        self.ssrc_streams = ssrc_streams(&sdp);
                        let result = RTCSessionDescription::answer(sdp)
                            .and_then(|a| self.pc.set_remote_description(Instant::now(), a))
                            .map_err(rtc_err);
                        let _ = reply.send(result);
                    }
                    Some(Command::HandleOffer(sdp, reply)) => {
                        let _ = reply.send(self.answer(sdp));
                    }
                    Some(Command::Publish(on)) => self.publishing = on,
                    Some(Command::Level(level)) => self.level = level,
                    Some(Command::StampSendTimes) => self.stamp = true,
                    Some(Command::Offline(on)) => self.offline = on,
                    Some(Command::Impair(impairment)) => {
                        self.outbound.impairment = impairment;
                        self.inbound.impairment = impairment;
                    }
                    Some(Command::Rebind(reply)) => {
                        // The ICE agent keeps its old local candidate: to the server this is
                        // the same client appearing from a new address.
                        let result = match UdpSocket::bind("127.0.0.1:0").await {
                            Ok(socket) => {
                                let addr = socket.local_addr().map_err(ClientError::from);
                                self.socket = socket;
                                addr
                            }
                            Err(err) => Err(err.into()),
                        };
                        let _ = reply.send(result);
                    }
                },
                received = self.socket.recv_from(&mut buf) => {
                    if let (Ok((n, from)), false) = (received, self.offline) {
                        let datagram = BytesMut::from(&buf[..n]);
                        let media = is_media(&datagram);
                        for (datagram, from) in self.inbound.pass((datagram, from), media) {
                            let msg = TaggedBytesMut {
                                now: Instant::now(),
                                transport: TransportContext {
                                    local_addr: self.local_addr,
                                    peer_addr: from,
                                    ecn: None,
                                    transport_protocol: TransportProtocol::UDP,
                                },
                                message: datagram,
                            };
                            let _ = self.pc.handle_read(msg);
                        }
                    }
                }
                _ = frames.tick() => self.send_frame(),
                () = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
            }
            self.poll();
        }
    }

    fn answer(&mut self, sdp: String) -> Result<String, ClientError> {
        let now = Instant::now();
        self.ssrc_streams = ssrc_streams(&sdp);
        let offer = RTCSessionDescription::offer(sdp).map_err(rtc_err)?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(rtc_err)?;
        let answer = self.pc.create_answer(None).map_err(rtc_err)?;
        let sdp = answer.sdp.clone();
        self.pc
            .set_local_description(now, answer)
            .map_err(rtc_err)?;
        Ok(sdp)
    }

    fn send_frame(&mut self) {
        if !self.publishing {
            return;
        }
        let Ok(mut payload) = self.tone.next_frame() else {
            return;
        };
        if self.stamp {
            latency::stamp(&mut payload, Instant::now());
        }
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        let mut packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: OPUS_PAYLOAD_TYPE,
                sequence_number: self.seq,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        if let Some(id) = self.level_id {
            // The voice flag, when talking, and the level.
            let voice = if self.level < 127 { 0x80 } else { 0 };
            let _ = packet
                .header
                .set_extension(id, Bytes::from(vec![voice | self.level]));
        }
        let Some(sender) = self.sender else {
            return;
        };
        if let Some(mut sender) = self.pc.rtp_sender(sender) {
            if sender.write_rtp(Instant::now(), packet).is_ok() {
                if let Ok(mut s) = self.stats.lock() {
                    s.sent_packets += 1;
                }
            }
        }
    }

    fn poll(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    if let Ok(mut s) = self.stats.lock() {
                        match state {
                            RTCPeerConnectionState::Connected => {
                                s.connected_after.get_or_insert(self.started.elapsed());
                            }
                            RTCPeerConnectionState::Failed => s.failed = true,
                            _ => {}
                        }
                    }
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let stream = init
                        .stream_ids
                        .first()
                        .cloned()
                        .unwrap_or_else(|| init.track_id.clone());
                    self.track_streams.insert(init.track_id, stream);
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(track, packet) = message {
                if let Some(delay) = latency::delay(&packet.payload, Instant::now()) {
                    if let Ok(mut histogram) = self.latency.lock() {
                        histogram.record(delay);
                    }
                }
                let stream = if self.key_by_ssrc {
                    format!("ssrc{}", packet.header.ssrc)
                } else {
                    self.ssrc_streams
                        .get(&packet.header.ssrc)
                        .or_else(|| self.track_streams.get(&track))
                        .cloned()
                        .unwrap_or(track)
                };
                let Ok(mut stats) = self.stats.lock() else {
                    continue;
                };
                let s = stats.streams.entry(stream).or_default();
                let now = Instant::now();
                s.packets += 1;
                s.bytes += packet.payload.len() as u64;
                if !s.ssrcs.contains(&packet.header.ssrc) {
                    s.ssrcs.push(packet.header.ssrc);
                }
                let csrc = packet.header.csrc.first().copied();
                let switched = s.last_csrc.is_some() && csrc.is_some() && s.last_csrc != csrc;
                if switched {
                    if let Some((ts, at)) = s.last_ts {
                        let ts_ms = f64::from(packet.header.timestamp.wrapping_sub(ts)) / 48.0;
                        let wall_ms = now.duration_since(at).as_secs_f64() * 1000.0;
                        s.worst_switch_skew_ms =
                            s.worst_switch_skew_ms.max((ts_ms - wall_ms).abs());
                    }
                }
                s.last_csrc = csrc.or(s.last_csrc);
                s.last_ts = Some((packet.header.timestamp, now));
                if let Some(last) = s.last_seq {
                    let gap = packet.header.sequence_number.wrapping_sub(last);
                    if gap > 1 && gap < 1000 {
                        s.missing += u64::from(gap - 1);
                    }
                }
                s.last_seq = Some(packet.header.sequence_number);
                s.first_at.get_or_insert(now);
                s.last_at = Some(now);
                if switched {
                    stats.switches += 1;
                    if packet.header.marker {
                        stats.marked_switches += 1;
                    }
                }
                if let Some(csrc) = csrc {
                    let source = stats.sources.entry(csrc).or_default();
                    source.packets += 1;
                    source.last_at = Some(now);
                }
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(msg) = self.pc.poll_write() {
            if self.offline {
                continue;
            }
            let media = is_media(&msg.message);
            for msg in self.outbound.pass(msg, media) {
                let _ = self
                    .socket
                    .send_to(&msg.message, msg.transport.peer_addr)
                    .await;
            }
        }
    }
}
