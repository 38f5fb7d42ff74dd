//! Partial captions that don't flicker: the LocalAgreement-2 rule of whisper_streaming.
//!
//! While someone speaks, whisper is run again every second on the utterance so far; each run
//! is a fresh hypothesis and may change words it gave before ("I will sent" -> "I will send
//! you"). Showing each hypothesis as is makes the caption jump. Instead a word becomes
//! *stable* once two consecutive hypotheses agree on it and on every word before it, and a
//! stable word is never taken back within the utterance. The rest of the newest hypothesis
//! is *unstable*: shown, but marked as a guess. The final caption replaces both.

/// The text of one partial caption.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartialText {
    /// Words two hypotheses agreed on; only ever grows within an utterance.
    pub stable: String,
    /// The rest of the newest hypothesis.
    pub unstable: String,
}

/// The stable-prefix state of one utterance in progress.
#[derive(Debug, Clone, Default)]
pub struct StablePrefix {
    committed: Vec<String>,
    previous: Vec<String>,
}

/// Words compare without case and punctuation: "morning," and "Morning" agree.
fn same_word(a: &str, b: &str) -> bool {
    let key = |w: &str| {
        w.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    key(a) == key(b)
}

impl StablePrefix {
    /// Takes the newest hypothesis for the utterance; returns what to show.
    pub fn update(&mut self, hypothesis: &str) -> PartialText {
        let words: Vec<String> = hypothesis.split_whitespace().map(str::to_owned).collect();
        let agreed = self
            .previous
            .iter()
            .zip(&words)
            .take_while(|(a, b)| same_word(a, b))
            .count();
        if agreed > self.committed.len() {
            // The newer forms (punctuation, case) of words agreed on; what was committed
            // before keeps its text.
            let grown = words[self.committed.len()..agreed].to_vec();
            self.committed.extend(grown);
        }
        let rest = words.get(self.committed.len()..).unwrap_or_default();
        self.previous = words.clone();
        PartialText {
            stable: self.committed.join(" "),
            unstable: rest.join(" "),
        }
    }

    /// Words committed so far.
    pub fn stable_words(&self) -> usize {
        self.committed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_stable_when_two_hypotheses_agree_on_them() {
        let mut p = StablePrefix::default();
        let first = p.update("Good morning every");
        assert_eq!(first.stable, "");
        assert_eq!(first.unstable, "Good morning every");
        let second = p.update("Good morning, everyone, let");
        assert_eq!(second.stable, "Good morning,");
        assert_eq!(second.unstable, "everyone, let");
        let third = p.update("Good morning, everyone, let us begin");
        assert_eq!(third.stable, "Good morning, everyone, let");
        assert_eq!(third.unstable, "us begin");
    }

    #[test]
    fn a_stable_word_is_never_taken_back() {
        let mut p = StablePrefix::default();
        p.update("I will send");
        assert_eq!(p.update("I will send you").stable, "I will send");
        // Whisper changes its mind about an early word: the caption does not.
        let t = p.update("I'll send you the report");
        assert_eq!(t.stable, "I will send");
        assert_eq!(t.unstable, "the report");
        assert_eq!(p.stable_words(), 3);
    }

    #[test]
    fn an_empty_hypothesis_keeps_what_was_stable() {
        let mut p = StablePrefix::default();
        p.update("hello there");
        p.update("hello there friend");
        let t = p.update("");
        assert_eq!(t.stable, "hello there");
        assert_eq!(t.unstable, "");
    }
}
