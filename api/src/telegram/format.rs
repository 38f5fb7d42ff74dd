//! Text for Telegram's `sendMessage` with `parse_mode=HTML`: escaping, and splitting long
//! summaries into messages under Telegram's length limit.

/// Telegram refuses messages over 4096 characters (after entity parsing); we stay well under.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// Room in each message for what is added around a body chunk besides the title: the
/// "(k/n) " prefix, the title's " (1/n)" and the "\n\n" after it. 16 covers up to 99 999
/// messages.
const NUMBERING_HEADROOM: usize = 16;

/// A longer title is cut, so that the first message still has room for some body and
/// every message stays under [`MAX_MESSAGE_CHARS`].
const MAX_TITLE_CHARS: usize = 256;

/// Escapes text for parse_mode=HTML: only &, < and > need it (Telegram's HTML rules).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Splits `text` (plain, unescaped) into chunks of at most `max_chars` characters (chars, not
/// bytes), preferring to cut at a blank line, then a line break, then a space; a word longer
/// than the limit is cut hard (at a char boundary). Chunks are trimmed of leading/trailing
/// newlines; no chunk is empty; joining them (with the separators that were cut) loses no
/// non-whitespace character. `max_chars` of 0 is treated as 1.
///
/// A separator in the second half of the window wins over a better kind of separator in
/// the first half: one paragraph break near the start must not turn a 4000-char window
/// into a 10-char message. Chunks that are only whitespace are dropped, and trailing
/// whitespace is trimmed; leading spaces after a line break are kept (indentation).
pub fn split_text(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut chunks = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(['\n', '\r']);
        let Some(limit) = byte_offset_of_char(rest, max_chars) else {
            push_chunk(&mut chunks, rest);
            break;
        };
        let (cut, next) = match find_cut(rest, limit, max_chars) {
            Some((at, separator)) => {
                let next = &rest[at + separator.len()..];
                // Spaces after a space cut would only indent the next message.
                let next = if separator == " " {
                    next.trim_start_matches(' ')
                } else {
                    next
                };
                (at, next)
            }
            None => (limit, &rest[limit..]),
        };
        push_chunk(&mut chunks, &rest[..cut]);
        rest = next;
    }
    chunks
}

/// The byte offset of the `n`th char of `text` (0-based), or `None` when `text` has at most
/// `n` chars, i.e. fits in a chunk of `n`.
fn byte_offset_of_char(text: &str, n: usize) -> Option<usize> {
    text.char_indices().nth(n).map(|(i, _)| i)
}

fn push_chunk(chunks: &mut Vec<String>, chunk: &str) {
    let chunk = chunk.trim_end().trim_start_matches(['\n', '\r']);
    if !chunk.trim().is_empty() {
        chunks.push(chunk.to_owned());
    }
}

/// Where to cut `text`, whose first `limit` bytes are the `max_chars` chars that fit: the
/// byte offset of the separator that ends the chunk, and that separator. The chunk before
/// it must be non-empty. See [`split_text`] for the order of preference.
fn find_cut(text: &str, limit: usize, max_chars: usize) -> Option<(usize, &'static str)> {
    const SEPARATORS: [&str; 3] = ["\n\n", "\n", " "];
    // A separator may start at `limit` (the chunk is then the whole window) and run past
    // it, so search a little beyond, up to the next char boundary.
    let mut end = (limit + 2).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let window = &text[..end];
    let last = |separator: &str| {
        window
            .match_indices(separator)
            .map(|(at, _)| at)
            .filter(|&at| at > 0 && at <= limit)
            .last()
    };
    let half = max_chars / 2;
    let candidates: Vec<(usize, &'static str)> = SEPARATORS
        .iter()
        .filter_map(|&separator| last(separator).map(|at| (at, separator)))
        .collect();
    candidates
        .iter()
        .find(|&&(at, _)| text[..at].chars().count() >= half)
        .or_else(|| candidates.first())
        .copied()
}

/// The messages to send for a summary: a bold title line (escaped) then the body, split so
/// every message's *visible* text is at most MAX_MESSAGE_CHARS; each message is HTML-escaped
/// after splitting (so an escape like &amp; is never cut in half). When there is more than
/// one message, each one after the first starts with "(k/n) " and the first title gets " (1/n)".
///
/// A blank title is left out; a title over 256 chars is cut with "…". A blank title and
/// a blank body give no messages, since Telegram refuses empty text.
pub fn summary_messages(title: &str, body: &str) -> Vec<String> {
    let title = title.trim();
    let title: String = if title.chars().count() > MAX_TITLE_CHARS {
        let mut cut: String = title.chars().take(MAX_TITLE_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        title.to_owned()
    };
    let budget = MAX_MESSAGE_CHARS - title.chars().count() - NUMBERING_HEADROOM;
    let chunks = split_text(body, budget);
    let n = chunks.len().max(1);
    let numbered = n > 1;

    let mut first = String::new();
    if !title.is_empty() {
        first.push_str("<b>");
        first.push_str(&escape_html(&title));
        if numbered {
            first.push_str(&format!(" (1/{n})"));
        }
        first.push_str("</b>");
    }
    let mut chunks = chunks.into_iter();
    if let Some(chunk) = chunks.next() {
        if !first.is_empty() {
            first.push_str("\n\n");
        } else if numbered {
            first.push_str(&format!("(1/{n}) "));
        }
        first.push_str(&escape_html(&chunk));
    }
    if first.is_empty() {
        return Vec::new();
    }
    let mut messages = vec![first];
    for (i, chunk) in chunks.enumerate() {
        messages.push(format!("({}/{n}) {}", i + 2, escape_html(&chunk)));
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn non_whitespace(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// What Telegram shows for one of our messages: tags removed, entities decoded.
    fn visible(message: &str) -> String {
        message
            .replace("<b>", "")
            .replace("</b>", "")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// A body of `paragraphs` paragraphs of `words` words each, with a few characters that
    /// need escaping.
    fn paragraphs(paragraphs: usize, words: usize) -> String {
        (0..paragraphs)
            .map(|p| {
                (0..words)
                    .map(|w| format!("w{p}x{w}&<>"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    #[test]
    fn escape_html_escapes_only_amp_lt_and_gt() {
        assert_eq!(
            escape_html(r#"<script>& "quotes" 'stay'"#),
            r#"&lt;script&gt;&amp; "quotes" 'stay'"#
        );
    }

    #[test]
    fn long_body_becomes_three_numbered_messages_that_lose_nothing() {
        let body = paragraphs(40, 27);
        assert!(body.chars().count() > 10_000, "{}", body.chars().count());
        assert!(body.chars().count() < 11_000);
        let messages = summary_messages("Weekly sync <team>", &body);
        assert_eq!(messages.len(), 3);
        assert!(messages[0].starts_with("<b>Weekly sync &lt;team&gt; (1/3)</b>\n\n"));
        assert!(messages[1].starts_with("(2/3) "));
        assert!(messages[2].starts_with("(3/3) "));
        let mut text = String::new();
        for (i, message) in messages.iter().enumerate() {
            let shown = visible(message);
            assert!(shown.chars().count() <= MAX_MESSAGE_CHARS, "{i}");
            let shown = match i {
                0 => shown.replacen("Weekly sync <team> (1/3)", "", 1),
                k => shown.replacen(&format!("({}/3) ", k + 1), "", 1),
            };
            text.push_str(&shown);
        }
        assert_eq!(non_whitespace(&text), non_whitespace(&body));
    }

    #[test]
    fn short_body_gives_one_message_without_numbering() {
        assert_eq!(
            summary_messages("Standup", "All good & done."),
            vec!["<b>Standup</b>\n\nAll good &amp; done.".to_owned()]
        );
        assert_eq!(summary_messages("Standup", "  \n"), vec!["<b>Standup</b>"]);
        assert_eq!(summary_messages("", "Body"), vec!["Body"]);
        assert!(summary_messages(" ", "\n").is_empty());
    }

    #[test]
    fn a_9000_char_word_is_cut_hard() {
        let word = "a".repeat(9000);
        let chunks = split_text(&word, 4000);
        let lengths: Vec<usize> = chunks.iter().map(|c| c.chars().count()).collect();
        assert_eq!(lengths, vec![4000, 4000, 1000]);
        let messages = summary_messages("T", &word);
        assert_eq!(messages.len(), 3);
        for message in &messages {
            assert!(visible(message).chars().count() <= MAX_MESSAGE_CHARS);
        }
    }

    #[test]
    fn cyrillic_and_emoji_split_on_char_boundaries() {
        let text = "Привет🎉мир".repeat(1000);
        let chunks = split_text(&text, 7);
        assert!(chunks.iter().all(|c| c.chars().count() <= 7));
        assert_eq!(chunks.concat(), text);
        let spaced = "ёжик 🎉🎉 ".repeat(500);
        let chunks = split_text(&spaced, 10);
        assert!(chunks.iter().all(|c| c.chars().count() <= 10));
        assert_eq!(chunks[0], "ёжик 🎉🎉");
        assert_eq!(non_whitespace(&chunks.concat()), non_whitespace(&spaced));
    }

    #[test]
    fn split_prefers_blank_lines_then_line_breaks_then_spaces() {
        let text = "aaaa bbbb\ncccc\n\ndddd eeee\nffff";
        assert_eq!(
            split_text(text, 16),
            vec!["aaaa bbbb\ncccc", "dddd eeee\nffff"]
        );
        assert_eq!(
            split_text("aaaa bbbb\ncccc dddd", 16),
            vec!["aaaa bbbb", "cccc dddd"]
        );
        assert_eq!(split_text("aaaa bbbb cccc", 10), vec!["aaaa bbbb", "cccc"]);
        // A paragraph break at the very start doesn't make a tiny chunk.
        assert_eq!(
            split_text("a\n\nbbbbbbbb cccccccc dddd", 20),
            vec!["a\n\nbbbbbbbb cccccccc", "dddd"]
        );
    }

    #[test]
    fn split_handles_zero_limits_and_blank_text() {
        assert_eq!(split_text("ab c", 0), vec!["a", "b", "c"]);
        assert!(split_text("", 10).is_empty());
        assert!(split_text("\n\n  \n", 1).is_empty());
        assert_eq!(split_text("\n\nhi\n\n", 10), vec!["hi"]);
        assert_eq!(split_text("a \n\n b", 1), vec!["a", "b"]);
    }

    #[test]
    fn an_ampersand_at_a_cut_point_is_never_split_into_pieces() {
        let title = "T";
        let budget = MAX_MESSAGE_CHARS - 1 - NUMBERING_HEADROOM;
        for offset in 0..6 {
            let body = "x".repeat(budget - offset) + &"&".repeat(20) + &"y".repeat(5000);
            for message in summary_messages(title, &body) {
                let without_entities = message
                    .replace("&amp;", "")
                    .replace("&lt;", "")
                    .replace("&gt;", "");
                assert!(!without_entities.contains('&'), "{offset}");
                assert!(visible(&message).chars().count() <= MAX_MESSAGE_CHARS);
            }
        }
    }

    #[test]
    fn a_huge_title_is_cut_so_messages_stay_under_the_limit() {
        let messages = summary_messages(&"<".repeat(5000), &"b ".repeat(5000));
        assert!(messages[0].contains(&format!("{}…", "&lt;".repeat(255))));
        for message in &messages {
            assert!(visible(message).chars().count() <= MAX_MESSAGE_CHARS);
        }
    }
}
