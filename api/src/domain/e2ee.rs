//! Values of the end-to-end encryption scheme the server handles without understanding
//! them: key ids, public keys, and the opaque fields of an encrypted DM.

use super::ValidationError;

/// A key id chosen by the client: 1–64 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(String);

impl KeyId {
    pub const MAX_LEN: usize = 64;

    /// # Errors
    /// A [`ValidationError`] on `field`.
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, ValidationError> {
        let ok_len = (1..=Self::MAX_LEN).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok_len && ok_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                field,
                "must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ECDH P-256 public key as JWK, checked to be a point on the curve and stored in a
/// canonical form (`crv`, `kty`, `x`, `y`; WebCrypto's `ext` and `key_ops` dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk(String);

impl PublicJwk {
    /// # Errors
    /// A [`ValidationError`] on `jwk` for anything but a P-256 public key; a JWK that
    /// carries the private part (`d`) is refused so it can't be stored by mistake.
    pub fn parse(value: &serde_json::Value) -> Result<Self, ValidationError> {
        let err = |m: &str| ValidationError::new("jwk", m);
        let obj = value
            .as_object()
            .ok_or_else(|| err("must be a JSON object (a JWK)"))?;
        if obj.contains_key("d") {
            return Err(err(
                "contains the private key (\"d\"); publish only the public key",
            ));
        }
        if obj.get("kty").and_then(|v| v.as_str()) != Some("EC") {
            return Err(err("kty must be \"EC\""));
        }
        if obj.get("crv").and_then(|v| v.as_str()) != Some("P-256") {
            return Err(err("crv must be \"P-256\""));
        }
        let (Some(x), Some(y)) = (
            obj.get("x").and_then(|v| v.as_str()),
            obj.get("y").and_then(|v| v.as_str()),
        ) else {
            return Err(err("x and y must be base64url strings"));
        };
        let canonical =
            serde_json::json!({"crv": "P-256", "kty": "EC", "x": x, "y": y}).to_string();
        p256::PublicKey::from_jwk_str(&canonical)
            .map_err(|_| err("x and y are not a point on the P-256 curve"))?;
        Ok(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An opaque, base64 or base64url encoded field (ciphertext, IV): bounded and of the
/// base64 alphabet, and otherwise stored exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opaque(String);

impl Opaque {
    /// # Errors
    /// A [`ValidationError`] on `field` when empty, longer than `max` or not base64 text.
    pub fn parse(raw: String, field: &'static str, max: usize) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > max {
            return Err(ValidationError::new(
                field,
                format!("must be 1-{max} characters of base64"),
            ));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'='))
        {
            return Err(ValidationError::new(
                field,
                "must be base64 or base64url text",
            ));
        }
        Ok(Self(raw))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_p256_public_keys_on_the_curve_are_accepted() {
        // The P-256 base point.
        let good = json!({"kty": "EC", "crv": "P-256", "ext": true, "key_ops": [],
            "x": "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
            "y": "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"});
        let jwk = PublicJwk::parse(&good).expect("valid");
        assert!(!jwk.as_str().contains("ext"));
        let mut private = good.clone();
        private["d"] = json!("AAAA");
        let mut off_curve = good.clone();
        off_curve["y"] = json!("T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfA");
        let mut rsa = good.clone();
        rsa["kty"] = json!("RSA");
        for bad in [
            private,
            off_curve,
            rsa,
            json!("key"),
            json!({"kty": "EC", "crv": "P-256"}),
        ] {
            assert_eq!(
                PublicJwk::parse(&bad).expect_err("bad").field,
                "jwk",
                "{bad}"
            );
        }
    }
}
