//! Chat completions from any OpenAI-compatible endpoint (OpenAI, llama.cpp's server, vLLM,
//! Ollama): one request shape, `POST {base}/chat/completions`.
//!
//! [`ModelChain::complete`] is the policy: the main model, one retry after a short pause for
//! failures that may pass (timeouts, refused connections, 429, 5xx), then the fallback model
//! the same way. The caller turns a final failure into the heuristic summary.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use tokio::sync::Semaphore;

use crate::config::ModelSettings;

/// Pause before the one retry of a model.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no answer from the model endpoint: {0}")]
    Unreachable(String),
    #[error("the model endpoint answered {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("the model endpoint's answer has no text: {0}")]
    BadAnswer(String),
}

impl ProviderError {
    /// Whether trying the same model again may help.
    fn is_transient(&self) -> bool {
        match self {
            ProviderError::Unreachable(_) => true,
            ProviderError::Status { status, .. } => *status == 429 || *status >= 500,
            ProviderError::BadAnswer(_) => false,
        }
    }
}

/// What a model wrote, and which model it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub model: String,
    pub text: String,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    /// The operator pays per token: a summary's answer is bounded.
    max_tokens: u32,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<AnswerMessage>,
}

#[derive(Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<String>,
}

/// The configured endpoint with its main and fallback model, and what one node may spend on
/// it: requests in flight at once. (Summaries per user per hour are counted in the database,
/// where every node sees them: `Store::take_ai_summary_budget`.)
#[derive(Debug, Clone)]
pub struct ModelChain {
    http: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    models: Vec<String>,
    max_tokens: u32,
    in_flight: Arc<Semaphore>,
    per_user_per_hour: u32,
}

impl ModelChain {
    /// # Errors
    /// A TLS backend that can't start (the HTTP client can't be built).
    pub fn new(settings: &ModelSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()?;
        let mut models = vec![settings.model.clone()];
        models.extend(
            settings
                .fallback
                .iter()
                .filter(|f| **f != settings.model)
                .cloned(),
        );
        Ok(Self {
            http,
            url: format!("{}/chat/completions", settings.base_url),
            api_key: settings.api_key.clone(),
            models,
            max_tokens: settings.max_tokens,
            in_flight: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            per_user_per_hour: settings.per_user_per_hour.max(1),
        })
    }

    /// `AI_SUMMARIES_PER_USER_PER_HOUR`: model-written summaries one user may have per hour.
    pub fn per_user_per_hour(&self) -> u32 {
        self.per_user_per_hour
    }

    /// The main model, then the fallback; each gets one retry for transient failures.
    ///
    /// # Errors
    /// The last model's last error when none of them answered.
    pub async fn complete(&self, system: &str, user: &str) -> Result<Completion, ProviderError> {
        // Waits its turn behind `AI_MAX_CONCURRENT` others; the semaphore is never closed.
        let _turn = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ProviderError::Unreachable("shutting down".to_owned()))?;
        let mut last = ProviderError::Unreachable("no model configured".to_owned());
        for model in &self.models {
            for attempt in 0..2 {
                if attempt > 0 {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                match self.once(model, system, user).await {
                    Ok(text) => {
                        return Ok(Completion {
                            model: model.clone(),
                            text,
                        })
                    }
                    Err(err) => {
                        tracing::warn!(model, attempt, error = %err, "AI summary request failed");
                        let retry = err.is_transient();
                        last = err;
                        if !retry {
                            break;
                        }
                    }
                }
            }
        }
        Err(last)
    }

    async fn once(&self, model: &str, system: &str, user: &str) -> Result<String, ProviderError> {
        let body = Request {
            model,
            max_tokens: self.max_tokens,
            messages: [
                Message {
                    role: "system",
                    content: system,
                },
                Message {
                    role: "user",
                    content: user,
                },
            ],
        };
        let mut request = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            // The endpoint's own words help the operator (bad key, unknown model); keep them
            // short for the log.
            let detail: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(ProviderError::Status {
                status: status.as_u16(),
                detail,
            });
        }
        let answer: Response = response
            .json()
            .await
            .map_err(|e| ProviderError::BadAnswer(e.to_string()))?;
        let text = answer
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message)
            .and_then(|m| m.content)
            .map(|t| strip_reasoning(&t))
            .unwrap_or_default();
        if text.is_empty() {
            return Err(ProviderError::BadAnswer("empty content".to_owned()));
        }
        Ok(text)
    }
}

/// Drops a `<think>…</think>` block that reasoning models served by llama.cpp or Ollama put
/// before their answer: it is the model's scratch work, not the summary.
fn strip_reasoning(text: &str) -> String {
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix("<think>") {
        if let Some((_, answer)) = rest.split_once("</think>") {
            return answer.trim().to_owned();
        }
    }
    trimmed.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_blocks_are_removed_and_plain_answers_kept() {
        assert_eq!(
            strip_reasoning("<think>hmm\nok</think>\n\nSummary"),
            "Summary"
        );
        assert_eq!(strip_reasoning("  Summary \n"), "Summary");
        assert_eq!(
            strip_reasoning("<think>never closed"),
            "<think>never closed"
        );
    }

    #[test]
    fn only_timeouts_rate_limits_and_server_errors_are_retried() {
        let status = |status| ProviderError::Status {
            status,
            detail: String::new(),
        };
        assert!(ProviderError::Unreachable("timeout".into()).is_transient());
        assert!(status(429).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(401).is_transient());
        assert!(!status(404).is_transient());
        assert!(!ProviderError::BadAnswer("x".into()).is_transient());
    }
}
