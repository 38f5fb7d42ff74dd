//! The system prompt: the default, and the bounds of a user's own.

use crate::domain::ValidationError;

/// Asks for a brief, structured summary in the conversation's own language; the structure
/// matches the heuristic summary, so both read alike in Telegram.
pub const DEFAULT_PROMPT: &str = "You summarise meetings held on WebCall. You get the \
speaker-attributed voice transcript of one session (automatic speech recognition: expect \
misheard words) and the chat messages of the same period. Write a brief structured summary \
with these sections: Main topics; Decisions (with who owns each action item, if said); Open \
questions. Use short bullet points, leave out small talk, and do not invent anything that \
was not said. Write in the language the participants used.";

/// Bounds of a custom prompt, in characters.
pub const MIN_CHARS: usize = 10;
pub const MAX_CHARS: usize = 4000;

/// A custom prompt as the user typed it, trimmed.
///
/// # Errors
/// [`ValidationError`] on `prompt` when it is shorter than 10 or longer than 4000 characters.
pub fn parse(prompt: &str) -> Result<String, ValidationError> {
    let prompt = prompt.trim();
    let chars = prompt.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
        return Err(ValidationError::new(
            "prompt",
            format!("must be {MIN_CHARS} to {MAX_CHARS} characters long (got {chars})"),
        ));
    }
    Ok(prompt.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_outside_10_to_4000_characters_are_refused() {
        assert!(parse("too short").is_err());
        assert!(parse(&"x".repeat(4001)).is_err());
        assert_eq!(parse("  ten chars!  ").as_deref().ok(), Some("ten chars!"));
        // Characters, not bytes: 4000 Cyrillic letters are 8000 bytes and still fine.
        assert!(parse(&"я".repeat(4000)).is_ok());
    }
}
