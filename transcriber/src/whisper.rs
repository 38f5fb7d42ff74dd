//! One whisper.cpp model and how an utterance is decoded with it: the encoder window, the
//! language (fixed, or detected with its probability), the hallucination guard
//! ([`crate::guard`]) and, for partial captions, an abort when a final needs the worker.

use std::ffi::c_void;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::guard::{self, Evidence, Verdict};
use crate::language::{Detected, LanguageRequest};
use crate::Error;

/// Decoding choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperConfig {
    /// An ISO 639-1 code for every speaker, or `None` to detect per speaker.
    pub language: Option<String>,
    /// The languages a detection may choose (empty: any).
    pub languages: Vec<String>,
    /// Threads per worker.
    pub threads: usize,
}

/// A loaded model, shared by the workers.
pub struct Whisper {
    ctx: WhisperContext,
    config: WhisperConfig,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What whisper heard in one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// The words; empty when there were none or the guard rejected them.
    pub text: String,
    /// The language it was decoded in (`None`: whisper chose inside the decode).
    pub language: Option<String>,
    /// The detection, when one was asked for.
    pub detected: Option<Detected>,
    pub verdict: Verdict,
    pub no_speech: f32,
    pub avg_logprob: f32,
}

/// The encoder window for `samples` of 16 kHz audio: whisper's encoder sees 50 positions a
/// second and by default always a 30 s window (1500). Short utterances get a window just
/// covering them plus 1.3 s, never under 384 (7.68 s), where accuracy starts to suffer: at
/// 384 a 5 s utterance costs ~0.7 s on 2 cores instead of ~2.5 s.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let needed = samples.div_ceil(320) + 64;
    let rounded = needed.div_ceil(64) * 64;
    rounded.clamp(384, 1500) as i32
}

/// A detection at least this sure decides the utterance's language even when the speaker's
/// earlier utterances lean to another (see [`LanguageRequest::Detect`]).
const DETECTION_DECIDES: f32 = 0.8;

/// whisper.cpp calls this between graph nodes and decode steps; `true` ends the decode.
/// Hand-written because whisper-rs 0.16's `set_abort_callback_safe` casts its boxed closure
/// to the wrong type in its trampoline and leaks the box on every call.
#[allow(unsafe_code)]
unsafe extern "C" fn abort_when_waiting(data: *mut c_void) -> bool {
    // SAFETY: `data` is the `&AtomicUsize` that `transcribe` was given; it outlives the
    // `state.full` call that invokes this callback, and only atomic loads happen through it.
    let waiting = unsafe { &*(data as *const AtomicUsize) };
    waiting.load(Ordering::Relaxed) > 0
}

fn install_logging() {
    // whisper.cpp logs every model load and decode to stderr; route it through `tracing`.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

/// whisper.cpp refuses under 1 s of audio: short utterances are padded with silence.
fn padded(samples: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    let min = crate::WHISPER_RATE as usize * 11 / 10;
    if samples.len() < min {
        let mut p = samples.to_vec();
        p.resize(min, 0.0);
        std::borrow::Cow::Owned(p)
    } else {
        std::borrow::Cow::Borrowed(samples)
    }
}

impl Whisper {
    /// Loads a ggml model file.
    ///
    /// # Errors
    /// [`Error::Model`] if the file is missing or not a whisper.cpp model.
    pub fn load(path: &Path, config: WhisperConfig) -> Result<Self, Error> {
        install_logging();
        if !path.is_file() {
            return Err(Error::Model {
                path: path.display().to_string(),
                reason: "no such file".to_owned(),
            });
        }
        let params = WhisperContextParameters {
            use_gpu: cfg!(feature = "cuda"),
            // On the GPU flash attention cut a 6 s utterance from 89 to 63 ms on an H100 with
            // the same words (bench/reports/whisper-cuda.md); on this project's CPUs it was
            // slower, so it stays off there.
            flash_attn: cfg!(feature = "cuda"),
            ..Default::default()
        };
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| Error::Model {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { ctx, config })
    }

    /// Logs whisper.cpp's own timings (encode, decode, ...) at info level.
    pub fn log_timings(&self) {
        self.ctx.print_timings();
    }

    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// Whether the model can transcribe other languages than English (`.en` models can't).
    pub fn is_multilingual(&self) -> bool {
        self.ctx.is_multilingual()
    }

    /// A fresh decoding state (one per worker thread).
    ///
    /// # Errors
    /// [`Error::Whisper`] if whisper.cpp can't allocate it.
    pub fn state(&self) -> Result<whisper_rs::WhisperState, Error> {
        Ok(self.ctx.create_state()?)
    }

    /// One decode of a second of silence: whisper.cpp allocates its compute buffers and sets
    /// the state's encoder window on the first decode, which otherwise lands on the first
    /// real utterance (and a language detection before any decode runs at the full 30 s
    /// window, ~2.5 s on 2 cores).
    ///
    /// # Errors
    /// [`Error::Whisper`] when whisper.cpp fails.
    pub fn warm_up(&self, state: &mut whisper_rs::WhisperState) -> Result<(), Error> {
        let silence = vec![0.0; crate::WHISPER_RATE as usize];
        self.transcribe(
            state,
            &silence,
            &LanguageRequest::Fixed("en".to_owned()),
            None,
        )
        .map(|_| ())
    }

    /// Detects the language of the audio already in `state` (after `pcm_to_mel`): the most
    /// likely of `among` (its probability renormalised over them), or of all languages.
    fn detect(
        &self,
        state: &mut whisper_rs::WhisperState,
        among: &[String],
    ) -> Result<Option<Detected>, Error> {
        let (id, probs) = state.lang_detect(0, self.config.threads.max(1))?;
        let probability_of = |id: i32| {
            usize::try_from(id)
                .ok()
                .and_then(|i| probs.get(i))
                .copied()
                .unwrap_or(0.0)
        };
        if among.is_empty() {
            return Ok(whisper_rs::get_lang_str(id).map(|language| Detected {
                language: language.to_owned(),
                probability: probability_of(id),
            }));
        }
        let scored: Vec<(&String, f32)> = among
            .iter()
            .filter_map(|l| whisper_rs::get_lang_id(l).map(|id| (l, probability_of(id))))
            .collect();
        let total: f32 = scored.iter().map(|(_, p)| p).sum();
        Ok(scored
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(language, p)| Detected {
                language: language.clone(),
                probability: if total > 0.0 { p / total } else { 0.0 },
            }))
    }

    /// Transcribes 16 kHz mono audio. `abort`: a counter that, once above zero, ends the
    /// decode early with an error (partial captions give way to finals).
    ///
    /// # Errors
    /// [`Error::Whisper`] when whisper.cpp fails or was aborted.
    pub fn transcribe(
        &self,
        state: &mut whisper_rs::WhisperState,
        samples: &[f32],
        language: &LanguageRequest,
        abort: Option<&AtomicUsize>,
    ) -> Result<Heard, Error> {
        let input = padded(samples);
        let threads = self.config.threads.max(1);
        let multilingual = self.is_multilingual();
        let (language, detected) = match language {
            _ if !multilingual => (Some("en".to_owned()), None),
            LanguageRequest::Fixed(l) => (Some(l.clone()), None),
            LanguageRequest::Auto => (None, None),
            LanguageRequest::Detect { fallback, among } => {
                state.pcm_to_mel(&input, threads)?;
                let detected = self.detect(state, among)?;
                let chosen = match (&detected, fallback) {
                    (Some(d), Some(f)) if d.probability < DETECTION_DECIDES => Some(f.clone()),
                    (Some(d), _) => Some(d.language.clone()),
                    (None, f) => f.clone(),
                };
                (chosen, detected)
            }
        };
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some(language.as_deref().unwrap_or("auto")));
        params.set_n_threads(threads as i32);
        params.set_no_context(true);
        params.set_single_segment(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_no_timestamps(true);
        params.set_suppress_blank(true);
        // Non-speech tokens ([music], *laughs*, ♪) are never a caption.
        params.set_suppress_nst(true);
        // Fallback re-decodes at higher temperature multiply the cost; greedy once is the
        // latency budget, and the guard below drops what a fallback would have tried to fix.
        params.set_temperature_inc(0.0);
        params.set_audio_ctx(audio_ctx_for(samples.len()));
        if let Some(waiting) = abort {
            #[allow(unsafe_code)]
            // SAFETY: the callback only reads `waiting` atomically, and `waiting` outlives
            // `state.full` below, the only call that can invoke it; `params` is consumed there.
            unsafe {
                params.set_abort_callback(Some(abort_when_waiting));
                params.set_abort_callback_user_data(
                    std::ptr::from_ref(waiting).cast_mut().cast::<c_void>(),
                );
            }
        }
        state.full(params, &input)?;
        let eot = self.ctx.token_eot();
        let mut text = String::new();
        let (mut no_speech, mut logprob_sum, mut tokens) = (0.0f32, 0.0f32, 0usize);
        for segment in state.as_iter() {
            if let Ok(s) = segment.to_str_lossy() {
                text.push_str(&s);
            }
            no_speech = no_speech.max(segment.no_speech_probability());
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    let data = token.token_data();
                    // Text tokens only: timestamps and specials sit above end-of-text.
                    if data.id < eot {
                        logprob_sum += data.plog;
                        tokens += 1;
                    }
                }
            }
        }
        let avg_logprob = if tokens > 0 {
            logprob_sum / tokens as f32
        } else {
            0.0
        };
        let text = text.trim().to_owned();
        let verdict = guard::judge(&Evidence {
            text: &text,
            no_speech,
            avg_logprob,
        });
        if let Verdict::Hallucination(rule) = verdict {
            metrics::counter!("transcriber_hallucinations_dropped_total", "rule" => rule)
                .increment(1);
            tracing::debug!(rule, text, no_speech, avg_logprob, "hallucination dropped");
        }
        let language = language.or_else(|| {
            whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(str::to_owned)
        });
        Ok(Heard {
            text: if verdict == Verdict::Speech {
                text
            } else {
                String::new()
            },
            language,
            detected,
            verdict,
            no_speech,
            avg_logprob,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_utterances_get_a_small_encoder_window() {
        assert_eq!(audio_ctx_for(16_000), 384);
        assert_eq!(audio_ctx_for(16_000 * 7), 448);
        assert_eq!(audio_ctx_for(16_000 * 30), 1500);
    }
}
