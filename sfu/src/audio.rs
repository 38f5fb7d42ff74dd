//! The audio profile both ends of a WebCall media connection use: Opus with in-band FEC,
//! RFC 6464 audio levels and RTCP reports. The SFU and the project's test/bench clients
//! build their connections from here so they can't drift apart.

use std::net::SocketAddr;

use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::shared::error::Error;

pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        // In-band FEC on, as browsers send it; DTX is the sender's choice and passes through.
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The media engine and interceptors for an audio-only connection: sender/receiver reports
/// only. No NACK: `rtc` (like browsers) negotiates it for video alone, yet its two NACK
/// interceptors sat in every packet's path and the responder kept a copy of each one sent
/// (`bench/reports/forwarding-profile.md`); Opus covers loss with
/// in-band FEC and concealment. No congestion control: a few Opus streams don't need it.
///
/// # Errors
/// When `rtc` refuses the registration (it doesn't for these values).
pub fn audio_engine() -> Result<(MediaEngine, Registry), Error> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    let registry = configure_rtcp_reports(Registry::new());
    Ok((media, registry))
}

/// One Opus track sent under `ssrc`.
pub fn audio_track(
    stream_id: String,
    track_id: String,
    label: String,
    ssrc: u32,
) -> MediaStreamTrack {
    MediaStreamTrack::new(
        stream_id,
        track_id,
        label,
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: opus_codec(),
            ..Default::default()
        }],
    )
}

/// The host candidate for a UDP socket at `addr`.
///
/// # Errors
/// When the address can't make a candidate.
pub fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, Error> {
    candidate_at(addr, "udp", TcpType::Unspecified)
}

/// The passive ICE-TCP host candidate at `addr` (RFC 6544): the client connects to it.
/// Firefox takes a TCP candidate only when it says `tcptype passive`.
///
/// # Errors
/// When the address can't make a candidate.
pub fn passive_tcp_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, Error> {
    candidate_at(addr, "tcp", TcpType::Passive)
}

fn candidate_at(
    addr: SocketAddr,
    network: &str,
    tcp_type: TcpType,
) -> Result<RTCIceCandidateInit, Error> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: network.to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type,
    }
    .new_candidate_host()?;
    RTCIceCandidate::from(&candidate).to_json()
}

/// The payload type the client's SDP gives Opus (`a=rtpmap:<pt> opus/48000/2`): Chromium
/// uses 111, Firefox 109. Packets we send must carry the receiver's number.
pub fn opus_payload_type(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let (pt, codec) = line.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        codec
            .to_ascii_lowercase()
            .starts_with("opus/48000")
            .then(|| pt.trim().parse().ok())?
    })
}

/// The `a=extmap` id an SDP gives the header extension `uri`, if any.
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let (id, rest) = line.strip_prefix("a=extmap:")?.split_once(' ')?;
        (rest.split_whitespace().next()? == uri).then_some(())?;
        id.split('/').next()?.parse().ok()
    })
}

/// A received packet's RFC 6464 level (-dBov, 0 loudest, 127 silence) from the header
/// extension the client's SDP numbered `id`; the voice-activity bit is dropped. `None`
/// without the extension or with an empty one.
pub fn audio_level(header: &rtc::rtp::Header, id: Option<u8>) -> Option<u8> {
    id.and_then(|id| header.get_extension(id))
        .and_then(|ext| ext.first().copied())
        .map(|b| b & 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audio_level_extmap_id_is_read_from_an_sdp() {
        let sdp = "v=0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:3 http://x\r\n";
        assert_eq!(extmap_id(sdp, AUDIO_LEVEL_URI), Some(1));
        let sdp = "a=extmap:5/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on\r\n";
        assert_eq!(extmap_id(sdp, AUDIO_LEVEL_URI), Some(5));
        assert_eq!(extmap_id("a=extmap:2 http://x\r\n", AUDIO_LEVEL_URI), None);
    }

    #[test]
    fn the_audio_level_is_read_from_its_extension_without_the_voice_bit() {
        use rtc::shared::marshal::Unmarshal;
        // V=2, X=1, PT 111, seq 1, ts 960, SSRC 7.
        let mut raw = vec![0x90, 111, 0, 1, 0, 0, 0x03, 0xc0, 0, 0, 0, 7];
        // One-byte extensions (0xBEDE), one word: id 1 with one byte (V=1, level 30), padding.
        raw.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x80 | 30, 0, 0]);
        raw.extend_from_slice(&[0xfc, 0xff, 0xfe]);
        let packet = rtc::rtp::Packet::unmarshal(&mut &raw[..]).expect("an RTP packet");
        assert_eq!(audio_level(&packet.header, Some(1)), Some(30));
        assert_eq!(audio_level(&packet.header, Some(2)), None, "another id");
        assert_eq!(audio_level(&packet.header, None), None, "not negotiated");
    }

    #[test]
    fn opus_keeps_the_payload_type_each_browser_gave_it() {
        let chromium = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:63 red/48000/2\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(opus_payload_type(chromium), Some(111));
        let firefox = "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\na=rtpmap:109 opus/48000/2\r\na=rtpmap:9 G722/8000/1\r\n";
        assert_eq!(opus_payload_type(firefox), Some(109));
        assert_eq!(opus_payload_type("a=rtpmap:0 PCMU/8000\r\n"), None);
    }
}
