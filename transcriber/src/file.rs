//! The pipeline on a WAV file (`webcall transcribe`): resample, VAD, whisper. The same
//! stages as a live track minus Opus, so it is the accuracy baseline for the live path.

use std::path::Path;

use crate::language::SpeakerLanguage;
use crate::resample::Resampler;
use crate::segment::{Segment, Speaker};
use crate::vad::{Utterance, Vad, VadConfig};
use crate::whisper::Whisper;
use crate::Error;

/// Reads a WAV file as mono f32 and its sample rate.
///
/// # Errors
/// [`Error::Format`] for a file that isn't a PCM or float WAV.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32), Error> {
    let mut reader = hound::WavReader::open(path).map_err(|e| Error::Format(e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Format(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| Error::Format(e.to_string()))?
        }
    };
    let mono = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok((mono, spec.sample_rate))
}

/// Cuts audio at `rate` Hz into 16 kHz utterances.
///
/// # Errors
/// [`Error::Resample`] for a rate the resampler can't take.
pub fn utterances(samples: &[f32], rate: u32, vad: VadConfig) -> Result<Vec<Utterance>, Error> {
    let pcm16 = if rate == crate::WHISPER_RATE {
        samples.to_vec()
    } else {
        let mut r = Resampler::new(rate)?;
        let mut out = Vec::with_capacity(samples.len() / 2);
        r.process(samples, &mut out)?;
        r.finish(&mut out)?;
        out
    };
    let mut vad = Vad::new(vad);
    let mut out = vad.push(&pcm16);
    out.extend(vad.flush());
    Ok(out)
}

/// Transcribes a WAV file into segments (speaker 0). The file is one speaker: with no
/// language configured, its language is detected over its first utterances and then kept,
/// as for a speaker in a call ([`SpeakerLanguage`]).
///
/// # Errors
/// [`Error`] for an unreadable file or a whisper failure.
pub fn transcribe_file(
    path: &Path,
    whisper: &Whisper,
    vad: VadConfig,
) -> Result<Vec<Segment>, Error> {
    let (samples, rate) = read_wav(path)?;
    let config = whisper.config();
    let mut language = SpeakerLanguage::for_setting(config.language.as_deref(), &config.languages);
    let mut state = whisper.state()?;
    let speaker = Speaker {
        participant: 0,
        user: 0,
    };
    let mut segments = Vec::new();
    let started = std::time::Instant::now();
    let utterances = utterances(&samples, rate, vad)?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "resampled and cut"
    );
    for u in utterances {
        let started = std::time::Instant::now();
        let heard = whisper.transcribe(&mut state, &u.samples, &language.for_final(), None)?;
        if let Some(detected) = &heard.detected {
            if let Some(locked) = language.observe(detected) {
                tracing::debug!(language = locked, "language locked");
            }
        }
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            audio_seconds = u.samples.len() as f64 / f64::from(crate::WHISPER_RATE),
            language = heard.language.as_deref().unwrap_or("?"),
            detected = ?heard.detected,
            no_speech = heard.no_speech,
            avg_logprob = heard.avg_logprob,
            verdict = ?heard.verdict,
            "whisper"
        );
        let text = heard.text;
        if !text.is_empty() {
            segments.push(Segment {
                speaker,
                start_ms: u.start_ms(),
                end_ms: u.end_ms(),
                text,
            });
        }
    }
    whisper.log_timings();
    Ok(segments)
}
