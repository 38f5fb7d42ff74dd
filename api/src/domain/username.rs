use super::ValidationError;

/// A username: 3–32 characters of `[A-Za-z0-9_.-]`.
///
/// Uniqueness is case-insensitive (see [`Username::key`]) so that `Alice` and `alice` can't
/// be two different people in the same room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    /// # Errors
    /// A [`ValidationError`] on `username` when the length or a character is out of bounds.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValidationError::new(
                "username",
                format!(
                    "must be {}-{} characters long, got {len}",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(ValidationError::new(
                "username",
                format!("may contain only letters A-Z, digits, '_', '.', '-' (found {bad:?})"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lookup key that makes uniqueness case-insensitive.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_at_both_length_bounds() {
        for ok in ["abc", "A_b.c-9", &"x".repeat(32)] {
            assert_eq!(
                Username::parse(ok).map(|u| u.to_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn rejects_short_long_unicode_and_sql_like_names_naming_the_field() {
        for bad in [
            "ab",
            &"x".repeat(33),
            "имя_пользователя",
            "bob'; DROP TABLE users;--",
            "a b c",
            "nul\0byte",
            "",
        ] {
            let err = Username::parse(bad).expect_err(bad);
            assert_eq!(err.field, "username");
        }
    }

    #[test]
    fn key_is_case_insensitive() {
        let a = Username::parse("Alice").expect("valid");
        let b = Username::parse("alice").expect("valid");
        assert_eq!(a.key(), b.key());
    }
}
