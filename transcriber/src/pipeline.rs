//! The front half of the pipeline for one participant track: Opus packets in, utterances out.
//! Cheap (a few percent of a core per speaker), so the caller may run it anywhere; only
//! whisper goes to the worker threads.

use crate::decode::TrackDecoder;
use crate::reorder::{ReorderBuffer, RtpAudio};
use crate::resample::Resampler;
use crate::segment::Speaker;
use crate::vad::{InProgress, Utterance, Vad, VadConfig};
use crate::Error;

/// Decoder, resampler and VAD of one track.
#[derive(Debug)]
pub struct TrackPipeline {
    pub speaker: Speaker,
    reorder: ReorderBuffer,
    decoder: TrackDecoder,
    resampler: Resampler,
    vad: Vad,
    scratch: Vec<f32>,
    concealed: u64,
}

impl TrackPipeline {
    /// # Errors
    /// [`Error`] if the decoder or resampler can't be created.
    pub fn new(speaker: Speaker, vad: VadConfig) -> Result<Self, Error> {
        Ok(Self {
            speaker,
            reorder: ReorderBuffer::default(),
            decoder: TrackDecoder::new()?,
            resampler: Resampler::new(crate::OPUS_RATE)?,
            vad: Vad::new(vad),
            scratch: Vec::new(),
            concealed: 0,
        })
    }

    /// Feeds one RTP packet's Opus payload; returns completed utterances.
    pub fn handle_packet(
        &mut self,
        sequence: u16,
        rtp_timestamp: u32,
        payload: &[u8],
    ) -> Vec<Utterance> {
        let mut out = Vec::new();
        if self.reorder.pass_in_order(sequence) {
            self.decode(sequence, rtp_timestamp, payload, &mut out);
            return out;
        }
        let ready = self.reorder.push(RtpAudio {
            sequence,
            rtp_timestamp,
            payload: payload.to_vec(),
        });
        for p in ready {
            self.decode(p.sequence, p.rtp_timestamp, &p.payload, &mut out);
        }
        out
    }

    fn decode(
        &mut self,
        sequence: u16,
        rtp_timestamp: u32,
        payload: &[u8],
        out: &mut Vec<Utterance>,
    ) {
        let decoded = self.decoder.handle_packet(sequence, rtp_timestamp, payload);
        self.concealed += u64::from(decoded.concealed);
        if decoded.skipped > 0 {
            out.extend(self.vad.skip(decoded.skipped / 3));
        }
        self.scratch.clear();
        if let Err(err) = self.resampler.process(&decoded.pcm, &mut self.scratch) {
            tracing::warn!(error = %err, "resampler failed; audio skipped");
            return;
        }
        out.extend(self.vad.push(&self.scratch));
    }

    /// Decodes what the reorder buffer still holds behind a gap.
    fn drain_reorder(&mut self) -> Vec<Utterance> {
        let mut out = Vec::new();
        for p in self.reorder.drain() {
            self.decode(p.sequence, p.rtp_timestamp, &p.payload, &mut out);
        }
        out
    }

    /// The track ended: whatever utterance is in progress.
    pub fn finish(&mut self) -> Option<Utterance> {
        let mut out = self.drain_reorder();
        self.scratch.clear();
        if self.resampler.finish(&mut self.scratch).is_ok() {
            out.extend(self.vad.push(&self.scratch));
        }
        out.extend(self.vad.flush());
        merge(out)
    }

    /// Ends the utterance in progress (the track went quiet without packets: muted, left,
    /// or a sender that stops instead of using DTX). The next packet continues the clock.
    pub fn flush_utterance(&mut self) -> Option<Utterance> {
        let mut out = self.drain_reorder();
        out.extend(self.vad.flush());
        merge(out)
    }

    /// The utterance being spoken, for a partial caption.
    pub fn in_progress(&self) -> Option<InProgress<'_>> {
        self.vad.in_progress()
    }

    /// Frames concealed because of packet loss so far.
    pub fn concealed(&self) -> u64 {
        self.concealed
    }
}

/// The utterances completed while a track is being closed, as one: a few packets of drained
/// audio or a resampler's tail can complete an utterance just before the final flush.
fn merge(utterances: Vec<Utterance>) -> Option<Utterance> {
    let mut it = utterances.into_iter();
    let mut merged = it.next()?;
    for next in it {
        let end = merged.start + merged.samples.len() as u64;
        let gap = next.start.saturating_sub(end) as usize;
        merged.samples.extend(std::iter::repeat_n(0.0, gap));
        merged.samples.extend(next.samples);
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms Opus frames of a 300 Hz tone.
    fn frames(n: usize) -> Vec<Vec<u8>> {
        let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        (0..n)
            .map(|i| {
                let pcm: Vec<f32> = (0..960)
                    .map(|k| {
                        let t = (i * 960 + k) as f32 / 48_000.0;
                        0.3 * (2.0 * std::f32::consts::PI * 300.0 * t).sin()
                    })
                    .collect();
                encoder.encode_vec_float(&pcm, 400).expect("encodes")
            })
            .collect()
    }

    fn pipeline() -> TrackPipeline {
        TrackPipeline::new(
            Speaker {
                participant: 1,
                user: 1,
            },
            VadConfig::default(),
        )
        .expect("pipeline")
    }

    #[test]
    fn swapped_neighbours_are_decoded_in_order_with_nothing_concealed() {
        let frames = frames(50);
        let mut order: Vec<usize> = (0..50).collect();
        for pair in order.chunks_mut(4) {
            pair.swap(0, 1);
        }
        let mut track = pipeline();
        for i in order {
            track.handle_packet(i as u16, (i * 960) as u32, &frames[i]);
        }
        assert_eq!(track.concealed(), 0, "a swap is not a loss");
    }

    #[test]
    fn a_real_loss_is_still_concealed() {
        let frames = frames(50);
        let mut track = pipeline();
        for i in (0..50).filter(|i| *i != 20) {
            track.handle_packet(i as u16, (i * 960) as u32, &frames[i]);
        }
        assert_eq!(track.concealed(), 1);
    }
}
