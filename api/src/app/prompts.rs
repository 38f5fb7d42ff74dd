//! A user's custom system prompt for the summaries they trigger.

use crate::agent::prompt::{self, DEFAULT_PROMPT};
use crate::db::{now_millis, Store};
use crate::error::Result;

/// The prompt in force for a user, and whether it is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptState {
    pub prompt: String,
    pub is_default: bool,
}

impl PromptState {
    fn default_prompt() -> Self {
        Self {
            prompt: DEFAULT_PROMPT.to_owned(),
            is_default: true,
        }
    }
}

/// # Errors
/// Internal errors.
pub async fn get(store: &Store, user_id: i64) -> Result<PromptState> {
    Ok(match store.ai_prompt(user_id).await? {
        Some(prompt) => PromptState {
            prompt,
            is_default: false,
        },
        None => PromptState::default_prompt(),
    })
}

/// Saves the user's prompt; the default text saves nothing (the user stays on the default,
/// and gets later improvements of it).
///
/// # Errors
/// 422 for a prompt outside 10..4000 characters; internal errors.
pub async fn put(store: &Store, user_id: i64, raw: &str) -> Result<PromptState> {
    let prompt = prompt::parse(raw)?;
    if prompt == DEFAULT_PROMPT {
        store.delete_ai_prompt(user_id).await?;
        return Ok(PromptState::default_prompt());
    }
    store.put_ai_prompt(user_id, &prompt, now_millis()).await?;
    Ok(PromptState {
        prompt,
        is_default: false,
    })
}

/// Back to the default.
///
/// # Errors
/// Internal errors.
pub async fn reset(store: &Store, user_id: i64) -> Result<PromptState> {
    store.delete_ai_prompt(user_id).await?;
    Ok(PromptState::default_prompt())
}

/// The system prompt for a summary `user_id` triggers.
///
/// # Errors
/// Internal errors.
pub async fn system_prompt_for(store: &Store, user_id: i64) -> Result<String> {
    Ok(get(store, user_id).await?.prompt)
}
