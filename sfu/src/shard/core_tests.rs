//! The shard core driven with no socket, no runtime and no clock: real `rtc` clients (ICE,
//! DTLS, SRTP) exchange datagrams with [`ShardCore`] in memory, on a clock these tests move.
//!
//! Each client publishes frames whose payload names it (its first byte is its id), so a test
//! checks who each listener hears, not only how much.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::{Output, ShardCore};
use crate::audio::{
    audio_engine, audio_track, extmap_id, host_candidate, AUDIO_LEVEL_URI, OPUS_PAYLOAD_TYPE,
};
use crate::{AudioSlots, CloseReason, PeerEvent, PeerId, RoomId, SfuConfig};

const FRAME: Duration = Duration::from_millis(20);
/// RFC 6464 levels (-dBov): a voice, and an open microphone in a quiet room.
const TALKING: u8 = 20;
const QUIET: u8 = 127;

/// One packet a client received.
#[derive(Debug, Clone, Copy)]
struct Heard {
    ssrc: u32,
    csrc: Option<u32>,
    /// Whose frame it is (the first payload byte).
    speaker: u64,
    seq: u16,
    ts: u32,
    marker: bool,
    at: Instant,
}

/// A browser's side of the call, on the same `rtc` stack.
struct Client {
    addr: SocketAddr,
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    ssrc: u32,
    level_id: Option<u8>,
    seq: u16,
    ts: u32,
    /// The level its frames announce; `None` sends no audio at all.
    level: Option<u8>,
    /// A client off the network: nothing it sends arrives, nothing reaches it.
    online: bool,
    heard: Vec<Heard>,
    events: Vec<(Instant, PeerEvent)>,
    released: bool,
}

impl Client {
    fn new(id: PeerId, now: Instant) -> (Self, String) {
        let port = 20_000 + u16::try_from(id.0).expect("small ids");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (media, registry) = audio_engine().expect("audio engine");
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)
            .expect("client connection");
        let ssrc = 1_000 + u32::try_from(id.0).expect("small ids");
        let track = audio_track(
            format!("mic{}", id.0),
            format!("mic-audio{}", id.0),
            "microphone".to_owned(),
            ssrc,
        );
        let sender = pc.add_track(track).expect("track");
        pc.add_local_candidate(host_candidate(addr).expect("candidate"))
            .expect("local candidate");
        let offer = pc.create_offer(None).expect("offer");
        let sdp = offer.sdp.clone();
        pc.set_local_description(now, offer).expect("local offer");
        let client = Self {
            addr,
            pc,
            sender,
            ssrc,
            level_id: extmap_id(&sdp, AUDIO_LEVEL_URI),
            seq: 0,
            ts: 0,
            level: Some(QUIET),
            online: true,
            heard: Vec::new(),
            events: Vec::new(),
            released: false,
        };
        (client, sdp)
    }

    fn send_frame(&mut self, id: PeerId, now: Instant) {
        let Some(level) = self.level else {
            return;
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
        let mut payload = vec![0u8; 40];
        payload[0] = u8::try_from(id.0).expect("small ids");
        let mut packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: OPUS_PAYLOAD_TYPE,
                sequence_number: self.seq,
                timestamp: self.ts,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        if let Some(ext) = self.level_id {
            let voice = if level < QUIET { 0x80 } else { 0 };
            packet
                .header
                .set_extension(ext, Bytes::from(vec![voice | level]))
                .expect("level extension");
        }
        if let Some(mut sender) = self.pc.rtp_sender(self.sender) {
            let _ = sender.write_rtp(now, packet);
        }
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, data: BytesMut) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: data,
        });
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                self.heard.push(Heard {
                    ssrc: packet.header.ssrc,
                    csrc: packet.header.csrc.first().copied(),
                    speaker: u64::from(packet.payload.first().copied().unwrap_or(0)),
                    seq: packet.header.sequence_number,
                    ts: packet.header.timestamp,
                    marker: packet.header.marker,
                    at: now,
                });
            }
        }
    }

    /// Answers a server offer.
    fn answer(&mut self, now: Instant, sdp: String) -> String {
        let offer = RTCSessionDescription::offer(sdp).expect("server offer parses");
        self.pc
            .set_remote_description(now, offer)
            .expect("server offer applies");
        let answer = self.pc.create_answer(None).expect("answer");
        let sdp = answer.sdp.clone();
        self.pc
            .set_local_description(now, answer)
            .expect("local answer");
        sdp
    }

    fn events(&self) -> impl DoubleEndedIterator<Item = &PeerEvent> {
        self.events.iter().map(|(_, e)| e)
    }

    fn offers(&self) -> usize {
        self.events()
            .filter(|e| matches!(e, PeerEvent::Offer { .. }))
            .count()
    }

    /// Who this client heard after `since`, by speaker.
    fn speakers_since(&self, since: Instant) -> BTreeMap<u64, usize> {
        let mut by = BTreeMap::new();
        for h in self.heard.iter().filter(|h| h.at > since) {
            *by.entry(h.speaker).or_default() += 1;
        }
        by
    }

    /// The CSRC the shard gave `peer`, from the `TrackPublished` this client was told.
    fn source_of(&self, peer: PeerId) -> Option<u32> {
        self.events().find_map(|e| match e {
            PeerEvent::TrackPublished { peer: p, source } if *p == peer => Some(*source),
            _ => None,
        })
    }
}

/// A shard core and its clients on one in-memory network, on a clock the test moves.
struct Call {
    core: ShardCore,
    server: SocketAddr,
    now: Instant,
    clients: BTreeMap<PeerId, Client>,
}

fn config(slots: Option<AudioSlots>) -> SfuConfig {
    SfuConfig {
        connect_timeout: Duration::from_secs(3),
        ice_disconnected_timeout: Duration::from_secs(1),
        disconnect_grace: Duration::from_secs(2),
        audio_slots: slots,
        ..SfuConfig::default()
    }
}

impl Call {
    fn new(config: SfuConfig) -> Self {
        let server = SocketAddr::from(([127, 0, 0, 1], 9));
        let now = Instant::now();
        Self {
            core: ShardCore::new(config, server, now),
            server,
            now,
            clients: BTreeMap::new(),
        }
    }

    /// `id` joins `room`, its microphone open in a quiet room (frames at [`QUIET`]).
    fn join(&mut self, id: u64, room: i64) -> PeerId {
        self.join_on(id, room, true)
    }

    /// As [`Self::join`], from a network that drops every datagram if not `online` (its
    /// signaling works: offers and answers still pass).
    fn join_on(&mut self, id: u64, room: i64, online: bool) -> PeerId {
        let id = PeerId(id);
        let (mut client, offer) = Client::new(id, self.now);
        client.online = online;
        let answer = self
            .core
            .join(self.now, RoomId(room), id, offer)
            .expect("the shard answers the offer");
        client
            .pc
            .set_remote_description(
                self.now,
                RTCSessionDescription::answer(answer).expect("answer parses"),
            )
            .expect("answer applies");
        self.clients.insert(id, client);
        self.pump();
        id
    }

    fn client(&self, id: PeerId) -> &Client {
        &self.clients[&id]
    }

    fn client_mut(&mut self, id: PeerId) -> &mut Client {
        self.clients.get_mut(&id).expect("a client of this call")
    }

    fn set_level(&mut self, id: PeerId, level: Option<u8>) {
        self.client_mut(id).level = level;
    }

    /// Moves the clock on by `duration`, one 20 ms frame at a time.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += FRAME;
            let now = self.now;
            for (id, client) in &mut self.clients {
                if client.online && !client.released {
                    client.send_frame(*id, now);
                }
            }
            self.pump();
        }
    }

    /// Exchanges datagrams, events and answers until nothing moves.
    fn pump(&mut self) {
        let now = self.now;
        for round in 0.. {
            assert!(round < 10_000, "the call never settles");
            let mut moved = false;
            for client in self.clients.values_mut() {
                // `rtc` moves its handshakes on only as its events are taken.
                while client.pc.poll_event().is_some() {}
                if client.pc.poll_timeout().is_some_and(|t| t <= now) {
                    let _ = client.pc.handle_timeout(now);
                }
                while let Some(m) = client.pc.poll_write() {
                    moved = true;
                    if client.online && !client.released {
                        self.core.handle_datagram(now, client.addr, &m.message);
                    }
                }
            }
            let mut answers = Vec::new();
            loop {
                match self.core.poll_output(now) {
                    Output::Transmit { to, data } => {
                        moved = true;
                        if let Some(c) = self.clients.values_mut().find(|c| c.addr == to) {
                            if c.online {
                                c.receive(now, self.server, data);
                            }
                        }
                    }
                    Output::Event { peer, event } => {
                        moved = true;
                        let client = self.clients.get_mut(&peer).expect("events go to clients");
                        assert!(!client.released, "{event:?} after {peer} was released");
                        if let PeerEvent::Offer { sdp } = &event {
                            answers.push((peer, client.answer(now, sdp.clone())));
                        }
                        client.events.push((now, event));
                    }
                    Output::Released { peer } => {
                        moved = true;
                        self.client_mut(peer).released = true;
                    }
                    Output::Timeout(Some(t)) if t <= now => {
                        moved = true;
                        self.core.handle_timeout(now);
                    }
                    Output::Timeout(_) => break,
                }
            }
            for (peer, sdp) in answers {
                self.core
                    .answer(now, peer, sdp)
                    .expect("the shard takes the client's answer");
            }
            if !moved {
                return;
            }
        }
    }

    fn connected(&self, id: PeerId) -> bool {
        self.client(id)
            .events()
            .any(|e| matches!(e, PeerEvent::Connected))
    }
}

fn slots(slots: usize, above: usize) -> Option<AudioSlots> {
    Some(AudioSlots { slots, above })
}

#[test]
fn in_a_small_room_everyone_hears_every_other_voice_and_never_their_own() {
    let mut call = Call::new(config(slots(2, 12)));
    let people: Vec<PeerId> = (1..=3).map(|id| call.join(id, 1)).collect();
    for p in &people {
        call.set_level(*p, Some(TALKING));
    }
    call.run(Duration::from_secs(1));
    let since = call.now;
    call.run(Duration::from_secs(2));

    for p in &people {
        assert!(
            call.connected(*p),
            "{p} connected: {:?}",
            call.client(*p).events
        );
        let client = call.client(*p);
        let heard = client.speakers_since(since);
        let others: Vec<u64> = people.iter().filter(|o| *o != p).map(|o| o.0).collect();
        assert_eq!(
            heard.keys().copied().collect::<Vec<_>>(),
            others,
            "{p} hears exactly the others"
        );
        for (speaker, packets) in &heard {
            // 2 s of 20 ms frames: every one of them.
            assert_eq!(*packets, 100, "{p} got every frame of {speaker}");
        }
        // Each speaker on a stream of its own, numbered without gaps.
        for other in people.iter().filter(|o| *o != p) {
            let stream: Vec<&Heard> = client
                .heard
                .iter()
                .filter(|h| h.speaker == other.0 && h.at > since)
                .collect();
            assert!(stream.windows(2).all(|w| w[0].ssrc == w[1].ssrc));
            assert!(stream
                .windows(2)
                .all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
            assert!(
                client.source_of(*other).is_some(),
                "{p} was told {other} publishes"
            );
        }
    }
}

#[test]
fn a_leave_stops_its_audio_tells_the_others_and_releases_the_peer() {
    let mut call = Call::new(config(slots(2, 12)));
    let people: Vec<PeerId> = (1..=3).map(|id| call.join(id, 1)).collect();
    for p in &people {
        call.set_level(*p, Some(TALKING));
    }
    call.run(Duration::from_secs(2));
    let carol = people[2];
    let offers_before: Vec<usize> = people[..2]
        .iter()
        .map(|p| call.client(*p).offers())
        .collect();

    call.core.leave(call.now, carol);
    call.pump();
    assert!(
        call.client(carol).released,
        "the shard lets go of the one who left"
    );
    let left_at = call.now;
    call.run(Duration::from_secs(2));

    for (p, before) in people[..2].iter().zip(offers_before) {
        let client = call.client(*p);
        assert!(
            client
                .events()
                .any(|e| *e == PeerEvent::TrackUnpublished { peer: carol }),
            "{p} is told carol's track went"
        );
        assert_eq!(
            client.offers(),
            before + 1,
            "{p} gets one offer without her stream"
        );
        let heard = client.speakers_since(left_at);
        assert!(
            !heard.contains_key(&carol.0),
            "{p} hears nothing more of carol"
        );
        let other = people[..2].iter().find(|o| *o != p).expect("two stay");
        assert_eq!(
            heard.get(&other.0),
            Some(&100),
            "{p} still hears {other}, every frame"
        );
    }
}

#[test]
fn a_large_room_carries_its_speakers_on_fixed_slots_named_by_csrc_and_a_join_offers_nobody() {
    // Large from the fifth participant on, two slots each.
    let mut call = Call::new(config(slots(2, 4)));
    let people: Vec<PeerId> = (1..=5).map(|id| call.join(id, 1)).collect();
    let (alice, bob) = (people[0], people[1]);
    call.set_level(alice, Some(TALKING));
    call.set_level(bob, Some(TALKING));
    call.run(Duration::from_secs(2));
    let since = call.now;
    call.run(Duration::from_secs(2));

    for p in &people[2..] {
        let client = call.client(*p);
        assert_eq!(
            client.speakers_since(since),
            BTreeMap::from([(alice.0, 100), (bob.0, 100)]),
            "{p} hears both speakers, every frame, and none of the quiet ones"
        );
        let recent: Vec<&Heard> = client.heard.iter().filter(|h| h.at > since).collect();
        let ssrcs: std::collections::BTreeSet<u32> = recent.iter().map(|h| h.ssrc).collect();
        assert_eq!(ssrcs.len(), 2, "{p} receives on its two slots");
        for h in &recent {
            let named = client.source_of(PeerId(h.speaker));
            assert_eq!(
                h.csrc, named,
                "{p}: each packet's CSRC names whose voice it is"
            );
        }
    }
    // A speaker hears the other speaker, never itself.
    let heard = call.client(alice).speakers_since(since);
    assert_eq!(heard.keys().copied().collect::<Vec<_>>(), vec![bob.0]);

    let offers: Vec<usize> = people.iter().map(|p| call.client(*p).offers()).collect();
    let newcomer = call.join(6, 1);
    call.run(Duration::from_secs(1));
    let after: Vec<usize> = people.iter().map(|p| call.client(*p).offers()).collect();
    assert_eq!(
        after, offers,
        "a join in a large room sends no offer to anyone there"
    );
    let since = call.now;
    call.run(Duration::from_secs(1));
    assert_eq!(
        call.client(newcomer).speakers_since(since),
        BTreeMap::from([(alice.0, 50), (bob.0, 50)]),
        "the newcomer hears the speakers at once"
    );
}

#[test]
fn a_new_speaker_takes_a_freed_slot_on_the_same_stream_without_a_gap() {
    let mut call = Call::new(config(slots(2, 4)));
    let people: Vec<PeerId> = (1..=5).map(|id| call.join(id, 1)).collect();
    let (alice, bob, carol, listener) = (people[0], people[1], people[2], people[4]);
    call.set_level(alice, Some(TALKING));
    call.set_level(bob, Some(TALKING));
    call.run(Duration::from_secs(2));
    let alice_ssrc = call
        .client(listener)
        .heard
        .iter()
        .rev()
        .find(|h| h.speaker == alice.0)
        .expect("alice heard")
        .ssrc;

    // Alice falls silent, carol starts.
    call.set_level(alice, Some(QUIET));
    call.set_level(carol, Some(TALKING));
    call.run(Duration::from_secs(3));

    let client = call.client(listener);
    let slot: Vec<&Heard> = client
        .heard
        .iter()
        .filter(|h| h.ssrc == alice_ssrc)
        .collect();
    let first_carol = slot
        .iter()
        .position(|h| h.speaker == carol.0)
        .expect("carol comes on alice's slot");
    let (before, after) = (slot[first_carol - 1], slot[first_carol]);
    assert_eq!(before.speaker, alice.0);
    assert!(after.marker, "the switch starts a talkspurt");
    assert_eq!(
        after.seq,
        before.seq.wrapping_add(1),
        "numbering goes on without a gap"
    );
    let wall_ms = after.at.duration_since(before.at).as_secs_f64() * 1000.0;
    let ts_ms = f64::from(after.ts.wrapping_sub(before.ts)) / 48.0;
    assert!(
        (ts_ms - wall_ms).abs() <= 40.0,
        "the timestamp moves with the time that passed: {ts_ms} ms vs {wall_ms} ms"
    );
    assert_eq!(
        after.csrc,
        client.source_of(carol),
        "the CSRC now names carol"
    );
    assert!(
        slot[first_carol..].iter().all(|h| h.speaker == carol.0),
        "alice's silence is not forwarded after the switch"
    );
    let last_second = call.now - Duration::from_secs(1);
    assert_eq!(
        client.speakers_since(last_second),
        BTreeMap::from([(bob.0, 50), (carol.0, 50)])
    );
}

#[test]
fn speakers_keep_their_slots_while_they_talk_whoever_else_starts() {
    let mut call = Call::new(config(slots(2, 4)));
    let people: Vec<PeerId> = (1..=6).map(|id| call.join(id, 1)).collect();
    let listener = people[5];
    call.set_level(people[0], Some(TALKING));
    call.set_level(people[1], Some(TALKING));
    call.run(Duration::from_secs(2));
    // Two more start, a little louder (well inside the swap margin): nobody is cut.
    call.set_level(people[2], Some(TALKING - 5));
    call.set_level(people[3], Some(TALKING - 5));
    let since = call.now;
    call.run(Duration::from_secs(5));

    let client = call.client(listener);
    let heard = client.speakers_since(since);
    assert_eq!(
        heard.keys().copied().collect::<Vec<_>>(),
        vec![people[0].0, people[1].0],
        "the listener keeps hearing the first two"
    );
    let recent: Vec<&Heard> = client.heard.iter().filter(|h| h.at > since).collect();
    for ssrc in recent.iter().map(|h| h.ssrc) {
        let on: std::collections::BTreeSet<u64> = recent
            .iter()
            .filter(|h| h.ssrc == ssrc)
            .map(|h| h.speaker)
            .collect();
        assert_eq!(on.len(), 1, "no slot switched speaker: {on:?}");
    }
    // The third speaker holds the spare place: the two slot holders hear it instead of
    // themselves.
    let first = call.client(people[0]).speakers_since(since);
    assert_eq!(
        first.keys().copied().collect::<Vec<_>>(),
        vec![people[1].0, people[2].0]
    );
}

#[test]
fn a_muted_participant_is_not_forwarded_and_stops_speaking_for_everyone() {
    let mut call = Call::new(config(slots(2, 12)));
    let people: Vec<PeerId> = (1..=3).map(|id| call.join(id, 1)).collect();
    for p in &people {
        call.set_level(*p, Some(TALKING));
    }
    call.run(Duration::from_secs(2));
    call.core.set_muted(call.now, people[0], true);
    call.pump();
    let since = call.now + FRAME;
    call.run(Duration::from_secs(2));
    for p in &people[1..] {
        let client = call.client(*p);
        assert!(!client.speakers_since(since).contains_key(&people[0].0));
        assert!(client.events.iter().any(|(_, e)| *e
            == PeerEvent::Speaking {
                peer: people[0],
                speaking: false
            }));
    }
    assert!(call
        .client(people[1])
        .speakers_since(since)
        .contains_key(&people[2].0));
}

#[test]
fn a_client_that_never_connects_is_closed_after_the_connect_timeout() {
    let mut call = Call::new(config(slots(2, 12)));
    let stay = call.join(1, 1);
    call.set_level(stay, Some(TALKING));
    let joined_at = call.now;
    // Its network drops every datagram: no check ever arrives.
    let ghost = call.join_on(2, 1, false);
    call.run(Duration::from_secs(4));

    let ghost_client = call.client(ghost);
    let closed = ghost_client
        .events
        .iter()
        .find(|(_, e)| {
            *e == PeerEvent::Closed {
                reason: CloseReason::ConnectTimeout,
            }
        })
        .expect("closed for not connecting");
    let after = closed.0.duration_since(joined_at);
    assert!(
        after >= Duration::from_secs(3) && after < Duration::from_millis(3_200),
        "closed {after:?} after joining (timeout 3 s)"
    );
    assert!(ghost_client.released);
    assert!(
        call.connected(stay),
        "the other participant's call is unaffected"
    );
}

#[test]
fn a_client_gone_silent_is_reported_disconnected_then_removed_after_the_grace() {
    let mut call = Call::new(config(slots(2, 12)));
    let alice = call.join(1, 1);
    let bob = call.join(2, 1);
    call.set_level(alice, Some(TALKING));
    call.set_level(bob, Some(TALKING));
    call.run(Duration::from_secs(2));
    call.client_mut(bob).online = false;
    let gone_at = call.now;
    call.run(Duration::from_secs(5));

    let alice_events = &call.client(alice).events;
    let when = |wanted: &PeerEvent| {
        alice_events
            .iter()
            .find(|(_, e)| e == wanted)
            .map(|(t, _)| t.duration_since(gone_at))
    };
    let down = when(&PeerEvent::MediaState {
        peer: bob,
        connected: false,
    })
    .expect("alice is told bob's media went");
    let removed =
        when(&PeerEvent::TrackUnpublished { peer: bob }).expect("and then that his track is gone");
    assert!(
        down >= Duration::from_secs(1) && down < Duration::from_millis(1_300),
        "{down:?}"
    );
    assert!(
        removed >= down + Duration::from_secs(2) && removed < down + Duration::from_millis(2_300),
        "removed {removed:?} after going silent, disconnected at {down:?}"
    );
    assert!(call.client(bob).released);
    assert!(call.client(bob).events().any(|e| *e
        == PeerEvent::Closed {
            reason: CloseReason::Failed
        }));
}

#[test]
fn the_active_speaker_follows_whoever_talks_among_open_quiet_microphones() {
    let mut call = Call::new(config(slots(2, 4)));
    let people: Vec<PeerId> = (1..=6).map(|id| call.join(id, 1)).collect();
    let (alice, bob) = (people[0], people[1]);
    let last_active = |call: &Call, p: PeerId| {
        call.client(p).events().rev().find_map(|e| match e {
            PeerEvent::ActiveSpeaker { peer } => Some(*peer),
            _ => None,
        })
    };
    call.set_level(alice, Some(TALKING));
    call.run(Duration::from_secs(2));
    for p in &people {
        assert_eq!(last_active(&call, *p), Some(alice), "{p} sees alice speak");
    }
    call.set_level(alice, Some(QUIET));
    call.set_level(bob, Some(TALKING));
    call.run(Duration::from_secs(2));
    for p in &people {
        assert_eq!(last_active(&call, *p), Some(bob), "{p} sees bob speak now");
    }
    // Silence keeps the last speaker: nobody is told anything more.
    call.set_level(bob, Some(QUIET));
    let told = call.client(alice).events.len();
    call.run(Duration::from_secs(2));
    assert!(call.client(alice).events[told..]
        .iter()
        .all(|(_, e)| !matches!(e, PeerEvent::ActiveSpeaker { .. })));
}
