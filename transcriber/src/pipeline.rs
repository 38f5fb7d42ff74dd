//! The front half of the pipeline for one participant track: Opus packets in, utterances out.
//! Cheap (a few percent of a core per speaker), so the caller may run it anywhere; only
//! whisper goes to the worker threads.

use crate::decode::TrackDecoder;
use crate::resample::Resampler;
use crate::segment::Speaker;
use crate::vad::{InProgress, Utterance, Vad, VadConfig};
use crate::Error;

/// Decoder, resampler and VAD of one track.
#[derive(Debug)]
pub struct TrackPipeline {
    pub speaker: Speaker,
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
        let decoded = self.decoder.handle_packet(sequence, rtp_timestamp, payload);
        self.concealed += u64::from(decoded.concealed);
        let mut out = Vec::new();
        if decoded.skipped > 0 {
            out.extend(self.vad.skip(decoded.skipped / 3));
        }
        self.scratch.clear();
        if let Err(err) = self.resampler.process(&decoded.pcm, &mut self.scratch) {
            tracing::warn!(error = %err, "resampler failed; audio skipped");
            return out;
        }
        out.extend(self.vad.push(&self.scratch));
        out
    }

    /// The track ended: whatever utterance is in progress.
    pub fn finish(&mut self) -> Option<Utterance> {
        self.scratch.clear();
        if self.resampler.finish(&mut self.scratch).is_ok() {
            let mut out = self.vad.push(&self.scratch);
            if let Some(u) = self.vad.flush() {
                out.push(u);
            }
            // `push` can complete at most one utterance here before the flush.
            let mut it = out.into_iter();
            let first = it.next();
            return match (first, it.next()) {
                (Some(a), Some(b)) => {
                    let mut samples = a.samples;
                    let gap = (b.start - a.start) as usize - samples.len();
                    samples.extend(std::iter::repeat_n(0.0, gap));
                    samples.extend(b.samples);
                    Some(Utterance {
                        start: a.start,
                        samples,
                    })
                }
                (a, _) => a,
            };
        }
        self.vad.flush()
    }

    /// Ends the utterance in progress (the track went quiet without packets: muted, left,
    /// or a sender that stops instead of using DTX). The next packet continues the clock.
    pub fn flush_utterance(&mut self) -> Option<Utterance> {
        self.vad.flush()
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
