use super::ValidationError;

/// A room's display name: 1–100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    pub const MAX_LEN: usize = 100;

    /// # Errors
    /// A [`ValidationError`] on `name` when it is blank, too long or has control characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "name",
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            RoomName::parse("  Standup ").map(|n| n.as_str().to_owned()),
            Ok("Standup".into())
        );
        assert_eq!(
            RoomName::parse("Планёрка 🎧").map(|n| n.as_str().to_owned()),
            Ok("Планёрка 🎧".into())
        );
        for bad in ["", "   ", "a\0b", "tab\there", &"n".repeat(101)] {
            assert_eq!(RoomName::parse(bad).expect_err(bad).field, "name");
        }
    }
}
