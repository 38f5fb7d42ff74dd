//! A minimal Bot API client: the two methods WebCall uses.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::TelegramSettings;

/// One Bot API request's limit; delivery happens after the summary is stored, so a slow
/// Telegram only delays the notification.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A 429 asking us to wait longer than this is not retried.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("no answer from the Bot API: {0}")]
    Unreachable(String),
    #[error("the Bot API refused {method}: {description}")]
    Refused {
        method: &'static str,
        description: String,
    },
}

/// Where a message goes: a chat id, or `@channelname` (only from `TELEGRAM_CHAT_ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ChatRef {
    Id(i64),
    Name(String),
}

impl ChatRef {
    pub fn parse(raw: &str) -> Self {
        raw.parse()
            .map_or_else(|_| ChatRef::Name(raw.to_owned()), ChatRef::Id)
    }
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// An incoming update, as far as WebCall reads it.
#[derive(Debug, Deserialize)]
pub struct Update {
    #[serde(default)]
    pub message: Option<IncomingMessage>,
}

#[derive(Debug, Deserialize)]
pub struct IncomingMessage {
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Chat {
    pub id: i64,
}

#[derive(Clone)]
pub struct Bot {
    http: reqwest::Client,
    api_base: String,
    token: SecretString,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token: it is the bot's password.
        f.debug_struct("Bot")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl Bot {
    /// # Errors
    /// A TLS backend that can't start (the HTTP client can't be built).
    pub fn new(settings: &TelegramSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()?,
            api_base: settings.api_base.clone(),
            token: settings.bot_token.clone(),
        })
    }

    /// Sends one HTML-formatted message (see [`super::format`]).
    ///
    /// # Errors
    /// [`BotError`] when the Bot API can't be reached or refuses (blocked bot, bad chat).
    pub async fn send_message(&self, chat: &ChatRef, html: &str) -> Result<(), BotError> {
        let body = json!({
            "chat_id": chat,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        self.call("sendMessage", &body).await
    }

    /// Points the bot's updates at `url`, with the secret Telegram will send back in
    /// `X-Telegram-Bot-Api-Secret-Token`.
    ///
    /// # Errors
    /// [`BotError`] when the Bot API can't be reached or refuses the URL.
    pub async fn set_webhook(&self, url: &str, secret: &SecretString) -> Result<(), BotError> {
        let body = json!({
            "url": url,
            "secret_token": secret.expose_secret(),
            "allowed_updates": ["message"],
        });
        self.call("setWebhook", &body).await
    }

    async fn call(&self, method: &'static str, body: &serde_json::Value) -> Result<(), BotError> {
        let url = format!(
            "{}/bot{}/{method}",
            self.api_base,
            self.token.expose_secret()
        );
        for attempt in 0..2 {
            let response = self
                .http
                .post(&url)
                .json(body)
                .send()
                .await
                // reqwest's message can contain the URL, and so the token: keep only the kind.
                .map_err(|e| BotError::Unreachable(describe(&e)))?;
            let answer: Answer = response
                .json()
                .await
                .map_err(|e| BotError::Unreachable(describe(&e)))?;
            if answer.ok {
                return Ok(());
            }
            let wait = answer
                .parameters
                .and_then(|p| p.retry_after)
                .map(Duration::from_secs);
            match wait {
                Some(wait) if attempt == 0 && wait <= MAX_RETRY_AFTER => {
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    return Err(BotError::Refused {
                        method,
                        description: answer.description.unwrap_or_default(),
                    })
                }
            }
        }
        Err(BotError::Refused {
            method,
            description: "rate limited".to_owned(),
        })
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else if err.is_decode() {
        "the answer was not Bot API JSON".to_owned()
    } else {
        "request failed".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_are_numbers_and_channels_are_names() {
        assert_eq!(ChatRef::parse("-1001234"), ChatRef::Id(-1_001_234));
        assert_eq!(
            ChatRef::parse("@team_channel"),
            ChatRef::Name("@team_channel".to_owned())
        );
        assert_eq!(
            serde_json::to_value(ChatRef::Id(42)).ok(),
            Some(serde_json::json!(42))
        );
    }
}
