//! The hallucination guard: whisper writes text for any audio it is given, and on noise,
//! music or breathing it writes the phrases of its training subtitles ("Thank you.",
//! "Subtitles by the Amara.org community", "Продолжение следует..."). The energy VAD lets such
//! audio through in a noisy room, so every decoded utterance is judged on whisper's own
//! evidence before it becomes a caption:
//! - `no_speech`: the probability whisper gave the no-speech token at the start of decoding;
//! - `avg_logprob`: the mean log-probability of the text tokens it chose.
//!
//! The rules (thresholds measured in docs/transcription.md, "Hallucination guard"):
//! 1. Unsure text where whisper also leaned to no speech (no_speech > 0.3 with avg_logprob
//!    < -1.0): the babble and breathing case. (whisper.cpp itself drops no_speech > 0.6.)
//! 2. Very unsure text (avg_logprob < -1.8): on fan and keyboard noise the base model's text
//!    scored -1.9 to -3.1, while badly recognised real speech (espeak-ng Russian through the
//!    base model) scored -0.9 to -1.7 and is kept: an imperfect caption beats none.
//! 3. One of the known subtitle phrases, unless whisper was sure of it (a person does say
//!    "thank you": kept when avg_logprob > -0.35 and no_speech < 0.2).
//! 4. A loop: the same word or pair of words four times in a row, or text that repeats itself
//!    ("1.5.5.5.5…" on music, a sentence said twice on babble): under 65 % of its
//!    4-character pieces are distinct (ordinary sentences measured 74–100 %) (OpenAI's decoder uses gzip's compression ratio for
//!    the same purpose; this needs no compressor).

/// Why an utterance's text was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Speech,
    /// Whisper heard no words (empty, `[BLANK_AUDIO]`, `(music)`, punctuation only).
    NoWords,
    /// Text whisper made up; the reason names the rule.
    Hallucination(&'static str),
}

/// What whisper said about one utterance.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub text: &'a str,
    pub no_speech: f32,
    pub avg_logprob: f32,
}

const NO_SPEECH: f32 = 0.3;
const NO_SPEECH_LOGPROB: f32 = -1.0;
const MIN_LOGPROB: f32 = -1.8;
const SURE_LOGPROB: f32 = -0.35;
const SURE_NO_SPEECH: f32 = 0.2;

/// Phrases from subtitle credits and video outros that whisper emits on non-speech,
/// compared after [`normalise`].
const KNOWN_PHRASES: &[&str] = &[
    "thank you",
    "thanks for watching",
    "thank you for watching",
    "thank you so much for watching",
    "please subscribe",
    "subscribe to my channel",
    "bye",
    "you",
    "subtitles by the amaraorg community",
    "subtitles by",
    "продолжение следует",
    "спасибо за внимание",
    "субтитры сделал dimatorzok",
    "субтитры создавал dimatorzok",
    "редактор субтитров асинкевич корректор апопова",
    "sous-titres réalisés para la communauté damaraorg",
    "untertitel der amaraorg-community",
];

/// Lowercase letters, digits, `-` and single spaces only.
fn normalise(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '-')
        .flat_map(char::to_lowercase)
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn no_words(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || (t.starts_with('*') && t.ends_with('*'))
        || t.chars().all(|c| !c.is_alphanumeric())
}

fn loops(text: &str) -> bool {
    let words: Vec<String> = normalise(text)
        .split(' ')
        .map(str::to_owned)
        .filter(|w| !w.is_empty())
        .collect();
    let repeats = |n: usize| {
        words.windows(n * 4).any(|w| {
            let unit = &w[..n];
            w.chunks(n).all(|c| c == unit)
        })
    };
    repeats(1) || repeats(2) || repetitive(text)
}

/// Text of some length in which under 65 % of the 4-character windows are distinct.
fn repetitive(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 40 {
        return false;
    }
    let windows: std::collections::HashSet<&[char]> = chars.windows(4).collect();
    let total = chars.len() - 3;
    windows.len() * 20 < total * 13
}

/// Judges one decoded utterance.
pub fn judge(e: &Evidence<'_>) -> Verdict {
    if no_words(e.text) {
        return Verdict::NoWords;
    }
    if e.no_speech > NO_SPEECH && e.avg_logprob < NO_SPEECH_LOGPROB {
        return Verdict::Hallucination("no_speech");
    }
    if e.avg_logprob < MIN_LOGPROB {
        return Verdict::Hallucination("low_confidence");
    }
    let sure = e.avg_logprob > SURE_LOGPROB && e.no_speech < SURE_NO_SPEECH;
    if !sure && KNOWN_PHRASES.contains(&normalise(e.text).as_str()) {
        return Verdict::Hallucination("known_phrase");
    }
    if loops(e.text) {
        return Verdict::Hallucination("repetition");
    }
    Verdict::Speech
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(text: &str, no_speech: f32, avg_logprob: f32) -> Verdict {
        judge(&Evidence {
            text,
            no_speech,
            avg_logprob,
        })
    }

    #[test]
    fn clear_speech_is_kept() {
        assert_eq!(
            judged(" Good morning everyone, let us begin.", 0.01, -0.2),
            Verdict::Speech
        );
    }

    #[test]
    fn bracketed_and_empty_outputs_are_no_words() {
        for t in [" [BLANK_AUDIO]", "(music)", " ...", "", "*sighs*"] {
            assert_eq!(judged(t, 0.0, 0.0), Verdict::NoWords, "{t:?}");
        }
    }

    #[test]
    fn text_on_silence_is_a_hallucination() {
        assert_eq!(
            judged("Hello there.", 0.4, -1.1),
            Verdict::Hallucination("no_speech")
        );
        assert_eq!(
            judged("So the the.", 0.1, -2.1),
            Verdict::Hallucination("low_confidence")
        );
        assert_eq!(
            judged("Вдруга, Интеров всем.", 0.1, -1.6),
            Verdict::Speech,
            "poorly recognised speech is still a caption"
        );
    }

    #[test]
    fn subtitle_credits_are_dropped_unless_whisper_is_sure() {
        assert_eq!(
            judged(" Thank you.", 0.3, -0.5),
            Verdict::Hallucination("known_phrase")
        );
        assert_eq!(
            judged("Продолжение следует...", 0.1, -0.6),
            Verdict::Hallucination("known_phrase")
        );
        assert_eq!(judged(" Thank you.", 0.05, -0.2), Verdict::Speech);
    }

    #[test]
    fn a_loop_is_dropped() {
        assert_eq!(
            judged("okay okay okay okay okay", 0.1, -0.3),
            Verdict::Hallucination("repetition")
        );
        assert_eq!(
            judged("la la la la la la la la", 0.1, -0.3),
            Verdict::Hallucination("repetition")
        );
        assert_eq!(judged("I said no, no, no.", 0.1, -0.3), Verdict::Speech);
        assert_eq!(
            judged(&format!("1.{}", "5.".repeat(60)), 0.0, -0.12),
            Verdict::Hallucination("repetition")
        );
        assert_eq!(
            judged(
                "I'm going to get you a little bit better. I'm going to get you a little bit better.",
                0.0,
                -1.1
            ),
            Verdict::Hallucination("repetition")
        );
        assert_eq!(
            judged(
                "and we have a very important time in the world and we have a very important time.",
                0.0,
                -0.6
            ),
            Verdict::Hallucination("repetition")
        );
        assert_eq!(
            judged(
                "So the thing is that the team and the other team are going to the same meeting and then the meeting will be over.",
                0.0,
                -0.4
            ),
            Verdict::Speech
        );
        assert_eq!(
            judged(
                "Good morning everyone, let us begin the meeting. I will send you the report this afternoon.",
                0.0,
                -0.2
            ),
            Verdict::Speech
        );
    }
}
