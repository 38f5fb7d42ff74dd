//! Which language to transcribe a speaker in.
//!
//! Why per speaker and not per utterance: whisper detects the language from the first seconds
//! of what it is given, and a 1–3 s utterance is too little evidence. Russian read by
//! espeak-ng through the base model came out as French, Turkish and Polish words within one
//! 9 s file when each piece was detected on its own. A person keeps speaking one language, so
//! the evidence of their utterances adds up: [`SpeakerLanguage`] sums whisper's language
//! probabilities over a speaker's first utterances, transcribes each in the language that
//! leads so far, and locks it once the lead is clear. After that whisper is told the
//! language (cheaper too: no detection pass), and only every [`RECHECK_EVERY`]th utterance
//! is detected again; two confident detections of another language in a row switch it.
//!
//! A language given for the whole room (`transcription_start { language }`) or the server
//! (`WHISPER_LANGUAGE`) is [`SpeakerLanguage::fixed`] and never detected.

/// Whether `code` is a language code whisper knows (`en`, `ru`, `haw`, …; its own list of
/// 99). Only codes: whisper also accepts full names ("english"), which the protocol doesn't.
#[cfg(feature = "whisper")]
pub fn is_known(code: &str) -> bool {
    (2..=3).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_lowercase())
        && whisper_rs::get_lang_id(code).is_some_and(|id| id >= 0)
}

/// What the worker is asked to do about the language of one utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LanguageRequest {
    /// Transcribe in this language (an ISO 639-1 code whisper knows).
    Fixed(String),
    /// Detect the language first, then transcribe in `fallback` if given (the speaker's
    /// leading language so far) or else in what this utterance sounds like. `among`: the
    /// languages it may be (e.g. `ru`, `en` for a team that speaks those); empty: any.
    Detect {
        fallback: Option<String>,
        among: Vec<String>,
    },
    /// Let whisper pick inside the decode, with no probability reported (partial captions of
    /// a speaker not heard before: cheap, and replaced by the final anyway).
    Auto,
}

/// One detection: whisper's most likely language for an utterance and its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub language: String,
    pub probability: f32,
}

/// Summed probability at which a speaker's leading language is locked (e.g. two utterances
/// at 0.8), provided it leads the runner-up by [`LOCK_MARGIN`].
const LOCK_MASS: f32 = 1.6;
const LOCK_MARGIN: f32 = 1.0;
/// After this many detections the leader is locked whatever its mass.
const MAX_DETECTIONS: usize = 5;
/// A locked speaker's every Nth utterance is detected again.
pub const RECHECK_EVERY: u32 = 8;
/// A re-check must be at least this sure of another language to count against the lock.
const SWITCH_PROBABILITY: f32 = 0.9;
/// Contrary re-checks in a row that switch a locked language.
const SWITCH_AFTER: u32 = 2;

/// The language state of one speaker.
#[derive(Debug, Clone, Default)]
pub struct SpeakerLanguage {
    fixed: bool,
    /// Languages a detection may choose; empty: any.
    among: Vec<String>,
    locked: Option<String>,
    /// Summed probability per language over the detections so far (unlocked only).
    mass: Vec<(String, f32)>,
    detections: usize,
    since_check: u32,
    contrary: u32,
}

impl SpeakerLanguage {
    /// A language that is never detected (room or server setting).
    pub fn fixed(language: String) -> Self {
        Self {
            fixed: true,
            locked: Some(language),
            ..Self::default()
        }
    }

    /// Detected per speaker, among `among` (empty: any language whisper knows).
    pub fn detect(among: Vec<String>) -> Self {
        Self {
            among,
            ..Self::default()
        }
    }

    /// The policy for a server or room setting: one language fixed, else detected among
    /// `among`.
    pub fn for_setting(fixed: Option<&str>, among: &[String]) -> Self {
        match fixed {
            Some(language) => Self::fixed(language.to_owned()),
            None => Self::detect(among.to_vec()),
        }
    }

    /// The locked (or fixed) language, if any.
    pub fn locked(&self) -> Option<&str> {
        self.locked.as_deref()
    }

    fn leader(&self) -> Option<&(String, f32)> {
        self.mass.iter().max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// What to ask for the speaker's next final utterance; counts towards the re-check.
    pub fn for_final(&mut self) -> LanguageRequest {
        match &self.locked {
            Some(language) if self.fixed => LanguageRequest::Fixed(language.clone()),
            Some(language) => {
                self.since_check += 1;
                if self.since_check >= RECHECK_EVERY {
                    self.since_check = 0;
                    LanguageRequest::Detect {
                        fallback: Some(language.clone()),
                        among: self.among.clone(),
                    }
                } else {
                    LanguageRequest::Fixed(language.clone())
                }
            }
            None => LanguageRequest::Detect {
                fallback: self.leader().map(|(l, _)| l.clone()),
                among: self.among.clone(),
            },
        }
    }

    /// What to ask for a partial caption: never a detection (partials are best-effort and
    /// must stay cheap), the leading language so far or whisper's own guess.
    pub fn for_partial(&self) -> LanguageRequest {
        match self.locked.as_ref().or(self.leader().map(|(l, _)| l)) {
            Some(language) => LanguageRequest::Fixed(language.clone()),
            None => LanguageRequest::Auto,
        }
    }

    /// Takes in a detection from one of the speaker's utterances. Returns the newly locked
    /// language when this detection locked (or switched) it.
    pub fn observe(&mut self, detected: &Detected) -> Option<String> {
        if self.fixed {
            return None;
        }
        if let Some(locked) = &self.locked {
            if *locked != detected.language && detected.probability >= SWITCH_PROBABILITY {
                self.contrary += 1;
                if self.contrary >= SWITCH_AFTER {
                    self.locked = Some(detected.language.clone());
                    self.contrary = 0;
                    return self.locked.clone();
                }
            } else {
                self.contrary = 0;
            }
            return None;
        }
        match self.mass.iter_mut().find(|(l, _)| *l == detected.language) {
            Some((_, mass)) => *mass += detected.probability,
            None => self
                .mass
                .push((detected.language.clone(), detected.probability)),
        }
        self.detections += 1;
        let mut sorted: Vec<f32> = self.mass.iter().map(|(_, m)| *m).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let (first, second) = (sorted[0], sorted.get(1).copied().unwrap_or(0.0));
        let clear = first >= LOCK_MASS && first - second >= LOCK_MARGIN;
        if clear || self.detections >= MAX_DETECTIONS {
            self.locked = self.leader().map(|(l, _)| l.clone());
            self.mass.clear();
            return self.locked.clone();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(language: &str, probability: f32) -> Detected {
        Detected {
            language: language.to_owned(),
            probability,
        }
    }

    #[test]
    fn two_confident_utterances_lock_the_language_and_stop_detection() {
        let mut s = SpeakerLanguage::detect(vec![]);
        assert_eq!(
            s.for_final(),
            LanguageRequest::Detect {
                fallback: None,
                among: vec![]
            }
        );
        assert_eq!(s.observe(&seen("ru", 0.85)), None);
        assert_eq!(
            s.for_final(),
            LanguageRequest::Detect {
                fallback: Some("ru".into()),
                among: vec![]
            }
        );
        assert_eq!(s.observe(&seen("ru", 0.8)), Some("ru".into()));
        assert_eq!(s.for_final(), LanguageRequest::Fixed("ru".into()));
    }

    #[test]
    fn a_short_utterance_misheard_as_another_language_does_not_win() {
        let mut s = SpeakerLanguage::detect(vec![]);
        s.observe(&seen("ru", 0.7));
        s.observe(&seen("fr", 0.4));
        s.observe(&seen("ru", 0.6));
        assert_eq!(s.observe(&seen("pl", 0.3)), None, "ru 1.3 is not clear yet");
        assert_eq!(s.observe(&seen("ru", 0.5)), Some("ru".into()));
    }

    #[test]
    fn a_locked_language_switches_only_on_two_confident_rechecks_in_a_row() {
        let mut s = SpeakerLanguage::detect(vec![]);
        s.observe(&seen("en", 0.95));
        s.observe(&seen("en", 0.95));
        assert_eq!(s.locked(), Some("en"));
        let requests: Vec<_> = (0..RECHECK_EVERY).map(|_| s.for_final()).collect();
        assert!(matches!(
            requests.last(),
            Some(LanguageRequest::Detect { .. })
        ));
        assert_eq!(s.observe(&seen("ru", 0.95)), None);
        assert_eq!(s.observe(&seen("ru", 0.5)), None, "not sure enough: resets");
        assert_eq!(s.observe(&seen("ru", 0.95)), None);
        assert_eq!(s.observe(&seen("ru", 0.92)), Some("ru".into()));
    }

    #[cfg(feature = "whisper")]
    #[test]
    fn whispers_language_codes_are_known_and_others_not() {
        assert!(is_known("ru") && is_known("en") && is_known("uk"));
        assert!(!is_known("xx") && !is_known("english") && !is_known(""));
    }

    #[test]
    fn a_fixed_language_is_never_detected() {
        let mut s = SpeakerLanguage::fixed("ru".into());
        for _ in 0..20 {
            assert_eq!(s.for_final(), LanguageRequest::Fixed("ru".into()));
        }
        assert_eq!(s.observe(&seen("en", 0.99)), None);
        assert_eq!(s.for_partial(), LanguageRequest::Fixed("ru".into()));
    }
}
