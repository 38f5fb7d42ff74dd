use super::ValidationError;

/// The text of a chat message or plain DM: not blank, at most [`ChatText::MAX_CHARS`]
/// characters, no control characters other than newline and tab. Kept exactly as sent (no
/// trimming, no HTML escaping): it is text, and clients render it as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    pub const MAX_CHARS: usize = 4000;

    /// # Errors
    /// A [`ValidationError`] on `field` when the text is blank, too long or has control
    /// characters.
    pub fn parse(raw: String, field: &'static str) -> Result<Self, ValidationError> {
        if raw.trim().is_empty() {
            return Err(ValidationError::new(
                field,
                "must not be empty or only whitespace",
            ));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters long", Self::MAX_CHARS),
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(ValidationError::new(
                field,
                "must not contain control characters other than newline and tab",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_verbatim_but_blank_long_and_control_text_is_refused() {
        let html = "<b>hi</b> & <script>alert(1)</script>\n";
        assert_eq!(
            ChatText::parse(html.to_owned(), "text").map(ChatText::into_inner),
            Ok(html.to_owned())
        );
        for bad in ["", "  \n\t ", "bell\u{7}", &"x".repeat(4001)] {
            assert_eq!(
                ChatText::parse(bad.to_owned(), "text")
                    .expect_err(bad)
                    .field,
                "text"
            );
        }
    }
}
