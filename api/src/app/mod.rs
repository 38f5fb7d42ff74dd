//! The application layer: use cases and the rules they enforce. HTTP handlers parse input,
//! call one function here and shape the answer; they hold no business rules.

pub mod accounts;
pub mod chat;
pub mod dm;
pub mod keys;
pub mod permissions;
pub mod prompts;
pub mod rooms;
pub mod summaries;
pub mod telegram;
pub mod transcription;
