//! Telegram delivery: the Bot API client and the text it sends.
//!
//! - [`bot`]: `sendMessage` and `setWebhook` against `TELEGRAM_API_BASE`, and the webhook's
//!   update shape.
//! - [`format`]: HTML escaping and splitting under Telegram's message limit.
//!
//! Linking users to chats is the use case `app::telegram`.

pub mod bot;
pub mod format;
