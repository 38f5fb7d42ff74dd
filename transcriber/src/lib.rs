//! Audio in, segments out: the speech-to-text side of WebCall, with no knowledge of rooms,
//! sockets or databases.
//!
//! Per participant track the pipeline is
//! [`decode`] (Opus -> 48 kHz PCM, loss concealment, DTX silence) ->
//! [`resample`] (48 kHz -> 16 kHz) -> [`vad`] (utterances cut at pauses and at a maximum
//! length; the utterance so far for partial captions) -> [`worker`] (a bounded queue in
//! front of whisper on dedicated OS threads, finals before partials) -> [`whisper`] (one
//! decode: encoder window, [`language`] per speaker, the hallucination [`guard`]) ->
//! [`segment`]s; [`partial`] keeps partial captions from flickering. [`pipeline`] ties the front half together for one track, and [`file`] runs
//! the same pipeline on a WAV file (`webcall transcribe`). [`ggml`] converts a faster-whisper
//! (CTranslate2) model folder into a whisper.cpp model file; [`catalog`] lists the official
//! whisper.cpp models with their sizes and SHA-256 (`webcall model`); [`wer`] scores transcripts.

pub mod catalog;
pub mod decode;
#[cfg(feature = "whisper")]
pub mod file;
pub mod ggml;
pub mod guard;
pub mod language;
pub mod partial;
pub mod pipeline;
pub mod reorder;
pub mod resample;
pub mod segment;
pub mod vad;
pub mod wer;
#[cfg(feature = "whisper")]
pub mod whisper;
#[cfg(feature = "whisper")]
pub mod worker;

pub use segment::{Segment, Speaker};

/// 16 kHz: what whisper wants.
pub const WHISPER_RATE: u32 = 16_000;
/// 48 kHz: what Opus in WebRTC carries.
pub const OPUS_RATE: u32 = 48_000;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    #[error("resampler: {0}")]
    Resample(String),
    #[cfg(feature = "whisper")]
    #[error("whisper: {0}")]
    Whisper(#[from] whisper_rs::WhisperError),
    #[error("the model file {path} could not be loaded: {reason}")]
    Model { path: String, reason: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad input: {0}")]
    Format(String),
}
