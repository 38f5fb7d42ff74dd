use super::ValidationError;

/// A password that passed the strength policy. It never leaves the process except as a
/// bcrypt hash, and `Debug` hides it so it can't end up in a log line.
#[derive(Clone)]
pub struct Password(String);

/// A short list of the passwords that top every leak. Length alone lets these through.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "iloveyou",
    "11111111",
    "00000000",
    "abcdefgh",
    "abc12345",
    "letmein1",
    "welcome1",
    "passw0rd",
    "admin123",
    "webcall1",
];

impl Password {
    pub const MIN_LEN: usize = 8;
    /// bcrypt only reads the first 72 bytes; a longer password would silently be truncated.
    pub const MAX_BYTES: usize = 72;

    /// # Errors
    /// A [`ValidationError`] on `password` when it is too short, too long, a well-known
    /// password, or the username itself.
    pub fn parse(raw: &str, username: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| Err(ValidationError::new("password", m));
        if raw.chars().count() < Self::MIN_LEN {
            return err("must be at least 8 characters long");
        }
        if raw.len() > Self::MAX_BYTES {
            return err("must be at most 72 bytes long");
        }
        if raw.contains('\0') {
            return err("must not contain NUL characters");
        }
        let lower = raw.to_lowercase();
        if COMMON.contains(&lower.as_str()) {
            return err("is one of the most common passwords; choose another");
        }
        if lower == username.to_lowercase() {
            return err("must not be the username");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_rejected_on_the_password_field() {
        for weak in ["short", "password", "PASSWORD1", "alice-in-chains"] {
            let user = if weak == "alice-in-chains" {
                weak
            } else {
                "bob"
            };
            let err = Password::parse(weak, user).expect_err(weak);
            assert_eq!(err.field, "password");
        }
        assert!(Password::parse(&"x".repeat(73), "bob").is_err());
    }

    #[test]
    fn a_reasonable_password_passes_and_is_hidden_from_debug() {
        let p = Password::parse("correct horse battery", "bob").expect("strong");
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
