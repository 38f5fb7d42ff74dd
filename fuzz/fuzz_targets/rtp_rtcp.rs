//! The forwarding path after SRTP/SRTCP decryption: an RTP packet is parsed (`rtc::rtp`), its
//! RFC 6464 level read (`sfu::audio::audio_level`), its numbering rewritten per subscriber
//! (`sfu::rewrite::SequenceRewriter`) and re-marshalled under the subscriber's SSRC, as
//! `Peer::forward` does before encryption; an RTCP datagram is parsed (`rtc::rtcp`) as the
//! report and NACK interceptors do.
//!
//! The input is a sequence of datagrams, each prefixed by a big-endian u16 length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtc::shared::marshal::{Marshal, Unmarshal};
use sfu::audio::audio_level;
use sfu::rewrite::SequenceRewriter;

fuzz_target!(|data: &[u8]| {
    let mut rewriter = SequenceRewriter::new();
    let mut last: Option<(u32, u16, u32, u16, u32)> = None;
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let datagram = &rest[2..2 + len];
        rest = &rest[2 + len..];

        if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut &datagram[..]) {
            for p in &packets {
                let _ = (p.header(), p.destination_ssrc(), p.raw_size());
            }
        }

        let Ok(packet) = rtc::rtp::Packet::unmarshal(&mut &datagram[..]) else {
            continue;
        };
        for id in 0..=15 {
            if let Some(level) = audio_level(&packet.header, Some(id)) {
                assert!(level <= 127);
            }
        }
        let h = &packet.header;
        let (seq, ts) = rewriter.rewrite(h.ssrc, h.sequence_number, h.timestamp, 1000, 5000);
        // A packet right after the previous one of the same source keeps the spacing.
        if let Some((ssrc, last_seq, last_ts, out_seq, out_ts)) = last {
            if ssrc == h.ssrc && h.sequence_number == last_seq.wrapping_add(1) {
                assert_eq!(seq, out_seq.wrapping_add(1));
                assert_eq!(ts.wrapping_sub(out_ts), h.timestamp.wrapping_sub(last_ts));
            }
        }
        last = Some((h.ssrc, h.sequence_number, h.timestamp, seq, ts));

        let mut out = packet.clone();
        out.header.ssrc = 0x5eed;
        out.header.sequence_number = seq;
        out.header.timestamp = ts;
        out.header.payload_type = 111;
        out.header.extension = false;
        out.header.extensions.clear();
        out.header.extension_profile = 0;
        let _ = out.marshal();
    }
});
