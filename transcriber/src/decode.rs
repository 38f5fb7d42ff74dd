//! Opus packets (with RTP sequence numbers and timestamps) to 48 kHz mono PCM.
//!
//! Gaps are told apart by the two RTP counters: a missing *sequence number* is a lost packet,
//! concealed by the decoder (Opus PLC, at most [`MAX_CONCEALED`] frames, after which
//! concealment only smears noise). The last frame of such a gap is recovered instead from the
//! packet that ends it, when that packet carries Opus in-band FEC (a copy of the previous frame
//! at a lower bitrate, which browsers add once receiver reports show loss); a packet without
//! FEC data decodes as PLC there, so nothing is lost by asking. A *timestamp* jump with contiguous sequence numbers is the
//! sender's DTX (it stopped sending during silence), which is real silence and becomes zeros.
//! Either way the track's clock advances by the RTP timestamp, so segment times stay true.

use crate::Error;

/// Lost packets concealed at most per gap (5 x 20 ms): longer concealment is guesswork.
pub const MAX_CONCEALED: u16 = 5;
/// The longest silence materialised as samples; a longer gap is reported as a skip so that a
/// client silent for an hour does not cost an hour of zeros.
pub const MAX_SILENCE_SAMPLES: u64 = 48_000;
/// The largest Opus frame (120 ms at 48 kHz).
const MAX_FRAME: usize = 5_760;

/// What one packet turned into, in order: PCM at 48 kHz, then possibly a clock jump.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// Samples to append (concealment, silence, then the packet's own audio).
    pub pcm: Vec<f32>,
    /// Samples of silence *before* `pcm` that were not materialised (a long DTX gap).
    pub skipped: u64,
    /// Frames concealed because packets were lost (PLC, or FEC where the next packet had it).
    pub concealed: u32,
}

/// One track's decoder and its view of the RTP counters.
pub struct TrackDecoder {
    decoder: opus::Decoder,
    next: Option<(u16, u32)>,
    last_frame: usize,
    /// Recover a lost frame from the next packet's FEC; off only to measure what it buys.
    fec: bool,
}

impl std::fmt::Debug for TrackDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackDecoder")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl TrackDecoder {
    /// # Errors
    /// [`Error::Opus`] if libopus refuses to create a decoder.
    pub fn new() -> Result<Self, Error> {
        Ok(Self {
            decoder: opus::Decoder::new(crate::OPUS_RATE, opus::Channels::Mono)?,
            next: None,
            last_frame: 960,
            fec: true,
        })
    }

    /// Decodes one packet. Late or duplicate packets (behind the expected timestamp) are
    /// dropped; a corrupt packet is concealed rather than failing the track.
    pub fn handle_packet(&mut self, sequence: u16, rtp_timestamp: u32, payload: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        if let Some((next_seq, next_ts)) = self.next {
            let ts_gap = rtp_timestamp.wrapping_sub(next_ts) as i32;
            if ts_gap < 0 {
                return out;
            }
            let lost = sequence.wrapping_sub(next_seq);
            if lost > u16::MAX / 2 {
                // Sequence went backwards while the timestamp did not: a reordered packet.
                return out;
            }
            let mut gap = ts_gap as u64;
            let conceal = lost.min(MAX_CONCEALED);
            for k in 0..conceal {
                let frame = (self.last_frame as u64).min(gap) as usize;
                if frame == 0 {
                    break;
                }
                // Only the frame right before this packet can come from its FEC, and only when
                // the whole gap is concealed (otherwise silence lies between them).
                let from_fec = self.fec && k + 1 == lost && frame == self.last_frame;
                let start = out.pcm.len();
                out.pcm.resize(start + frame, 0.0);
                let decoded = if from_fec {
                    self.decoder
                        .decode_float(payload, &mut out.pcm[start..], true)
                } else {
                    self.decoder.decode_float(&[], &mut out.pcm[start..], false)
                };
                // A failed concealment leaves the frame silent.
                if let Ok(n) = decoded {
                    out.pcm.truncate(start + n);
                }
                let produced = (out.pcm.len() - start) as u64;
                gap = gap.saturating_sub(produced);
                out.concealed += 1;
            }
            // Whatever the timestamps still say is missing is silence (DTX or a long loss).
            let silent = gap.min(MAX_SILENCE_SAMPLES);
            out.skipped = gap - silent;
            if out.skipped > 0 {
                // Skipped silence comes first, so only the tail is materialised.
                let concealed = std::mem::take(&mut out.pcm);
                out.pcm.resize(silent as usize, 0.0);
                out.skipped += concealed.len() as u64;
            } else {
                out.pcm.resize(out.pcm.len() + silent as usize, 0.0);
            }
        }
        let start = out.pcm.len();
        out.pcm.resize(start + MAX_FRAME, 0.0);
        let n = match self
            .decoder
            .decode_float(payload, &mut out.pcm[start..], false)
        {
            Ok(n) => n,
            Err(_) => self
                .decoder
                .decode_float(&[], &mut out.pcm[start..start + self.last_frame], false)
                .unwrap_or(0),
        };
        out.pcm.truncate(start + n);
        if n > 0 {
            self.last_frame = n;
        }
        self.next = Some((
            sequence.wrapping_add(1),
            rtp_timestamp.wrapping_add(n as u32),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder() -> opus::Encoder {
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).expect("encoder")
    }

    fn tone(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.3)
            .collect()
    }

    fn packets(count: usize) -> Vec<Vec<u8>> {
        let mut enc = encoder();
        let pcm = tone(960 * count);
        pcm.chunks(960)
            .map(|frame| enc.encode_vec_float(frame, 1500).expect("encode"))
            .collect()
    }

    #[test]
    fn contiguous_packets_decode_to_contiguous_audio() {
        let mut dec = TrackDecoder::new().expect("decoder");
        let mut total = 0;
        for (i, p) in packets(10).iter().enumerate() {
            let d = dec.handle_packet(i as u16, i as u32 * 960, p);
            assert_eq!(d.skipped, 0);
            assert_eq!(d.concealed, 0);
            total += d.pcm.len();
        }
        assert_eq!(total, 9_600);
    }

    #[test]
    fn lost_packets_are_concealed_and_the_clock_keeps_its_place() {
        let mut dec = TrackDecoder::new().expect("decoder");
        let p = packets(10);
        dec.handle_packet(0, 0, &p[0]);
        // Packets 1 and 2 lost.
        let d = dec.handle_packet(3, 3 * 960, &p[3]);
        assert_eq!(d.concealed, 2);
        assert_eq!(d.pcm.len(), 3 * 960);
        assert!(
            d.pcm[..1920].iter().any(|s| s.abs() > 0.01),
            "PLC continues the tone"
        );
    }

    /// A voice-like signal whose pitch glides, so that PLC (which continues the last pitch)
    /// guesses wrong where FEC (which carries the frame) does not.
    fn glide(n: usize) -> Vec<f32> {
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let pitch = 150.0 + 250.0 * ((i as f32 / 4_800.0).sin() + 1.0);
                phase += pitch * std::f32::consts::TAU / 48_000.0;
                (phase.sin() + 0.5 * (2.0 * phase).sin()) * 0.25
            })
            .collect()
    }

    #[test]
    fn a_lost_frame_comes_back_from_the_next_packets_fec() {
        // What a browser sends once receiver reports show loss: FEC on, expecting 10 %.
        let mut enc = encoder();
        enc.set_inband_fec(true).expect("fec");
        enc.set_packet_loss_perc(10).expect("loss");
        enc.set_bitrate(opus::Bitrate::Bits(32_000))
            .expect("bitrate");
        let packets: Vec<Vec<u8>> = glide(960 * 61)
            .chunks(960)
            .map(|frame| enc.encode_vec_float(frame, 1500).expect("encode"))
            .collect();
        let decode = |lose: bool, fec: bool| {
            let mut dec = TrackDecoder::new().expect("decoder");
            dec.fec = fec;
            let mut pcm = Vec::new();
            for (i, p) in packets.iter().enumerate() {
                if lose && i % 6 == 5 {
                    continue;
                }
                pcm.extend(dec.handle_packet(i as u16, i as u32 * 960, p).pcm);
            }
            pcm
        };
        let heard = decode(false, true);
        let lost_frames_error = |pcm: &[f32]| {
            assert_eq!(pcm.len(), heard.len(), "the clock keeps its place");
            (5..60)
                .step_by(6)
                .flat_map(|i| i * 960..(i + 1) * 960)
                .map(|k| (pcm[k] - heard[k]).powi(2))
                .sum::<f32>()
        };
        let with_fec = lost_frames_error(&decode(true, true));
        let plc_only = lost_frames_error(&decode(true, false));
        eprintln!("lost frames' squared error: FEC {with_fec:.3}, PLC alone {plc_only:.3}");
        assert!(
            with_fec < plc_only / 2.0,
            "lost frames' error: FEC {with_fec}, PLC alone {plc_only}"
        );
    }

    #[test]
    fn a_dtx_gap_becomes_silence_and_a_long_one_a_skip() {
        let mut dec = TrackDecoder::new().expect("decoder");
        let p = packets(3);
        dec.handle_packet(0, 0, &p[0]);
        // Contiguous sequence, timestamp 400 ms later: the sender was in DTX.
        let d = dec.handle_packet(1, 960 + 19_200, &p[1]);
        assert_eq!(d.concealed, 0);
        assert_eq!(d.pcm.len(), 19_200 + 960);
        assert!(d.pcm[..19_200].iter().all(|s| *s == 0.0));
        let d = dec.handle_packet(2, 960 * 2 + 19_200 + 480_000, &p[2]);
        assert_eq!(d.skipped, 480_000 - MAX_SILENCE_SAMPLES);
        assert_eq!(d.pcm.len() as u64, MAX_SILENCE_SAMPLES + 960);
    }

    #[test]
    fn late_duplicates_and_garbage_do_not_break_the_track() {
        let mut dec = TrackDecoder::new().expect("decoder");
        let p = packets(3);
        dec.handle_packet(0, 0, &p[0]);
        dec.handle_packet(1, 960, &p[1]);
        assert!(dec.handle_packet(0, 0, &p[0]).pcm.is_empty());
        let d = dec.handle_packet(2, 1920, &[0xff, 0xff, 0xff]);
        assert!(d.pcm.len() <= 960);
    }
}
