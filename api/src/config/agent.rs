//! The AI agent's settings: the OpenAI-compatible model that writes summaries, the summary
//! limits, and the Telegram bot that delivers them. All optional: without them summaries are
//! written by the server's own heuristic and stay in WebCall.

use std::time::Duration;

use secrecy::SecretString;

use super::{invalid, parse_or, ConfigError};

/// The public OpenAI API; `AI_BASE_URL` points elsewhere (llama.cpp, vLLM, Ollama: all speak
/// the same chat-completions protocol).
pub const DEFAULT_AI_BASE_URL: &str = "https://api.openai.com/v1";
/// The public Bot API; `TELEGRAM_API_BASE` points elsewhere (a local Bot API server, tests).
pub const DEFAULT_TELEGRAM_API_BASE: &str = "https://api.telegram.org";

/// The OpenAI-compatible endpoint and models. Present only with `AI_SUMMARY_ENABLED=true`.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// `AI_BASE_URL`, without a trailing slash.
    pub base_url: String,
    /// `OPENAI_API_KEY`: sent as a bearer token when set (local servers often need none).
    pub api_key: Option<SecretString>,
    /// `AI_MODEL_PROVIDER` (`openai:gpt-4o-mini` or just `gpt-4o-mini`): the model name.
    pub model: String,
    /// `AI_MODEL_FALLBACK`: tried when the main model fails twice.
    pub fallback: Option<String>,
    /// `AI_TIMEOUT_SECS`: one request's limit.
    pub timeout: Duration,
    /// `AI_MAX_TOKENS`: the longest answer a summary may cost (default 1024).
    pub max_tokens: u32,
    /// `AI_MAX_CONCURRENT`: model requests in flight at once on this node (default 2); more
    /// wait their turn.
    pub max_concurrent: usize,
    /// `AI_SUMMARIES_PER_USER_PER_HOUR`: model-written summaries one user may trigger per
    /// hour (default 30); past it, summaries are the heuristic's.
    pub per_user_per_hour: u32,
}

#[derive(Debug, Clone)]
pub struct SummarySettings {
    /// `None`: summaries are the server's heuristic extract.
    pub model: Option<ModelSettings>,
    /// `AI_SUMMARY_MAX_MESSAGES`: chat messages that go into a summary (the newest).
    pub max_messages: u32,
    /// `AI_SUMMARY_MIN_CHARS`: less content than this is summarised without the model.
    pub min_chars: usize,
    /// `AI_SUMMARY_FLUSH_SECS`: how long a summary waits for speech still being transcribed.
    pub flush_timeout: Duration,
}

/// The Telegram bot. Present only with `TELEGRAM_BOT_TOKEN`.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub bot_token: SecretString,
    /// `TELEGRAM_BOT_USERNAME`: for the `https://t.me/<bot>?start=<token>` link.
    pub bot_username: Option<String>,
    /// `TELEGRAM_WEBHOOK_SECRET`: what the Bot API sends in
    /// `X-Telegram-Bot-Api-Secret-Token`; without it the webhook is off.
    pub webhook_secret: Option<SecretString>,
    /// `TELEGRAM_API_BASE`, without a trailing slash.
    pub api_base: String,
    /// `TELEGRAM_CHAT_ID` (deprecated): the last resort when nobody in the room linked a chat.
    pub fallback_chat: Option<String>,
}

fn http_url(var: &'static str, raw: Option<String>, default: &str) -> Result<String, ConfigError> {
    let url = raw.unwrap_or_else(|| default.to_owned());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid(
            var,
            format!("expected an http(s):// URL, got {url:?}"),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `openai:gpt-4o-mini` -> `gpt-4o-mini`. Other names are taken whole, so a local model such
/// as `llama3.1:8b` keeps its colon.
fn model_name(raw: &str) -> &str {
    raw.strip_prefix("openai:").unwrap_or(raw).trim()
}

impl SummarySettings {
    /// # Errors
    /// The first `AI_*` variable whose value can't be used.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let enabled = parse_or(
            "AI_SUMMARY_ENABLED",
            get("AI_SUMMARY_ENABLED"),
            false,
            "true or false",
        )?;
        let model = if enabled {
            let Some(provider) = get("AI_MODEL_PROVIDER") else {
                return Err(invalid(
                    "AI_MODEL_PROVIDER",
                    "must name a model (e.g. openai:gpt-4o-mini) when AI_SUMMARY_ENABLED=true",
                ));
            };
            let model = model_name(&provider).to_owned();
            if model.is_empty() {
                return Err(invalid("AI_MODEL_PROVIDER", "the model name is empty"));
            }
            let timeout_secs = parse_or(
                "AI_TIMEOUT_SECS",
                get("AI_TIMEOUT_SECS"),
                60u64,
                "a number of seconds",
            )?;
            if !(1..=600).contains(&timeout_secs) {
                return Err(invalid("AI_TIMEOUT_SECS", "must be between 1 and 600"));
            }
            let max_tokens = parse_or(
                "AI_MAX_TOKENS",
                get("AI_MAX_TOKENS"),
                1024u32,
                "a number of tokens",
            )?;
            if !(16..=65_536).contains(&max_tokens) {
                return Err(invalid("AI_MAX_TOKENS", "must be between 16 and 65536"));
            }
            let max_concurrent = parse_or(
                "AI_MAX_CONCURRENT",
                get("AI_MAX_CONCURRENT"),
                2usize,
                "a number of requests",
            )?;
            if !(1..=256).contains(&max_concurrent) {
                return Err(invalid("AI_MAX_CONCURRENT", "must be between 1 and 256"));
            }
            let per_user_per_hour = parse_or(
                "AI_SUMMARIES_PER_USER_PER_HOUR",
                get("AI_SUMMARIES_PER_USER_PER_HOUR"),
                30u32,
                "a number of summaries",
            )?;
            if !(1..=10_000).contains(&per_user_per_hour) {
                return Err(invalid(
                    "AI_SUMMARIES_PER_USER_PER_HOUR",
                    "must be between 1 and 10000",
                ));
            }
            Some(ModelSettings {
                base_url: http_url("AI_BASE_URL", get("AI_BASE_URL"), DEFAULT_AI_BASE_URL)?,
                api_key: get("OPENAI_API_KEY").map(SecretString::from),
                model,
                fallback: get("AI_MODEL_FALLBACK")
                    .map(|f| model_name(&f).to_owned())
                    .filter(|f| !f.is_empty()),
                timeout: Duration::from_secs(timeout_secs),
                max_tokens,
                max_concurrent,
                per_user_per_hour,
            })
        } else {
            None
        };
        let max_messages = parse_or(
            "AI_SUMMARY_MAX_MESSAGES",
            get("AI_SUMMARY_MAX_MESSAGES"),
            200u32,
            "a number of messages",
        )?;
        if !(1..=10_000).contains(&max_messages) {
            return Err(invalid(
                "AI_SUMMARY_MAX_MESSAGES",
                "must be between 1 and 10000",
            ));
        }
        let min_chars = parse_or(
            "AI_SUMMARY_MIN_CHARS",
            get("AI_SUMMARY_MIN_CHARS"),
            60usize,
            "a number of characters",
        )?;
        let flush_secs = parse_or(
            "AI_SUMMARY_FLUSH_SECS",
            get("AI_SUMMARY_FLUSH_SECS"),
            20u64,
            "a number of seconds",
        )?;
        if flush_secs > 300 {
            return Err(invalid("AI_SUMMARY_FLUSH_SECS", "must be at most 300"));
        }
        Ok(Self {
            model,
            max_messages,
            min_chars,
            flush_timeout: Duration::from_secs(flush_secs),
        })
    }
}

impl TelegramSettings {
    /// `None` without `TELEGRAM_BOT_TOKEN`.
    ///
    /// # Errors
    /// The first `TELEGRAM_*` variable whose value can't be used.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let Some(token) = get("TELEGRAM_BOT_TOKEN") else {
            for var in ["TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_BOT_USERNAME"] {
                if get(var).is_some() {
                    return Err(invalid(
                        "TELEGRAM_BOT_TOKEN",
                        format!("must be set when {var} is"),
                    ));
                }
            }
            return Ok(None);
        };
        // The token goes into request paths: `123456:ABC-def_…`.
        let well_formed = token.contains(':')
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'));
        if !well_formed {
            return Err(invalid(
                "TELEGRAM_BOT_TOKEN",
                "expected a bot token like 123456789:AA… from @BotFather",
            ));
        }
        let webhook_secret = get("TELEGRAM_WEBHOOK_SECRET");
        if let Some(secret) = &webhook_secret {
            // The Bot API's own rule for secret_token.
            let ok = (1..=256).contains(&secret.len())
                && secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
            if !ok || secret.len() < 16 {
                return Err(invalid(
                    "TELEGRAM_WEBHOOK_SECRET",
                    "16-256 characters of A-Z, a-z, 0-9, _ and -",
                ));
            }
        }
        let bot_username =
            get("TELEGRAM_BOT_USERNAME").map(|u| u.trim_start_matches('@').to_owned());
        if let Some(name) = &bot_username {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(
                    "TELEGRAM_BOT_USERNAME",
                    "expected the bot's username, e.g. webcall_bot",
                ));
            }
        }
        let fallback_chat = get("TELEGRAM_CHAT_ID");
        if let Some(chat) = &fallback_chat {
            if chat.parse::<i64>().is_err() && !chat.starts_with('@') {
                return Err(invalid(
                    "TELEGRAM_CHAT_ID",
                    "expected a numeric chat id or @channelname",
                ));
            }
        }
        Ok(Some(Self {
            bot_token: SecretString::from(token),
            bot_username,
            webhook_secret: webhook_secret.map(SecretString::from),
            api_base: http_url(
                "TELEGRAM_API_BASE",
                get("TELEGRAM_API_BASE"),
                DEFAULT_TELEGRAM_API_BASE,
            )?,
            fallback_chat,
        }))
    }
}
