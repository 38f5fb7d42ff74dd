//! What a summary is made from: the session's speaker-attributed transcript first, then the
//! chat of the same period, rendered as the user message a model reads.

use super::heuristic::Line;

/// The most characters of meeting text sent to a model (about 15k tokens). A longer meeting
/// keeps its latest part, with a line that says how much was left out, so the request fits
/// the context of small local models too.
pub const MAX_PROMPT_CHARS: usize = 60_000;

/// One session's content.
#[derive(Debug, Clone, Default)]
pub struct SummaryInput {
    pub room_name: String,
    /// Unix ms.
    pub started_at: i64,
    pub ended_at: i64,
    /// Transcribed utterances in time order.
    pub utterances: Vec<Line>,
    /// Chat messages in time order.
    pub chat: Vec<Line>,
}

impl SummaryInput {
    /// Characters of what was said and written, without names, times or framing: what
    /// `AI_SUMMARY_MIN_CHARS` is compared with.
    pub fn content_chars(&self) -> usize {
        self.utterances
            .iter()
            .chain(&self.chat)
            .map(|l| l.text.trim().chars().count())
            .sum()
    }

    /// Everyone who spoke or wrote, in order of first appearance.
    pub fn participants(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let mut lines: Vec<&Line> = self.utterances.iter().chain(&self.chat).collect();
        lines.sort_by_key(|l| l.start_ms);
        for line in lines {
            if !names.contains(&line.speaker.as_str()) {
                names.push(&line.speaker);
            }
        }
        names
    }

    /// The user message for the model.
    pub fn to_prompt(&self) -> String {
        let minutes = (self.ended_at - self.started_at).max(0) / 60_000;
        let mut out = format!(
            "Meeting: {}\nPeriod: {} – {} UTC ({minutes} min)\nParticipants: {}\n\n",
            self.room_name,
            clock(self.started_at),
            clock(self.ended_at),
            self.participants().join(", ")
        );
        out.push_str("Voice transcript (times from the start of the session):\n");
        let chat = self.section(&self.chat, MAX_PROMPT_CHARS / 4);
        let budget = MAX_PROMPT_CHARS.saturating_sub(chat.chars().count());
        let voice = self.section(&self.utterances, budget);
        if voice.is_empty() {
            out.push_str("(none: the transcriber was off or heard no words)\n");
        } else {
            out.push_str(&voice);
        }
        out.push_str("\nChat messages of the same period:\n");
        if chat.is_empty() {
            out.push_str("(none)\n");
        } else {
            out.push_str(&chat);
        }
        out
    }

    /// `[mm:ss] name: text` lines, the newest that fit in `budget` characters.
    fn section(&self, lines: &[Line], budget: usize) -> String {
        let rendered: Vec<String> = lines
            .iter()
            .filter(|l| !l.text.trim().is_empty())
            .map(|l| {
                format!(
                    "[{}] {}: {}\n",
                    offset(l.start_ms - self.started_at),
                    l.speaker,
                    l.text.trim()
                )
            })
            .collect();
        let mut used = 0;
        let mut keep = rendered.len();
        while keep > 0 {
            let next = rendered[keep - 1].chars().count();
            if used + next > budget {
                break;
            }
            used += next;
            keep -= 1;
        }
        let mut out = String::new();
        if keep > 0 {
            out.push_str(&format!("({keep} earlier lines left out for length)\n"));
        }
        for line in &rendered[keep..] {
            out.push_str(line);
        }
        out
    }
}

/// `mm:ss`, or `h:mm:ss` from an hour on.
fn offset(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// `2026-11-26 21:58` (UTC).
fn clock(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(|t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(speaker: &str, at_s: i64, text: &str) -> Line {
        Line {
            speaker: speaker.to_owned(),
            start_ms: 1_700_000_000_000 + at_s * 1000,
            end_ms: 1_700_000_000_000 + at_s * 1000 + 2000,
            text: text.to_owned(),
        }
    }

    fn input() -> SummaryInput {
        SummaryInput {
            room_name: "Design sync".to_owned(),
            started_at: 1_700_000_000_000,
            ended_at: 1_700_000_000_000 + 5 * 60_000,
            utterances: vec![
                line("alice", 3, "Good morning everyone."),
                line("bob", 65, "I will send the report."),
            ],
            chat: vec![line("carol", 30, "link: https://example.org/doc")],
        }
    }

    #[test]
    fn the_prompt_has_the_transcript_with_speakers_and_times_then_the_chat() {
        let prompt = input().to_prompt();
        let voice = prompt
            .find("[00:03] alice: Good morning everyone.")
            .expect("alice");
        let bob = prompt
            .find("[01:05] bob: I will send the report.")
            .expect("bob");
        let chat = prompt.find("[00:30] carol: link:").expect("chat");
        assert!(voice < bob && bob < chat, "{prompt}");
        assert!(
            prompt.contains("Participants: alice, carol, bob"),
            "{prompt}"
        );
        assert!(prompt.contains("(5 min)"), "{prompt}");
    }

    #[test]
    fn content_counts_only_what_was_said_and_written() {
        assert_eq!(
            input().content_chars(),
            "Good morning everyone.".len()
                + "I will send the report.".len()
                + "link: https://example.org/doc".len()
        );
    }

    #[test]
    fn a_long_meeting_keeps_its_latest_part_within_the_budget() {
        let mut long = input();
        long.utterances = (0..5000)
            .map(|i| {
                line(
                    "alice",
                    i,
                    &format!("sentence number {i} of a very long meeting"),
                )
            })
            .collect();
        let prompt = long.to_prompt();
        assert!(prompt.chars().count() <= MAX_PROMPT_CHARS + 500);
        assert!(prompt.contains("earlier lines left out"));
        assert!(prompt.contains("sentence number 4999 "));
        assert!(!prompt.contains("sentence number 0 "));
    }

    #[test]
    fn empty_sections_say_so() {
        let empty = SummaryInput::default().to_prompt();
        assert!(empty.contains("(none: the transcriber was off"));
        assert!(empty.contains("Chat messages of the same period:\n(none)"));
    }
}
