//! The summary the server writes itself when no AI model writes one: the session was too
//! short to be worth a model call, no provider is configured, or the provider failed.
//!
//! It is an extract, not a summary: who spoke for how long, frequent words, and sentences
//! that look like decisions or questions. Everything it shows was said by someone, so it
//! can be wrong about what matters but never invents content.

use std::collections::{HashMap, HashSet};

/// One line of the meeting: a transcribed utterance or a chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The speaker's username.
    pub speaker: String,
    /// Unix ms.
    pub start_ms: i64,
    /// Unix ms; for chat messages equal to `start_ms`.
    pub end_ms: i64,
    pub text: String,
}

/// Why no AI model wrote the summary; shown in the summary's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeuristicReason {
    /// Too little was said for a model call to be worth it.
    Short,
    /// No LLM provider is configured on this server.
    NoProvider,
    /// A provider is configured but the call failed.
    ProviderFailed,
    /// The user's hourly budget of model calls (`AI_SUMMARIES_PER_USER_PER_HOUR`) is spent.
    Limited,
}

impl HeuristicReason {
    /// Stable code stored with the summary: "short", "no_provider", "provider_failed".
    pub fn code(self) -> &'static str {
        match self {
            HeuristicReason::Short => "short",
            HeuristicReason::NoProvider => "no_provider",
            HeuristicReason::ProviderFailed => "provider_failed",
            HeuristicReason::Limited => "limited",
        }
    }
}

/// Most keywords listed under "Topics".
const MAX_TOPICS: usize = 5;
/// Most sentences listed under "Decisions" and under "Open questions", each.
const MAX_ITEMS: usize = 5;
/// A quoted sentence is cut to this many characters, "…" included, so one long monologue
/// without punctuation can't take over the summary.
const MAX_ITEM_CHARS: usize = 200;
/// Shorter words are almost all function words in both languages.
const MIN_TOPIC_CHARS: usize = 4;
/// Below this many words a word said once is as good a topic as any; above it, a topic
/// must come up at least twice, or the list is just the first nouns of the meeting.
const FEW_WORDS: usize = 40;

/// Words or phrases that mark a sentence as a decision or an action item. Multi-word
/// markers match consecutive words. Cyrillic markers are stems that match any word they
/// start (Russian inflects: "задачу", "сроки"); English ones match whole words only, or
/// "agree" would match "agreement" and "todo" nothing useful.
const DECISION_MARKERS: &[&str] = &[
    "decided",
    "agreed",
    "agree",
    "we will",
    "we'll",
    // A personal commitment is an action item too ("I will send the report").
    "i will",
    "i'll",
    "let's",
    "action item",
    "deadline",
    "todo",
    "will do",
    "going to",
    "решили",
    "договорились",
    "сделаем",
    "сделаю",
    "нужно",
    "дедлайн",
    "срок",
    "задач",
];

/// English words too common or too empty to be a topic, and the decision verbs, which
/// mark decisions rather than name their subject; separated by whitespace. Only words of
/// at least [`MIN_TOPIC_CHARS`] letters matter; shorter ones are dropped anyway.
const EN_STOP_WORDS: &str = "\
    about above actually after again against also always anyway agree agreed because \
    been before being below between both cause come could decide decided does doing done \
    down during each else even ever every everyone everything from further gonna good \
    gotta great guys have having hello here into just kind know like little look made \
    make many maybe mean more most much must need never okay only other over please \
    pretty probably quite really right said same says should some something sorry still \
    sure take than thank thanks that their them then there these they thing things think \
    this those through under until very wanna want well were what whatever when where \
    which while will with would yeah your yours";

/// Russian words too common or too empty to be a topic (see [`EN_STOP_WORDS`]).
const RU_STOP_WORDS: &str = "\
    более будем будет будут быть вообще впрочем всего всегда всех всем всеми говорил \
    говорит говорю давай давайте договорились даже думаю другие другой если есть здесь \
    значит какая какие какой когда конечно которая которые который которое которых \
    короче кажется ладно между менее меня много может можем можно надо наверное нужно \
    нужна нужен окей одна один одно очень перед после потом потому почему правда просто \
    решили сейчас сказал сказала слушай собственно спасибо также теперь тогда тоже \
    только типа чтобы через хорошо хочу этим этого этой этом этот этому эта эти это всё \
    все ещё еще уже свой свои своё себя тебя тебе";

/// The language of the summary's own wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Ru,
}

impl Lang {
    /// Russian when most letters of the content are Cyrillic: a Russian meeting still has
    /// English product names in it, and an English one the odd Russian word.
    fn detect(lines: &[&Line]) -> Self {
        let (mut letters, mut cyrillic) = (0usize, 0usize);
        for c in lines.iter().flat_map(|l| l.text.chars()) {
            if c.is_alphabetic() {
                letters += 1;
                if ('\u{0400}'..='\u{04FF}').contains(&c) {
                    cyrillic += 1;
                }
            }
        }
        if cyrillic * 2 > letters {
            Lang::Ru
        } else {
            Lang::En
        }
    }

    fn header(self, reason: HeuristicReason) -> &'static str {
        match (self, reason) {
            (Lang::En, HeuristicReason::Short) => {
                "Automatic summary (no AI model: the session was too short)"
            }
            (Lang::En, HeuristicReason::NoProvider) => {
                "Automatic summary (no AI model is configured)"
            }
            (Lang::En, HeuristicReason::ProviderFailed) => {
                "Automatic summary (the AI model could not be reached)"
            }
            (Lang::Ru, HeuristicReason::Short) => {
                "Автоматическая сводка (без ИИ: сессия слишком короткая)"
            }
            (Lang::Ru, HeuristicReason::NoProvider) => {
                "Автоматическая сводка (модель ИИ не настроена)"
            }
            (Lang::Ru, HeuristicReason::ProviderFailed) => {
                "Автоматическая сводка (модель ИИ недоступна)"
            }
            (Lang::En, HeuristicReason::Limited) => {
                "Automatic summary (your hourly allowance of AI summaries is used up)"
            }
            (Lang::Ru, HeuristicReason::Limited) => {
                "Автоматическая сводка (лимит сводок ИИ на этот час исчерпан)"
            }
        }
    }

    fn participants(self) -> &'static str {
        match self {
            Lang::En => "Participants:",
            Lang::Ru => "Участники:",
        }
    }

    fn spoke(self, ms: i64) -> String {
        match self {
            Lang::En => format!("spoke {}", format_duration(ms, self)),
            Lang::Ru => format!("говорил(а) {}", format_duration(ms, self)),
        }
    }

    fn chat_messages(self, n: usize) -> String {
        match (self, n) {
            (Lang::En, 1) => "1 chat message".to_owned(),
            (Lang::En, n) => format!("{n} chat messages"),
            // This wording needs no plural forms, which Russian has three of.
            (Lang::Ru, n) => format!("сообщений в чате: {n}"),
        }
    }

    fn topics(self) -> &'static str {
        match self {
            Lang::En => "Topics:",
            Lang::Ru => "Темы:",
        }
    }

    fn decisions(self) -> &'static str {
        match self {
            Lang::En => "Decisions:",
            Lang::Ru => "Решения:",
        }
    }

    fn questions(self) -> &'static str {
        match self {
            Lang::En => "Open questions:",
            Lang::Ru => "Открытые вопросы:",
        }
    }

    fn everything(self) -> &'static str {
        match self {
            Lang::En => "Everything that was said:",
            Lang::Ru => "Всё, что было сказано:",
        }
    }
}

/// A short structured extract of the meeting: topics, decisions, open questions, and who
/// spoke how long; in Russian when most letters of the content are Cyrillic, else English.
///
/// Plain text: sections separated by a blank line, "- " bullets, empty sections left out
/// except the first line, which says why no AI model wrote it. For
/// [`HeuristicReason::Short`] it quotes every line instead of extracting: short content is
/// quicker to read whole than as an extract.
pub fn heuristic_summary(utterances: &[Line], chat: &[Line], reason: HeuristicReason) -> String {
    let mut lines: Vec<&Line> = utterances.iter().chain(chat).collect();
    // Stable, so an utterance and a chat message at the same ms keep that order.
    lines.sort_by_key(|l| l.start_ms);
    let lang = Lang::detect(&lines);

    let mut sections = vec![lang.header(reason).to_owned()];
    sections.extend(participants_section(utterances, chat, lang));
    if reason == HeuristicReason::Short {
        sections.extend(bullets(lang.everything(), everything_said(&lines)));
    } else {
        let names = name_words(&lines);
        let topics = topics(&lines, &names);
        if !topics.is_empty() {
            sections.push(format!("{} {}", lang.topics(), topics.join(", ")));
        }
        let (decisions, questions) = decisions_and_questions(&lines);
        sections.extend(bullets(lang.decisions(), decisions));
        sections.extend(bullets(lang.questions(), questions));
    }
    sections.join("\n\n")
}

/// A titled list of "- " bullets, or nothing when there are no items.
fn bullets(title: &str, items: Vec<String>) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut out = title.to_owned();
    for item in items {
        out.push_str("\n- ");
        out.push_str(&item);
    }
    Some(out)
}

#[derive(Default)]
struct Participation {
    speaking_ms: i64,
    utterances: usize,
    chat_messages: usize,
}

fn participants_section(utterances: &[Line], chat: &[Line], lang: Lang) -> Option<String> {
    let mut by_speaker: HashMap<&str, Participation> = HashMap::new();
    for u in utterances {
        let p = by_speaker.entry(&u.speaker).or_default();
        // Clock skew can put an end before its start; that utterance adds nothing rather
        // than taking time away. Saturating, because the values come from clients.
        let ms = u.end_ms.saturating_sub(u.start_ms).max(0);
        p.speaking_ms = p.speaking_ms.saturating_add(ms);
        p.utterances += 1;
    }
    for c in chat {
        by_speaker.entry(&c.speaker).or_default().chat_messages += 1;
    }
    let mut rows: Vec<(&str, Participation)> = by_speaker.into_iter().collect();
    rows.sort_by(|(a_name, a), (b_name, b)| {
        b.speaking_ms
            .cmp(&a.speaking_ms)
            .then(b.chat_messages.cmp(&a.chat_messages))
            .then(a_name.cmp(b_name))
    });
    let items = rows
        .into_iter()
        .map(|(name, p)| {
            let mut parts = Vec::new();
            if p.utterances > 0 {
                parts.push(lang.spoke(p.speaking_ms));
            }
            if p.chat_messages > 0 {
                parts.push(lang.chat_messages(p.chat_messages));
            }
            format!("{name}: {}", parts.join(", "))
        })
        .collect();
    bullets(lang.participants(), items)
}

/// `X s` under a minute, `M min SS s` under an hour, `H h MM min` from an hour on, rounded
/// to the nearest second.
fn format_duration(ms: i64, lang: Lang) -> String {
    let secs = ms.max(0).saturating_add(500) / 1000;
    let (h, min, s) = match lang {
        Lang::En => ("h", "min", "s"),
        Lang::Ru => ("ч", "мин", "с"),
    };
    if secs < 60 {
        format!("{secs} {s}")
    } else if secs < 3600 {
        format!("{} {min} {:02} {s}", secs / 60, secs % 60)
    } else {
        format!("{} {h} {:02} {min}", secs / 3600, secs % 3600 / 60)
    }
}

/// Every non-blank line as `speaker: text`, its text on one line so each stays one bullet.
fn everything_said(lines: &[&Line]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let text = l
                .text
                .lines()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            (!text.is_empty()).then(|| format!("{}: {text}", l.speaker))
        })
        .collect()
}

/// The first [`MAX_ITEMS`] decision sentences and the first [`MAX_ITEMS`] questions, each
/// as `speaker: sentence`. A question with a marker in it ("Did we agree on Friday?") asks
/// rather than decides, so questions are checked first.
fn decisions_and_questions(lines: &[&Line]) -> (Vec<String>, Vec<String>) {
    let mut decisions = Vec::new();
    let mut questions = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    'lines: for line in lines {
        for sentence in sentences(&line.text) {
            if decisions.len() >= MAX_ITEMS && questions.len() >= MAX_ITEMS {
                break 'lines;
            }
            let list = if is_question(sentence) {
                &mut questions
            } else if is_decision(sentence) {
                &mut decisions
            } else {
                continue;
            };
            if list.len() < MAX_ITEMS && seen.insert(sentence) {
                list.push(format!(
                    "{}: {}",
                    line.speaker,
                    truncate_chars(sentence, MAX_ITEM_CHARS)
                ));
            }
        }
    }
    (decisions, questions)
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// Splits text into trimmed sentences, each keeping its terminators ("?!", "..."). A
/// terminator ends a sentence only before whitespace or the end, so "3.5" and "v1.2" stay
/// whole; a line break always ends one, since chat messages use them as full stops.
/// Fragments without a letter or digit ("...", "?") are dropped.
fn sentences<'a>(text: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut push = |s: &'a str| {
        let s = s.trim();
        if s.chars().any(char::is_alphanumeric) {
            out.push(s);
        }
    };
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = if c == '\n' {
            Some(i)
        } else if is_terminator(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_terminator(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            match chars.peek() {
                Some(&(_, next)) if !next.is_whitespace() => None,
                _ => Some(end),
            }
        } else {
            None
        };
        if let Some(end) = end {
            push(&text[start..end]);
            start = end;
        }
    }
    push(&text[start..]);
    out
}

fn is_question(sentence: &str) -> bool {
    sentence
        .chars()
        .rev()
        .take_while(|&c| is_terminator(c))
        .any(|c| c == '?')
}

fn is_decision(sentence: &str) -> bool {
    let words: Vec<String> = sentence
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(['\'', '’']).replace('’', "'").to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    DECISION_MARKERS.iter().any(|marker| {
        let marker: Vec<&str> = marker.split(' ').collect();
        words.windows(marker.len()).any(|window| {
            window.iter().zip(&marker).all(|(word, m)| {
                let is_stem = m.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
                word == m || (is_stem && word.starts_with(m))
            })
        })
    })
}

/// At most `max` characters, the last one "…" when anything was cut. Cuts between chars,
/// never inside one.
fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The letters-only words of the participants' names: a name is said often (people address
/// each other) but is no topic.
fn name_words(lines: &[&Line]) -> HashSet<String> {
    lines
        .iter()
        .flat_map(|l| letter_words(&l.speaker))
        .collect()
}

/// Maximal runs of letters, lowercased.
fn letter_words(text: &str) -> impl Iterator<Item = String> + '_ {
    // Links are not topics: "https" and "example" would win every chat with a URL in it.
    text.split_whitespace()
        .filter(|token| !token.contains("://") && !token.starts_with("www."))
        .flat_map(|token| token.split(|c: char| !c.is_alphabetic()))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Up to [`MAX_TOPICS`] of the most frequent content words, ties to the one said first.
fn topics(lines: &[&Line], names: &HashSet<String>) -> Vec<String> {
    let stop: HashSet<&str> = EN_STOP_WORDS
        .split_whitespace()
        .chain(RU_STOP_WORDS.split_whitespace())
        .collect();
    // word -> (count, index of first appearance)
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    let mut total = 0;
    for word in lines.iter().flat_map(|l| letter_words(&l.text)) {
        total += 1;
        if word.chars().count() < MIN_TOPIC_CHARS
            || stop.contains(word.as_str())
            || names.contains(&word)
        {
            continue;
        }
        let first = counts.len();
        counts.entry(word).or_insert((0, first)).0 += 1;
    }
    let min_count = if total < FEW_WORDS { 1 } else { 2 };
    let mut ranked: Vec<(String, (usize, usize))> = counts
        .into_iter()
        .filter(|(_, (count, _))| *count >= min_count)
        .collect();
    ranked.sort_by(|(_, (a_count, a_first)), (_, (b_count, b_first))| {
        b_count.cmp(a_count).then(a_first.cmp(b_first))
    });
    ranked
        .into_iter()
        .take(MAX_TOPICS)
        .map(|(word, _)| word)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(speaker: &str, start_ms: i64, end_ms: i64, text: &str) -> Line {
        Line {
            speaker: speaker.to_owned(),
            start_ms,
            end_ms,
            text: text.to_owned(),
        }
    }

    fn english_meeting() -> (Vec<Line>, Vec<Line>) {
        let utterances = vec![
            line(
                "alice",
                0,
                30_000,
                "Let's look at the budget for the release. The budget report is late.",
            ),
            line(
                "bob",
                30_000,
                42_000,
                "Who will write the release notes? The budget needs a second review.",
            ),
            line(
                "alice",
                42_000,
                65_000,
                "We decided to ship on Friday. The design review moves the deadline. \
                 Did we agree on the design?",
            ),
            line(
                "carol",
                65_000,
                70_000,
                "The report covers the release and the design, and the deadline is firm.",
            ),
        ];
        let chat = vec![
            line("alice", 10_000, 10_000, "report draft is in the drive"),
            line("alice", 20_000, 20_000, "We decided to ship on Friday."),
            line("alice", 50_000, 50_000, "ok"),
        ];
        (utterances, chat)
    }

    #[test]
    fn links_are_not_topics() {
        let chat = [line(
            "bob",
            0,
            0,
            "Notes: https://example.org/notes and www.example.org/x",
        )];
        let words: Vec<String> = chat.iter().flat_map(|l| letter_words(&l.text)).collect();
        assert_eq!(words, ["notes", "and"]);
    }

    #[test]
    fn english_meeting_lists_participants_topics_decisions_and_questions() {
        let (utterances, chat) = english_meeting();
        let summary = heuristic_summary(&utterances, &chat, HeuristicReason::NoProvider);
        let expected = "\
Automatic summary (no AI model is configured)

Participants:
- alice: spoke 53 s, 3 chat messages
- bob: spoke 12 s
- carol: spoke 5 s

Topics: budget, release, report, design, ship

Decisions:
- alice: Let's look at the budget for the release.
- alice: We decided to ship on Friday.
- alice: The design review moves the deadline.
- carol: The report covers the release and the design, and the deadline is firm.

Open questions:
- bob: Who will write the release notes?
- alice: Did we agree on the design?";
        assert_eq!(summary, expected);
    }

    #[test]
    fn reason_codes_and_headers_differ_per_reason() {
        let reasons = [
            (HeuristicReason::Short, "short", "the session was too short"),
            (
                HeuristicReason::NoProvider,
                "no_provider",
                "no AI model is configured",
            ),
            (
                HeuristicReason::ProviderFailed,
                "provider_failed",
                "the AI model could not be reached",
            ),
            (
                HeuristicReason::Limited,
                "limited",
                "hourly allowance of AI summaries",
            ),
        ];
        for (reason, code, wording) in reasons {
            assert_eq!(reason.code(), code);
            let summary = heuristic_summary(&[], &[], reason);
            assert!(summary.starts_with("Automatic summary ("), "{summary}");
            assert!(summary.contains(wording), "{summary}");
        }
    }

    #[test]
    fn russian_meeting_gets_russian_headings() {
        let utterances = vec![
            line(
                "мария",
                0,
                65_000,
                "Бюджет проекта нужно утвердить до пятницы. Кто подготовит отчёт?",
            ),
            line(
                "ivan",
                65_000,
                70_000,
                "Договорились: бюджет проекта согласуем завтра. Отчёт сделаю я.",
            ),
        ];
        let chat = vec![line(
            "ivan",
            1_000,
            1_000,
            "Ссылка на отчёт в чате, Release v2",
        )];
        let summary = heuristic_summary(&utterances, &chat, HeuristicReason::ProviderFailed);
        let expected = "\
Автоматическая сводка (модель ИИ недоступна)

Участники:
- мария: говорил(а) 1 мин 05 с
- ivan: говорил(а) 5 с, сообщений в чате: 1

Темы: отчёт, бюджет, проекта, утвердить, пятницы

Решения:
- мария: Бюджет проекта нужно утвердить до пятницы.
- ivan: Договорились: бюджет проекта согласуем завтра.
- ivan: Отчёт сделаю я.

Открытые вопросы:
- мария: Кто подготовит отчёт?";
        assert_eq!(summary, expected);
    }

    #[test]
    fn short_session_lists_everything_verbatim_in_time_order_and_says_so() {
        let utterances = vec![
            line("alice", 5_000, 8_000, "Hi, can you hear me?"),
            line("bob", 9_000, 10_000, "Yes. We decided nothing yet."),
        ];
        let chat = vec![
            line("bob", 6_000, 6_000, "mic check\nsecond line"),
            line("bob", 7_000, 7_000, "   "),
        ];
        let summary = heuristic_summary(&utterances, &chat, HeuristicReason::Short);
        let expected = "\
Automatic summary (no AI model: the session was too short)

Participants:
- alice: spoke 3 s
- bob: spoke 1 s, 2 chat messages

Everything that was said:
- alice: Hi, can you hear me?
- bob: mic check second line
- bob: Yes. We decided nothing yet.";
        assert_eq!(summary, expected);
    }

    #[test]
    fn short_russian_session_uses_russian_wording() {
        let utterances = vec![line("oleg", 0, 2_000, "Всем привет, начинаем")];
        let summary = heuristic_summary(&utterances, &[], HeuristicReason::Short);
        assert!(summary.starts_with("Автоматическая сводка (без ИИ: сессия слишком короткая)"));
        assert!(summary.contains("Всё, что было сказано:\n- oleg: Всем привет, начинаем"));
    }

    #[test]
    fn empty_input_gives_only_the_header() {
        for reason in [
            HeuristicReason::Short,
            HeuristicReason::NoProvider,
            HeuristicReason::ProviderFailed,
        ] {
            let summary = heuristic_summary(&[], &[], reason);
            assert!(!summary.contains('\n'), "{summary}");
            assert!(summary.starts_with("Automatic summary"));
        }
    }

    #[test]
    fn odd_input_never_panics() {
        let huge = "ab🎉cd… ".repeat(20_000) + &"я".repeat(100_000);
        let utterances = vec![
            line("", 0, 0, ""),
            line("emoji🎉", i64::MAX, i64::MIN, "🎉🎉🎉?!… …"),
            line("x", i64::MIN, i64::MAX, &huge),
            line("x", i64::MIN, i64::MAX, "overflow"),
            line("y", 10, 5, "\n\n.?!\u{0}"),
        ];
        let chat = vec![line("z", -1, -1, "ё!ё?ё…")];
        for reason in [HeuristicReason::Short, HeuristicReason::NoProvider] {
            let summary = heuristic_summary(&utterances, &chat, reason);
            // The 100 000 "я" make the content Russian.
            let participants: Vec<&str> = summary.lines().skip(2).take(6).collect();
            assert_eq!(participants[1], "- x: говорил(а) 2562047788015 ч 12 мин");
            assert!(
                participants.contains(&"- emoji🎉: говорил(а) 0 с"),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn speaking_time_sums_utterances_and_orders_participants() {
        let utterances = vec![
            line("dave", 0, 10_000, "a"),
            line("bob", 0, 30_000, "a"),
            line("dave", 20_000, 45_000, "a"),
            // Ends before it starts: counts as nothing, not as minus 50 s.
            line("bob", 100_000, 50_000, "a"),
            line("carol", 0, 5_000, "a"),
            line("anna", 0, 5_000, "a"),
        ];
        let chat = vec![
            line("carol", 0, 0, "a"),
            line("erin", 0, 0, "a"),
            line("erin", 0, 0, "a"),
            line("frank", 0, 0, "a"),
        ];
        let summary = heuristic_summary(&utterances, &chat, HeuristicReason::NoProvider);
        let expected = "\
Participants:
- dave: spoke 35 s
- bob: spoke 30 s
- carol: spoke 5 s, 1 chat message
- anna: spoke 5 s
- erin: 2 chat messages
- frank: 1 chat message";
        assert!(summary.contains(expected), "{summary}");
    }

    #[test]
    fn a_question_with_a_decision_marker_counts_only_as_a_question() {
        let utterances = vec![line(
            "alice",
            0,
            1_000,
            "Have we agreed on the deadline? Did we decide?!",
        )];
        let summary = heuristic_summary(&utterances, &[], HeuristicReason::NoProvider);
        assert!(!summary.contains("Decisions:"), "{summary}");
        assert!(summary.contains(
            "Open questions:\n- alice: Have we agreed on the deadline?\n- alice: Did we decide?!"
        ));
    }

    #[test]
    fn decisions_are_deduplicated_capped_at_five_and_cut_to_200_chars() {
        let long = format!("We agreed {}.", "that ".repeat(100));
        let mut text = "Let's go. Let's go. ".to_owned();
        for i in 0..10 {
            text.push_str(&format!("We will do item {i}. "));
        }
        let utterances = vec![line("a", 0, 1, &long), line("b", 1, 2, &text)];
        let summary = heuristic_summary(&utterances, &[], HeuristicReason::NoProvider);
        let decisions: Vec<&str> = summary
            .lines()
            .skip_while(|l| *l != "Decisions:")
            .skip(1)
            .take_while(|l| l.starts_with("- "))
            .collect();
        assert_eq!(decisions.len(), 5, "{summary}");
        assert_eq!(decisions[0].chars().count(), "- a: ".len() + 200);
        assert!(decisions[0].ends_with("that…"));
        assert_eq!(decisions[1], "- b: Let's go.");
        assert_eq!(decisions[2], "- b: We will do item 0.");
        assert_eq!(decisions[4], "- b: We will do item 2.");
    }

    #[test]
    fn decision_markers_match_whole_english_words_and_russian_stems() {
        assert!(is_decision("We'll ship it"));
        assert!(is_decision("we’ll ship it"));
        assert!(is_decision("Next ACTION ITEM: docs"));
        assert!(is_decision("Поставим задачу Ивану"));
        assert!(is_decision("Сроки сдвигаются"));
        assert!(!is_decision("The agreement is signed"));
        assert!(!is_decision("We willow"));
    }

    #[test]
    fn sentences_keep_terminators_and_decimals() {
        assert_eq!(
            sentences("Version 3.5 ships. Really?! Wait…\nnew line ... ok"),
            vec![
                "Version 3.5 ships.",
                "Really?!",
                "Wait…",
                "new line ...",
                "ok"
            ]
        );
    }

    #[test]
    fn topics_skip_stop_words_names_and_single_mentions_in_long_content() {
        let text = "alice said that the migration and the migration plan and the \
                    database really matter, yeah, okay, because the database is slow; \
                    pricing came up once. "
            .repeat(2);
        let filler = "one two three four five six seven eight nine ten";
        let utterances = [
            line("alice", 0, 1, &text),
            line("bob", 1, 2, filler),
            line("bob", 2, 3, "pricing pricing pricing"),
        ];
        let lines: Vec<&Line> = utterances.iter().collect();
        let names = name_words(&lines);
        assert_eq!(
            topics(&lines, &names),
            vec!["pricing", "migration", "database", "plan", "matter"]
        );
        let short = [line("bob", 0, 1, "Quarterly planning review")];
        let lines: Vec<&Line> = short.iter().collect();
        assert_eq!(
            topics(&lines, &name_words(&lines)),
            vec!["quarterly", "planning", "review"]
        );
    }

    #[test]
    fn durations_format_as_seconds_minutes_and_hours() {
        assert_eq!(format_duration(5_000, Lang::En), "5 s");
        assert_eq!(format_duration(65_000, Lang::En), "1 min 05 s");
        assert_eq!(format_duration(3_720_000, Lang::En), "1 h 02 min");
        assert_eq!(format_duration(59_400, Lang::En), "59 s");
        assert_eq!(format_duration(-5, Lang::En), "0 s");
        assert_eq!(format_duration(65_000, Lang::Ru), "1 мин 05 с");
        assert_eq!(format_duration(3_720_000, Lang::Ru), "1 ч 02 мин");
    }
}
