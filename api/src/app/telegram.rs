//! Telegram: linking a user to their chat, and delivering summaries.
//!
//! Linking: `POST /telegram/link` stores the SHA-256 of a random, single-use token that
//! expires after [`LINK_TTL`] and returns `https://t.me/<bot>?start=<token>`. Telegram opens
//! the bot, which sends `/start <token>` to our webhook; the webhook (checked against
//! `TELEGRAM_WEBHOOK_SECRET`) sets the chat and clears the token in one statement. Only the
//! hash is stored, so a database leak can't complete anyone's link.
//!
//! Delivery: to the initiator's chat; without one, to the room's members who linked one;
//! never to anyone outside the room. `TELEGRAM_CHAT_ID` is a deprecated last resort.

use std::time::Duration;

use base64::Engine as _;
use rand::RngCore as _;
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::config::TelegramSettings;
use crate::db::{now_millis, Store};
use crate::error::{Error, Result};
use crate::telegram::bot::{Bot, ChatRef, Update};
use crate::telegram::format::summary_messages;

/// How long a link token can be used.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// A user's link as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkStatus {
    /// The bot knows the user's chat: summaries go there.
    Confirmed,
    /// A link token is out and unused.
    Pending,
    Absent,
}

/// What happened to a summary's Telegram delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Delivery {
    /// Sent to this many chats.
    Sent { chats: usize },
    /// No chat took it (blocked bot, Bot API down); the summary is stored all the same.
    Failed,
    /// Nobody in the room linked a chat.
    NotLinked,
    /// The server has no bot (`TELEGRAM_BOT_TOKEN`).
    Disabled,
    /// The stored summary of a session summarised before: not sent again.
    Repeat,
}

/// The bot and its settings.
#[derive(Debug)]
pub struct Telegram {
    bot: Bot,
    settings: TelegramSettings,
}

fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Telegram {
    /// # Errors
    /// The HTTP client can't be built.
    pub fn new(settings: TelegramSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            bot: Bot::new(&settings)?,
            settings,
        })
    }

    /// A new link token for `user_id` and the deep link that carries it.
    ///
    /// # Errors
    /// [`Error::NotEnabled`] without `TELEGRAM_BOT_USERNAME`; internal errors.
    pub async fn start_link(&self, store: &Store, user_id: i64) -> Result<(String, String)> {
        let Some(bot_name) = &self.settings.bot_username else {
            return Err(Error::NotEnabled(
                "Telegram linking is not enabled: the server has no TELEGRAM_BOT_USERNAME",
            ));
        };
        // 24 random bytes: 32 URL-safe characters, within Telegram's 64 for a start parameter.
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = now_millis();
        let ttl = i64::try_from(LINK_TTL.as_millis()).unwrap_or(i64::MAX);
        store
            .put_telegram_token(user_id, &token_hash(&token), now + ttl, now)
            .await?;
        let deep_link = format!("https://t.me/{bot_name}?start={token}");
        Ok((token, deep_link))
    }

    /// Whether the request carries the webhook secret. Without a configured secret the
    /// webhook accepts nothing.
    pub fn webhook_secret_matches(&self, header: Option<&[u8]>) -> bool {
        match (&self.settings.webhook_secret, header) {
            (Some(secret), Some(given)) => {
                bool::from(secret.expose_secret().as_bytes().ct_eq(given))
            }
            _ => false,
        }
    }

    /// Handles one update from the bot's webhook: `/start <token>` confirms a link. Replies
    /// to the chat either way, so the person in Telegram knows what happened.
    ///
    /// # Errors
    /// Internal errors (database); a bad token is not an error, only a reply.
    pub async fn handle_update(&self, store: &Store, update: Update) -> Result<Option<i64>> {
        let Some(message) = update.message else {
            return Ok(None);
        };
        let chat = message.chat.id;
        let text = message.text.unwrap_or_default();
        let mut words = text.split_whitespace();
        let command = words.next().unwrap_or("");
        // `/start@botname` is how the command looks in group chats.
        if command != "/start" && !command.starts_with("/start@") {
            return Ok(None);
        }
        let linked = match words.next() {
            Some(token) => {
                store
                    .confirm_telegram_link(&token_hash(token), chat, now_millis())
                    .await?
            }
            None => None,
        };
        let reply = match linked {
            Some(_) => "Linked: WebCall will send your meeting summaries here.",
            None => {
                "This link is invalid, used or expired. Open WebCall's settings and link \
                 Telegram again."
            }
        };
        if let Err(err) = self.bot.send_message(&ChatRef::Id(chat), reply).await {
            tracing::warn!(error = %err, "could not answer a Telegram /start");
        }
        if let Some(user_id) = linked {
            tracing::info!(user_id, "Telegram chat linked");
        }
        Ok(linked)
    }

    /// Sends a summary per the delivery rules (see the module docs).
    ///
    /// # Errors
    /// Internal errors (database); Bot API failures become [`Delivery::Failed`].
    pub async fn deliver(
        &self,
        store: &Store,
        room_id: i64,
        initiator: i64,
        title: &str,
        text: &str,
    ) -> Result<Delivery> {
        let own = store
            .telegram_link(initiator)
            .await?
            .and_then(|l| l.chat_id);
        let mut chats: Vec<ChatRef> = Vec::new();
        match own {
            Some(chat) => chats.push(ChatRef::Id(chat)),
            None => {
                for (_, chat) in store.member_telegram_chats(room_id).await? {
                    // Two members may have linked the same (group) chat: send it once.
                    let chat = ChatRef::Id(chat);
                    if !chats.contains(&chat) {
                        chats.push(chat);
                    }
                }
            }
        }
        if chats.is_empty() {
            if let Some(fallback) = &self.settings.fallback_chat {
                tracing::warn!(
                    room_id,
                    "nobody in the room linked Telegram: sending to TELEGRAM_CHAT_ID, which is \
                     deprecated (everyone in that chat reads this room's summary); ask users \
                     to link their own chats"
                );
                chats.push(ChatRef::parse(fallback));
            }
        }
        if chats.is_empty() {
            return Ok(Delivery::NotLinked);
        }
        let messages = summary_messages(title, text);
        let mut sent = 0;
        for chat in &chats {
            let mut ok = true;
            for message in &messages {
                if let Err(err) = self.bot.send_message(chat, message).await {
                    tracing::warn!(room_id, error = %err, "could not send a summary to Telegram");
                    ok = false;
                    break;
                }
            }
            if ok {
                sent += 1;
            }
        }
        Ok(if sent > 0 {
            Delivery::Sent { chats: sent }
        } else {
            Delivery::Failed
        })
    }
}

/// The user's link status.
///
/// # Errors
/// Internal errors.
pub async fn status(store: &Store, user_id: i64) -> Result<LinkStatus> {
    let link = store.telegram_link(user_id).await?;
    Ok(match link {
        Some(l) if l.chat_id.is_some() => LinkStatus::Confirmed,
        Some(l) if l.token_expires_at.is_some_and(|t| t > now_millis()) => LinkStatus::Pending,
        _ => LinkStatus::Absent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_their_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
