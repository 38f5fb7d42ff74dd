//! Voice activity detection that cuts a 16 kHz stream into utterances.
//!
//! The audio is one participant's own microphone after the browser's noise suppression, so
//! the speaker is far above the floor. The numbers trade caption latency against cutting
//! words:
//! - 20 ms frames (one Opus frame).
//! - With the energy detector, a frame is voiced above `max(-45 dBFS, floor + 9 dB)`; the floor follows the quietest
//!   recent frames and rises slowly (0.05 dB a frame, 2.5 dB/s) so a noisy room doesn't count
//!   as speech forever.
//! - An utterance ends after 400 ms unvoiced (`hangover`): pauses between words are mostly
//!   under 250 ms, between clauses and sentences 300-700 ms. The 400 ms is pure caption
//!   latency, so it is kept short.
//! - 200 ms of pre-roll before the first voiced frame keeps soft onsets ("f", "s", "h").
//! - Utterances under 240 ms of voiced audio are dropped: clicks and coughs that whisper
//!   would turn into hallucinated words.
//! - At most 7 s: whisper then runs with a shrunken encoder window (`audio_ctx` 384, 7.68 s)
//!   at ~0.7 s per utterance on 2 cores, instead of ~2.5 s for the full 30 s window. A long
//!   monologue is cut at the quietest frame of its last second.
//!
//! What counts as a voiced frame is the [`Detector`]'s call: the energy rule above, or
//! earshot, a small learned VAD in pure Rust (a 16 ms-frame neural network)
//! that ignores keyboard clicks the energy rule lets through. Which one is the
//! default, and why, is measured in docs/transcription.md ("Voice activity detection").
//! Everything after the frame decision (pre-roll, hangover, cuts) is the same for both.

use std::collections::VecDeque;

/// Samples per 20 ms frame at 16 kHz.
pub const FRAME: usize = 320;

/// Which detector decides that a frame is voiced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Detector {
    /// Frame energy over an adaptive noise floor.
    Energy,
    /// earshot's neural network; a frame is voiced when its score reaches `threshold`
    /// (0..1) and the frame is above `min_dbfs` (digital silence is never speech).
    Earshot { threshold: f32 },
}

impl Detector {
    /// The detector for a name (`energy`, `earshot`), as `WHISPER_VAD` spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "energy" => Some(Self::Energy),
            "earshot" => Some(Self::Earshot { threshold: 0.5 }),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Energy => "energy",
            Self::Earshot { .. } => "earshot",
        }
    }
}

/// Tunables (see the module docs for why the defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    pub detector: Detector,
    pub min_dbfs: f32,
    pub above_floor_db: f32,
    pub hangover_frames: usize,
    pub preroll_frames: usize,
    pub min_voiced_frames: usize,
    pub max_frames: usize,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            detector: Detector::Energy,
            min_dbfs: -45.0,
            above_floor_db: 9.0,
            hangover_frames: 20,
            preroll_frames: 10,
            min_voiced_frames: 12,
            max_frames: 350,
        }
    }
}

/// A piece of speech, on the stream's 16 kHz clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// The first sample's index since the stream started.
    pub start: u64,
    pub samples: Vec<f32>,
}

impl Utterance {
    /// Milliseconds on the stream's clock of the sample at `index`.
    pub fn ms_of(index: u64) -> u64 {
        index * 1000 / u64::from(crate::WHISPER_RATE)
    }

    pub fn start_ms(&self) -> u64 {
        Self::ms_of(self.start)
    }

    pub fn end_ms(&self) -> u64 {
        (self.start + self.samples.len() as u64) * 1000 / u64::from(crate::WHISPER_RATE)
    }
}

/// earshot's state for one stream: it takes 256-sample frames, ours are 320.
struct Learned {
    detector: Box<earshot::Detector>,
    pending: Vec<i16>,
}

impl std::fmt::Debug for Learned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learned")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Learned {
    const FRAME: usize = 256;

    fn new() -> Self {
        Self {
            detector: earshot::Detector::default_boxed(),
            pending: Vec::with_capacity(2 * Self::FRAME),
        }
    }

    /// The highest score of the network's frames that completed within `frame`.
    fn score(&mut self, frame: &[f32]) -> f32 {
        self.pending.extend(
            frame
                .iter()
                .map(|s| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16),
        );
        let mut best = 0.0f32;
        let mut used = 0;
        while self.pending.len() - used >= Self::FRAME {
            let score = self
                .detector
                .predict_i16(&self.pending[used..used + Self::FRAME]);
            best = best.max(score);
            used += Self::FRAME;
        }
        self.pending.drain(..used);
        best
    }
}

/// The utterance being spoken, for partial captions.
#[derive(Debug, Clone, Copy)]
pub struct InProgress<'a> {
    /// Its first sample's index since the stream started.
    pub start: u64,
    pub samples: &'a [f32],
    /// 20 ms frames judged voiced so far.
    pub voiced_frames: usize,
}

/// The detector for one stream.
#[derive(Debug)]
pub struct Vad {
    config: VadConfig,
    learned: Option<Learned>,
    /// Index of the next sample to arrive.
    clock: u64,
    partial: Vec<f32>,
    floor_db: f32,
    /// Recent unvoiced frames, for the pre-roll.
    preroll: VecDeque<Vec<f32>>,
    current: Option<Current>,
}

#[derive(Debug)]
struct Current {
    start: u64,
    samples: Vec<f32>,
    frame_db: Vec<f32>,
    voiced: usize,
    silent_run: usize,
}

fn dbfs(frame: &[f32]) -> f32 {
    let mean = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    (10.0 * mean.max(1e-10).log10()).max(-100.0)
}

impl Vad {
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            learned: matches!(config.detector, Detector::Earshot { .. }).then(Learned::new),
            clock: 0,
            partial: Vec::with_capacity(FRAME),
            floor_db: -60.0,
            preroll: VecDeque::new(),
            current: None,
        }
    }

    /// Feeds audio; returns the utterances it completed.
    pub fn push(&mut self, mut samples: &[f32]) -> Vec<Utterance> {
        let mut done = Vec::new();
        while !samples.is_empty() {
            let take = (FRAME - self.partial.len()).min(samples.len());
            self.partial.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.partial.len() == FRAME {
                let frame = std::mem::replace(&mut self.partial, Vec::with_capacity(FRAME));
                if let Some(u) = self.handle_frame(frame) {
                    done.push(u);
                }
            }
        }
        done
    }

    /// The utterance in progress, if someone is speaking.
    pub fn in_progress(&self) -> Option<InProgress<'_>> {
        self.current.as_ref().map(|cur| InProgress {
            start: cur.start,
            samples: &cur.samples,
            voiced_frames: cur.voiced,
        })
    }

    /// `samples` of silence that are not worth materialising (a long DTX gap): ends the
    /// current utterance and moves the clock.
    pub fn skip(&mut self, samples: u64) -> Option<Utterance> {
        let done = self.finish_current();
        self.clock += (self.partial.len() as u64) + samples;
        self.partial.clear();
        self.preroll.clear();
        done
    }

    /// End of stream: the utterance in progress, if it is long enough.
    pub fn flush(&mut self) -> Option<Utterance> {
        let partial = std::mem::take(&mut self.partial);
        if let Some(cur) = self.current.as_mut() {
            cur.samples.extend_from_slice(&partial);
        }
        self.clock += partial.len() as u64;
        self.finish_current()
    }

    fn finish_current(&mut self) -> Option<Utterance> {
        let cur = self.current.take()?;
        let keep_silence = (self.config.hangover_frames / 2).min(cur.silent_run);
        let trim = (cur.silent_run - keep_silence) * FRAME;
        let mut samples = cur.samples;
        samples.truncate(samples.len().saturating_sub(trim));
        (cur.voiced >= self.config.min_voiced_frames).then_some(Utterance {
            start: cur.start,
            samples,
        })
    }

    fn handle_frame(&mut self, frame: Vec<f32>) -> Option<Utterance> {
        let db = dbfs(&frame);
        let voiced = match (self.config.detector, self.learned.as_mut()) {
            (Detector::Earshot { threshold }, Some(learned)) => {
                learned.score(&frame) >= threshold && db > self.config.min_dbfs
            }
            _ => {
                db > self
                    .config
                    .min_dbfs
                    .max(self.floor_db + self.config.above_floor_db)
            }
        };
        if db < self.floor_db {
            self.floor_db = db.max(-90.0);
        } else if !voiced {
            self.floor_db += 0.05;
        }
        let frame_start = self.clock;
        self.clock += FRAME as u64;
        let mut done = None;
        match self.current.as_mut() {
            None if voiced => {
                let pre: Vec<Vec<f32>> = self.preroll.drain(..).collect();
                let start = frame_start - (pre.len() * FRAME) as u64;
                let mut samples: Vec<f32> = pre.concat();
                let mut frame_db = vec![-100.0; pre.len()];
                samples.extend_from_slice(&frame);
                frame_db.push(db);
                self.current = Some(Current {
                    start,
                    samples,
                    frame_db,
                    voiced: 1,
                    silent_run: 0,
                });
            }
            None => {
                self.preroll.push_back(frame);
                if self.preroll.len() > self.config.preroll_frames {
                    self.preroll.pop_front();
                }
            }
            Some(cur) => {
                cur.samples.extend_from_slice(&frame);
                cur.frame_db.push(db);
                if voiced {
                    cur.voiced += 1;
                    cur.silent_run = 0;
                } else {
                    cur.silent_run += 1;
                }
                if cur.silent_run >= self.config.hangover_frames {
                    done = self.finish_current();
                } else if cur.frame_db.len() >= self.config.max_frames {
                    done = self.cut_long();
                }
            }
        }
        done
    }

    /// Cuts a too-long utterance at the quietest frame of its last second; the rest starts
    /// the next utterance.
    fn cut_long(&mut self) -> Option<Utterance> {
        let cur = self.current.as_mut()?;
        let n = cur.frame_db.len();
        let from = n.saturating_sub(50).max(1);
        let cut = (from..n)
            .min_by(|a, b| cur.frame_db[*a].total_cmp(&cur.frame_db[*b]))
            .unwrap_or(n);
        let rest_samples = cur.samples.split_off(cut * FRAME);
        let rest_db = cur.frame_db.split_off(cut);
        let head = Utterance {
            start: cur.start,
            samples: std::mem::take(&mut cur.samples),
        };
        let rest_voiced = rest_db
            .iter()
            .filter(|d| **d > self.config.min_dbfs)
            .count();
        *cur = Current {
            start: head.start + head.samples.len() as u64,
            samples: rest_samples,
            frame_db: rest_db,
            voiced: rest_voiced,
            silent_run: 0,
        };
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize) -> Vec<f32> {
        (0..ms * 16)
            .map(|i| (i as f32 * 300.0 * std::f32::consts::TAU / 16_000.0).sin() * 0.2)
            .collect()
    }

    fn silence(ms: usize) -> Vec<f32> {
        vec![0.0; ms * 16]
    }

    #[test]
    fn speech_between_pauses_becomes_one_utterance_with_preroll() {
        let mut vad = Vad::new(VadConfig::default());
        let mut out = vad.push(&silence(1_000));
        out.extend(vad.push(&tone(1_500)));
        // A 200 ms pause inside the utterance does not cut it.
        out.extend(vad.push(&silence(200)));
        out.extend(vad.push(&tone(500)));
        assert!(out.is_empty());
        out.extend(vad.push(&silence(1_000)));
        assert_eq!(out.len(), 1);
        let u = &out[0];
        assert_eq!(u.start_ms(), 800, "200 ms pre-roll");
        // 200 pre-roll + 2200 speech + 200 of the hangover kept.
        assert_eq!(u.end_ms(), 3_400);
    }

    #[test]
    fn a_short_click_is_not_an_utterance() {
        let mut vad = Vad::new(VadConfig::default());
        let mut out = vad.push(&tone(100));
        out.extend(vad.push(&silence(1_000)));
        assert!(out.is_empty());
        assert!(vad.flush().is_none());
    }

    #[test]
    fn a_monologue_is_cut_at_the_maximum_length() {
        let mut vad = Vad::new(VadConfig::default());
        let mut speech = Vec::new();
        for _ in 0..8 {
            speech.extend(tone(1_900));
            speech.extend(tone(100).iter().map(|s| s * 0.1));
        }
        let mut out = vad.push(&speech);
        assert_eq!(out.len(), 2, "16 s cut into 7 s pieces");
        out.extend(vad.flush());
        assert!(out.iter().all(|u| u.samples.len() <= 350 * FRAME));
        for pair in out.windows(2) {
            assert_eq!(pair[0].start + pair[0].samples.len() as u64, pair[1].start);
        }
        let total: usize = out.iter().map(|u| u.samples.len()).sum();
        assert_eq!(total, speech.len());
    }

    #[test]
    fn a_long_gap_ends_the_utterance_and_moves_the_clock() {
        let mut vad = Vad::new(VadConfig::default());
        vad.push(&tone(1_000));
        let u = vad.skip(16_000 * 60).expect("utterance ended by the gap");
        assert_eq!(u.start_ms(), 0);
        let mut out = vad.push(&tone(1_000));
        out.extend(vad.flush());
        assert_eq!(out[0].start_ms(), 61_000);
    }
}
