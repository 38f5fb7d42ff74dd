//! The media plane end to end on loopback: real WebRTC clients (ICE, DTLS, SRTP, Opus) join
//! rooms of a running `Sfu` directly, without the HTTP/WebSocket layer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench::rtc_client::{RtcClient, TALKING_LEVEL};
use sfu::{CloseReason, PeerEvent, PeerId, RoomId, Sfu, SfuConfig};

static NEXT_PEER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

struct Participant {
    client: RtcClient,
    peer: PeerId,
    events: Arc<Mutex<Vec<PeerEvent>>>,
}

impl Participant {
    fn stream(&self) -> String {
        format!("p{}", self.peer.0)
    }

    fn from(&self, other: &Participant) -> u64 {
        self.client.stats().packets_from(&other.stream())
    }

    /// Packets heard on any audio slot naming `other` in their CSRC.
    fn heard_on_slots(&self, other: &Participant, people: &[Participant]) -> u64 {
        self.client
            .stats()
            .packets_from_source(source_of(people, other))
    }

    /// Server offers this participant was sent.
    fn offers(&self) -> usize {
        self.events
            .lock()
            .map(|e| {
                e.iter()
                    .filter(|e| matches!(e, PeerEvent::Offer { .. }))
                    .count()
            })
            .unwrap_or(0)
    }

    fn saw(&self, wanted: &PeerEvent) -> bool {
        self.events
            .lock()
            .map(|e| e.contains(wanted))
            .unwrap_or(false)
    }
}

/// The CSRC `who`'s audio goes by, as the others were told in `track_published`.
fn source_of(people: &[Participant], who: &Participant) -> u32 {
    people
        .iter()
        .filter_map(|p| p.events.lock().ok().map(|e| e.clone()))
        .flatten()
        .find_map(|e| match e {
            PeerEvent::TrackPublished { peer, source } if peer == who.peer => Some(source),
            _ => None,
        })
        .unwrap_or(0)
}

async fn start_sfu(config: SfuConfig) -> Sfu {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Sfu::start(SfuConfig {
        shards: 2,
        ..config
    })
    .await
    .expect("sfu starts")
}

/// Joins like a browser would through signaling: offer, answer, then answer every server offer.
async fn join(sfu: &Sfu, room: RoomId, tone_hz: f32) -> Participant {
    join_at_level(sfu, room, tone_hz, TALKING_LEVEL).await
}

/// As [`join`], announcing `level` (RFC 6464) in every packet from the first.
async fn join_at_level(sfu: &Sfu, room: RoomId, tone_hz: f32, level: u8) -> Participant {
    let (client, offer) = RtcClient::start(tone_hz).await.expect("client");
    client.set_audio_level(level);
    let (tx, mut rx) = sfu::event_channel();
    let peer = PeerId(NEXT_PEER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let answer = sfu.join(room, peer, offer, tx).await.expect("join");
    client.set_answer(answer).await.expect("answer applies");
    let events = Arc::new(Mutex::new(Vec::new()));
    let client_commands = client.clone_handle();
    let sfu = sfu.clone();
    let log = events.clone();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let PeerEvent::Offer { sdp } = &event {
                match client_commands.handle_offer(sdp.clone()).await {
                    Ok(answer) => {
                        if let Err(err) = sfu.answer(room, peer, answer).await {
                            panic!("server refused our answer: {err}");
                        }
                    }
                    Err(_) => return,
                }
            }
            if let Ok(mut log) = log.lock() {
                log.push(event);
            }
        }
    });
    Participant {
        client,
        peer,
        events,
    }
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..100 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_receives_every_other_participants_audio() {
    let sfu = start_sfu(SfuConfig::default()).await;
    let room = RoomId(7);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    let c = join(&sfu, room, 660.0).await;
    let all = [&a, &b, &c];
    wait_until("everyone hears everyone", || {
        all.iter().all(|me| {
            all.iter()
                .filter(|o| o.peer != me.peer)
                .all(|o| me.from(o) >= 50)
        })
    })
    .await;
    for me in all {
        let stats = me.client.stats();
        assert!(stats.connected_after.is_some());
        assert_eq!(
            stats.packets_from(&me.stream()),
            0,
            "nobody hears themselves"
        );
        for other in all.iter().filter(|o| o.peer != me.peer) {
            let s = &stats.streams[&other.stream()];
            assert_eq!(s.ssrcs.len(), 1, "one SSRC per forwarded stream");
            assert_eq!(s.missing, 0, "no loss on loopback");
        }
    }
    // A second room on the same media plane doesn't hear the first.
    let d = join(&sfu, RoomId(8), 770.0).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(d.client.stats().streams.is_empty(), "rooms are isolated");
    let b_source = source_of(&[a], &b);
    assert_ne!(b_source, 0, "a was told b publishes, and under which CSRC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_participant_is_not_forwarded_whatever_the_client_sends() {
    let sfu = start_sfu(SfuConfig::default()).await;
    let room = RoomId(1);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    wait_until("b hears a", || b.from(&a) >= 25).await;
    sfu.set_muted(room, a.peer, true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_mute = b.from(&a);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(b.from(&a), at_mute, "nothing forwarded while muted");
    assert!(a.from(&b) > 0, "the muted participant still hears the room");
    sfu.set_muted(room, a.peer, false);
    wait_until("b hears a again", || b.from(&a) >= at_mute + 25).await;
    let s = &b.client.stats().streams[&a.stream()];
    assert_eq!(s.ssrcs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_removes_the_track_for_everyone_and_a_late_joiner_hears_the_rest() {
    let sfu = start_sfu(SfuConfig::default()).await;
    let room = RoomId(2);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    let c = join(&sfu, room, 660.0).await;
    wait_until("b and c hear a", || b.from(&a) >= 25 && c.from(&a) >= 25).await;
    sfu.leave(room, a.peer);
    a.client.stop();
    wait_until("others are told a's track is gone", || {
        b.saw(&PeerEvent::TrackUnpublished { peer: a.peer })
            && c.saw(&PeerEvent::TrackUnpublished { peer: a.peer })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.from(&a);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(b.from(&a), before, "a's audio stopped");
    // b and c still hear each other after the renegotiation.
    let bc = b.from(&c);
    wait_until("b still hears c", || b.from(&c) >= bc + 25).await;
    // A late joiner gets both remaining participants (reusing the freed m-line server side).
    let d = join(&sfu, room, 880.0).await;
    wait_until("d hears b and c", || d.from(&b) >= 25 && d.from(&c) >= 25).await;
    wait_until("b hears d", || b.from(&d) >= 25).await;
    assert_eq!(d.from(&a), 0);

    // When everyone has left, nothing is left behind: no room, peer, route or tap.
    for p in [&b, &c, &d] {
        sfu.leave(room, p.peer);
        p.client.stop();
    }
    let counts = sfu.counts().await;
    // `packets_in` counts traffic since start, not something held.
    let held = sfu::Counts {
        packets_in: 0,
        ..counts
    };
    assert_eq!(held, sfu::Counts::default(), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_is_disconnected_then_removed_after_the_grace_period() {
    let sfu = start_sfu(SfuConfig {
        ice_disconnected_timeout: Duration::from_millis(800),
        disconnect_grace: Duration::from_millis(1500),
        ..SfuConfig::default()
    })
    .await;
    let room = RoomId(3);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    wait_until("b hears a", || b.from(&a) >= 25).await;
    a.client.vanish();
    wait_until("b is told a went silent", || {
        b.saw(&PeerEvent::MediaState {
            peer: a.peer,
            connected: false,
        })
    })
    .await;
    assert!(
        !b.saw(&PeerEvent::TrackUnpublished { peer: a.peer }),
        "a keeps its place during the grace period"
    );
    wait_until("b is told a is gone", || {
        b.saw(&PeerEvent::TrackUnpublished { peer: a.peer })
    })
    .await;
    assert!(a.saw(&PeerEvent::Closed {
        reason: CloseReason::Failed
    }));
}

/// Both directions keep flowing for `window`: each side's packet count from the other grows
/// in every half second of it.
async fn both_keep_hearing(a: &Participant, b: &Participant, window: Duration) {
    let steps = (window.as_millis() / 500).max(1);
    let (mut ab, mut ba) = (a.from(b), b.from(a));
    for step in 0..steps {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (nab, nba) = (a.from(b), b.from(a));
        assert!(
            nab > ab && nba > ba,
            "audio stalled at step {step}: a<-b {ab}->{nab}, b<-a {ba}->{nba}"
        );
        (ab, ba) = (nab, nba);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_moves_to_another_address_keeps_its_audio_both_ways() {
    // A browser that switches its selected candidate pair (a second interface, IPv6, a relay
    // next to a host pair) or whose NAT rebinds shows up from a new address with the same
    // credentials. The server must follow it: accept it once a check proves it, send to it,
    // and never call the client silent. (Before the SFU answered checks itself, `rtc`'s agent
    // kept the first pair and declared the peer disconnected, then failed.)
    let sfu = start_sfu(SfuConfig {
        // The test client proves its new address with its next consent check (every 2 s).
        ice_disconnected_timeout: Duration::from_millis(3000),
        disconnect_grace: Duration::from_millis(1500),
        ..SfuConfig::default()
    })
    .await;
    let room = RoomId(8);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    wait_until("both hear each other", || {
        b.from(&a) >= 25 && a.from(&b) >= 25
    })
    .await;
    let before = a.client.local_addr;
    let moved = a.client.rebind().await.expect("new socket");
    assert_ne!(before, moved);
    let (ab, ba) = (a.from(&b), b.from(&a));
    wait_until("audio resumes both ways from the new address", || {
        a.from(&b) > ab + 25 && b.from(&a) > ba + 25
    })
    .await;
    // Past the disconnect timeout and the grace period: the old bug showed here.
    both_keep_hearing(&a, &b, Duration::from_millis(5000)).await;
    let silent = PeerEvent::MediaState {
        peer: a.peer,
        connected: false,
    };
    assert!(!b.saw(&silent), "a was never reported disconnected");
    assert!(!a.saw(&PeerEvent::Closed {
        reason: CloseReason::Failed
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_blip_shorter_than_the_grace_period_resumes_the_call() {
    let sfu = start_sfu(SfuConfig {
        ice_disconnected_timeout: Duration::from_millis(800),
        disconnect_grace: Duration::from_secs(10),
        ..SfuConfig::default()
    })
    .await;
    let room = RoomId(9);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    wait_until("both hear each other", || {
        b.from(&a) >= 25 && a.from(&b) >= 25
    })
    .await;
    a.client.set_offline(true);
    wait_until("b is told a went silent", || {
        b.saw(&PeerEvent::MediaState {
            peer: a.peer,
            connected: false,
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.client.set_offline(false);
    wait_until("b is told a is back", || {
        b.saw(&PeerEvent::MediaState {
            peer: a.peer,
            connected: true,
        })
    })
    .await;
    both_keep_hearing(&a, &b, Duration::from_millis(2000)).await;
    assert!(!b.saw(&PeerEvent::TrackUnpublished { peer: a.peer }));
    assert!(!a.saw(&PeerEvent::Closed {
        reason: CloseReason::Failed
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_tap_sees_each_speaker_and_a_slow_consumer_only_loses_its_own_packets() {
    let sfu = start_sfu(SfuConfig::default()).await;
    let room = RoomId(4);
    let mut tap = sfu.tap(room, 1000);
    let slow_tap = sfu.tap(room, 4);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    wait_until("audio flows", || b.from(&a) >= 50 && a.from(&b) >= 50).await;
    let mut seen = std::collections::HashSet::new();
    while let Some(packet) = tap.try_recv() {
        assert_eq!(packet.room, room);
        assert!(!packet.payload.is_empty());
        seen.insert(packet.peer);
    }
    assert!(seen.contains(&a.peer) && seen.contains(&b.peer), "{seen:?}");
    assert!(slow_tap.dropped() > 0, "the slow tap dropped and counted");
    let a_stats = a.client.stats();
    assert_eq!(
        a_stats.streams[&b.stream()].missing,
        0,
        "forwarding lost nothing meanwhile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_offer_or_a_second_join_is_refused_and_the_room_goes_on() {
    let sfu = start_sfu(SfuConfig::default()).await;
    let room = RoomId(5);
    let a = join(&sfu, room, 440.0).await;
    let b = join(&sfu, room, 550.0).await;
    let (tx, _rx) = sfu::event_channel();
    let garbage = sfu
        .join(
            room,
            PeerId(9_999),
            "this is not SDP".to_owned(),
            tx.clone(),
        )
        .await;
    assert!(matches!(garbage, Err(sfu::SfuError::Sdp(_))), "{garbage:?}");
    let (_c, offer) = RtcClient::start(300.0).await.expect("client");
    let twice = sfu.join(room, a.peer, offer, tx).await;
    assert!(
        matches!(twice, Err(sfu::SfuError::OutOfOrder(_))),
        "{twice:?}"
    );
    let stray_answer = sfu.answer(room, b.peer, "v=0".to_owned()).await;
    assert!(
        matches!(stray_answer, Err(sfu::SfuError::OutOfOrder(_))),
        "{stray_answer:?}"
    );
    wait_until("a and b still hear each other", || {
        b.from(&a) >= 50 && a.from(&b) >= 50
    })
    .await;
}

/// Deterministic pseudo-random bytes, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_offers_and_datagrams_do_not_take_the_media_plane_down() {
    let sfu = Sfu::start(SfuConfig {
        shards: 1,
        ..SfuConfig::default()
    })
    .await
    .expect("sfu");
    let room = RoomId(6);
    let a = join(&sfu, room, 440.0).await;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);

    // Mangled versions of a real browser-like offer: truncated, bytes flipped, lines repeated.
    let (_spare, offer) = RtcClient::start(300.0).await.expect("client");
    let (tx, _rx) = sfu::event_channel();
    for i in 0..150u64 {
        let mut bytes = offer.clone().into_bytes();
        match i % 3 {
            0 => bytes.truncate(rng.below(bytes.len())),
            1 => {
                for _ in 0..1 + rng.below(20) {
                    let at = rng.below(bytes.len());
                    bytes[at] = b' ' + (rng.next() % 95) as u8;
                }
            }
            _ => {
                let at = rng.below(bytes.len());
                let chunk = bytes[at..].iter().take(200).copied().collect::<Vec<_>>();
                bytes.splice(at..at, chunk.iter().copied().cycle().take(chunk.len() * 3));
            }
        }
        let mangled = String::from_utf8_lossy(&bytes).into_owned();
        let peer = PeerId(100_000 + i);
        if sfu.join(room, peer, mangled, tx.clone()).await.is_ok() {
            sfu.leave(room, peer);
        }
    }

    // Datagrams from a stranger: STUN-shaped with random attributes, DTLS- and RTP-shaped.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("socket");
    let target = sfu.local_addrs()[0];
    for i in 0..2000usize {
        let len = 1 + rng.below(300);
        let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        match i % 3 {
            0 if d.len() >= 20 => {
                d[0] = 0;
                d[1] = 1;
                d[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
            }
            1 => d[0] = 20 + (rng.next() % 44) as u8,
            _ => d[0] = 0x80 | (rng.next() % 64) as u8,
        }
        let _ = stranger.send_to(&d, target).await;
    }

    // The shard is alive: a new participant connects and audio flows both ways.
    let b = join(&sfu, room, 550.0).await;
    wait_until("a and b hear each other after the storm", || {
        b.from(&a) >= 50 && a.from(&b) >= 50
    })
    .await;
}

/// Silence as RFC 6464 announces it: the microphone is open, nobody speaks.
const SILENT: u8 = 127;

/// Which of `others` `me` received at least `at_least` packets from between two snapshots.
fn heard(
    me: &Participant,
    others: &[Participant],
    before: &std::collections::HashMap<u32, u64>,
    at_least: u64,
) -> Vec<u64> {
    let stats = me.client.stats();
    others
        .iter()
        .filter(|o| o.peer != me.peer)
        .filter(|o| {
            let source = source_of(others, o);
            let now = stats.packets_from_source(source);
            now - before.get(&source).copied().unwrap_or(0) >= at_least
        })
        .map(|o| o.peer.0)
        .collect()
}

/// For `slices` 5 s slices, every participant receives every one of `talking` (but itself)
/// at full rate (at least 225 of 250 packets; the strict check is no sequence gap) and nothing at all from anyone else.
async fn everyone_hears_exactly(people: &[Participant], talking: &[u64], slices: u32) {
    for slice in 0..slices {
        let before: Vec<_> = people.iter().map(snapshot).collect();
        tokio::time::sleep(Duration::from_secs(5)).await;
        for (me, before) in people.iter().zip(&before) {
            let mut want: Vec<u64> = talking
                .iter()
                .copied()
                .filter(|s| *s != me.peer.0)
                .collect();
            want.sort_unstable();
            let mut got = heard(me, people, before, 1);
            got.sort_unstable();
            assert_eq!(
                got, want,
                "slice {slice}: who participant {} hears",
                me.peer.0
            );
            let mut full = heard(me, people, before, 225);
            full.sort_unstable();
            assert_eq!(
                full, want,
                "slice {slice}: participant {} at full rate",
                me.peer.0
            );
        }
    }
}

fn snapshot(me: &Participant) -> std::collections::HashMap<u32, u64> {
    me.client
        .stats()
        .sources
        .iter()
        .map(|(k, v)| (*k, v.packets))
        .collect()
}

/// A large room forwards only its loudest speakers, on each listener's audio slots: 20
/// participants, 3 talking, for a minute.
/// Every listener gets exactly those 3 in every 5 s slice and nothing of the 17 silent ones (whose packets still flow
/// to the server and the transcriber); a new speaker is heard within 300 ms once a place is
/// free; continuing speakers lose no packet across the switch, and a stream that resumes
/// after a pause has no sequence gap (the browser sees a pause in speech, not loss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_room_forwards_only_its_loudest_speakers_and_switches_to_a_new_one_quickly() {
    let sfu = start_sfu(SfuConfig {
        audio_slots: Some(sfu::AudioSlots {
            slots: 3,
            above: 12,
        }),
        ..SfuConfig::default()
    })
    .await;
    let room = RoomId(20);
    let mut tap = sfu.tap(room, 100_000);
    let mut people = Vec::new();
    for i in 0..20u8 {
        let level = if i < 3 { TALKING_LEVEL } else { SILENT };
        people.push(join_at_level(&sfu, room, 300.0 + f32::from(i) * 20.0, level).await);
    }
    let speakers: Vec<u64> = people[..3].iter().map(|p| p.peer.0).collect();
    let everyone_connected = || {
        people
            .iter()
            .all(|p| p.client.stats().connected_after.is_some())
    };
    wait_until("all 20 are connected", everyone_connected).await;
    // Let the renegotiations of 20 joins settle and the selection start.
    tokio::time::sleep(Duration::from_secs(3)).await;

    everyone_hears_exactly(&people, &speakers, 6).await;
    // The transcriber's tap got the silent ones too.
    let mut tapped = std::collections::HashSet::new();
    while let Some(packet) = tap.try_recv() {
        tapped.insert(packet.peer);
    }
    assert_eq!(tapped.len(), 20, "the tap receives every unmuted track");

    // The third speaker stops; once the hangover is over a newcomer takes the place.
    people[2].client.set_audio_level(SILENT);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let newcomer = &people[7];
    let listeners: Vec<&Participant> = people.iter().filter(|p| p.peer != newcomer.peer).collect();
    let at_start: Vec<u64> = listeners
        .iter()
        .map(|l| l.heard_on_slots(newcomer, &people))
        .collect();
    let started = std::time::Instant::now();
    newcomer.client.set_audio_level(TALKING_LEVEL);
    let mut heard_after = vec![None; listeners.len()];
    while started.elapsed() < Duration::from_secs(3) && heard_after.iter().any(Option::is_none) {
        for (k, l) in listeners.iter().enumerate() {
            if heard_after[k].is_none() && l.heard_on_slots(newcomer, &people) > at_start[k] {
                heard_after[k] = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let slowest = heard_after.iter().map(|h| h.unwrap_or(Duration::MAX)).max();
    eprintln!("the new speaker was heard by every listener within {slowest:?}");
    assert!(
        slowest.is_some_and(|t| t <= Duration::from_millis(300)),
        "{heard_after:?}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let now_talking = [people[0].peer.0, people[1].peer.0, newcomer.peer.0];
    everyone_hears_exactly(&people, &now_talking, 6).await;
    for me in &people {
        for (name, stream) in me.client.stats().streams {
            assert_eq!(stream.missing, 0, "{} lost packets of {name}", me.peer.0);
        }
    }
}

/// Who each participant hears (by CSRC) over `window`, as sorted peer numbers.
async fn who_hears_whom(people: &[Participant], window: Duration) -> Vec<Vec<u64>> {
    let before: Vec<_> = people.iter().map(snapshot).collect();
    tokio::time::sleep(window).await;
    people
        .iter()
        .zip(&before)
        .map(|(me, before)| {
            let mut got = heard(me, people, before, 10);
            got.sort_unstable();
            got
        })
        .collect()
}

fn peers(of: &[&Participant]) -> Vec<u64> {
    let mut v: Vec<u64> = of.iter().map(|p| p.peer.0).collect();
    v.sort_unstable();
    v
}

/// A room forced large (every room is, with `above: 0`) with 2 audio slots: people speak in
/// turns and over each other, and each listener hears the current speakers (never itself)
/// on its 2 slots, each packet naming its speaker in the CSRC; a 7th joining sends no offer to
/// the 6 already there; a slot that changes speaker keeps its sequence numbers gapless, marks
/// the switch, and moves its timestamp on by the time that passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_room_switches_speakers_on_fixed_audio_slots_without_renegotiating() {
    let sfu = start_sfu(SfuConfig {
        audio_slots: Some(sfu::AudioSlots { slots: 2, above: 0 }),
        ..SfuConfig::default()
    })
    .await;
    let room = RoomId(30);
    let mut people = Vec::new();
    for i in 0..6u8 {
        people.push(join_at_level(&sfu, room, 300.0 + f32::from(i) * 40.0, SILENT).await);
    }
    wait_until("all 6 are connected", || {
        people
            .iter()
            .all(|p| p.client.stats().connected_after.is_some())
    })
    .await;
    wait_until("everyone knows everyone's CSRC", || {
        people.iter().all(|p| source_of(&people, p) != 0)
    })
    .await;
    for p in &people {
        assert_eq!(p.offers(), 1, "one server offer at join brings the slots");
    }

    // Two speak: everyone else hears both; each of them hears the other.
    people[0].client.set_audio_level(TALKING_LEVEL);
    people[1].client.set_audio_level(TALKING_LEVEL);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = who_hears_whom(&people, Duration::from_secs(3)).await;
    for (i, got) in heard.iter().enumerate() {
        let want = match i {
            0 => peers(&[&people[1]]),
            1 => peers(&[&people[0]]),
            _ => peers(&[&people[0], &people[1]]),
        };
        assert_eq!(got, &want, "who participant {i} hears while 0 and 1 speak");
    }

    // A 7th joins: nobody already in the room is sent an offer, and it hears the speakers.
    let offers_before: Vec<usize> = people.iter().map(Participant::offers).collect();
    people.push(join_at_level(&sfu, room, 300.0 + 6.0 * 40.0, SILENT).await);
    wait_until("the 7th hears both speakers", || {
        people[6].heard_on_slots(&people[0], &people) > 50
            && people[6].heard_on_slots(&people[1], &people) > 50
    })
    .await;
    let offers_after: Vec<usize> = people[..6].iter().map(Participant::offers).collect();
    assert_eq!(
        offers_after, offers_before,
        "a join in a large room offers nobody else anything"
    );

    // Turns: 1 stops, 2 starts; once 1's hangover is over, 2 is heard in its place.
    people[1].client.set_audio_level(SILENT);
    people[2].client.set_audio_level(TALKING_LEVEL);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let heard = who_hears_whom(&people, Duration::from_secs(3)).await;
    for (i, got) in heard.iter().enumerate() {
        let want = match i {
            0 => peers(&[&people[2]]),
            2 => peers(&[&people[0]]),
            _ => peers(&[&people[0], &people[2]]),
        };
        assert_eq!(got, &want, "who participant {i} hears after the turn");
    }

    // Over each other: 0, 2 and 3 speak at once with 2 slots. A listener hears 2 of them;
    // each speaker hears the other two (its own place's slot carries the third).
    people[3].client.set_audio_level(TALKING_LEVEL);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = who_hears_whom(&people, Duration::from_secs(3)).await;
    let talkers = peers(&[&people[0], &people[2], &people[3]]);
    for (i, got) in heard.iter().enumerate() {
        assert!(
            !got.contains(&people[i].peer.0),
            "participant {i} hears itself"
        );
        assert!(
            got.iter().all(|p| talkers.contains(p)),
            "participant {i} hears a silent one: {got:?}"
        );
        assert_eq!(got.len(), 2, "participant {i} hears {got:?}");
    }
    for (i, p) in people.iter().enumerate() {
        let stats = p.client.stats();
        let slots: Vec<&String> = stats.streams.keys().collect();
        assert!(
            stats.streams.len() <= 2,
            "participant {i} receives only its 2 slots: {slots:?}"
        );
        for (name, stream) in &stats.streams {
            assert_eq!(
                stream.missing, 0,
                "participant {i}: a sequence gap on {name}"
            );
            assert_eq!(stream.ssrcs.len(), 1, "participant {i}: one SSRC on {name}");
            assert!(
                stream.worst_switch_skew_ms < 40.0,
                "participant {i}: across a switch on {name} the timestamp moved {:.1} ms off real time",
                stream.worst_switch_skew_ms
            );
        }
        assert_eq!(
            stats.marked_switches, stats.switches,
            "participant {i}: every switch starts a talkspurt"
        );
    }
    let switched: u64 = people.iter().map(|p| p.client.stats().switches).sum();
    assert!(
        switched > 0,
        "the turns switched some slot to another speaker"
    );
}
