//! SDP and ICE candidates from a client, on the server path (`sfu::peer::Peer`, which the shard
//! calls for the `offer`, `answer` and `ice_candidate` messages):
//!
//! - mode 0: a join offer, `Peer::answer_offer` (validation, credentials, extmap and Opus
//!   payload type, then `rtc`'s parser and negotiation);
//! - mode 1: an ICE-restart offer to a joined peer, `Peer::handle_restart_offer`;
//! - mode 2: the client's answer to a server offer, `Peer::handle_answer`;
//! - mode 3: a trickled candidate, `Peer::add_remote_candidate`.
//!
//! The first byte picks the mode; the rest is the text. The joined peer is built from a
//! Chromium offer (`chromium_offer.sdp`).
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sfu::peer::{Peer, ServerAddrs};
use sfu::{IceCandidate, PeerId, RoomId};

const CHROMIUM_OFFER: &str = include_str!("chromium_offer.sdp");

fn addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 3478))
}

/// The shard's socket and both candidates (UDP, and ICE-TCP as the server offers by default).
fn server() -> ServerAddrs {
    ServerAddrs {
        local: addr(),
        udp: addr(),
        tcp: Some(SocketAddr::from(([192, 0, 2, 1], 3479))),
    }
}

fn joined(now: Instant) -> Peer {
    let (peer, _answer) = Peer::answer_offer(
        PeerId(1),
        RoomId(1),
        CHROMIUM_OFFER.to_owned(),
        server(),
        1,
        now,
    )
    .expect("the Chromium seed offer is accepted");
    peer
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let now = Instant::now();
    match mode % 4 {
        0 => {
            let _ = Peer::answer_offer(
                PeerId(1),
                RoomId(1),
                text.to_owned(),
                server(),
                1,
                now,
            );
        }
        1 => {
            let _ = joined(now).handle_restart_offer(now, text.to_owned());
        }
        2 => {
            let mut peer = joined(now);
            peer.subscribe(PeerId(2)).expect("subscribes");
            let offer = peer.poll_offer(now, true).expect("offers");
            assert!(offer.is_some(), "a new subscription makes a server offer");
            let _ = peer.handle_answer(now, text.to_owned());
        }
        _ => {
            let _ = joined(now).add_remote_candidate(IceCandidate {
                candidate: text.to_owned(),
                sdp_mid: Some("0".to_owned()),
                sdp_mline_index: Some(0),
                ..Default::default()
            });
        }
    }
});
