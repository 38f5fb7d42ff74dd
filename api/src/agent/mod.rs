//! The AI agent's writing side: turning one session's transcript and chat into a summary.
//!
//! - [`input`]: the session's content and the user message a model reads.
//! - [`provider`]: OpenAI-compatible chat completions with retry and fallback model.
//! - [`heuristic`]: the summary the server writes itself when no model is used.
//! - [`prompt`]: the default system prompt and the bounds of a custom one.
//!
//! The use case that ties them to sessions, storage and delivery is `app::summaries`.

pub mod heuristic;
pub mod input;
pub mod prompt;
pub mod provider;
