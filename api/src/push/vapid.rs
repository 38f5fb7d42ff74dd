//! VAPID (RFC 8292): the server's P-256 key that push services check on every push, and the
//! `Authorization: vapid t=…, k=…` header signed with it.
//!
//! The key is `VAPID_PRIVATE_KEY` (base64url of the 32-byte scalar, the format of the
//! `web-push` tools), or generated once into `DATA_DIR/vapid_private_key`. Subscriptions are
//! bound to the public key, so changing it silently orphans them: nodes of one deployment
//! must share it (set the variables, as for `JWT_SECRET`).

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::secrets::{self, SecretError, SecretOrigin};

/// How long a VAPID token is valid (RFC 8292 allows up to 24 h).
const TOKEN_TTL_SECS: u64 = 12 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    #[error("VAPID_PRIVATE_KEY: {0}")]
    BadKey(String),
    #[error("VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY")]
    Mismatch,
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Decodes base64url with or without padding (also accepts standard padding).
pub fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

pub struct VapidKeys {
    encoding: EncodingKey,
    /// base64url of the uncompressed public point: the browser's `applicationServerKey`.
    public_b64: String,
    subject: String,
}

impl std::fmt::Debug for VapidKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKeys")
            .field("public", &self.public_b64)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

impl VapidKeys {
    /// The configured key, or the one kept in `data_dir` (generated on first start).
    ///
    /// # Errors
    /// [`VapidError`] for an unusable key or an unwritable `data_dir`.
    pub fn load(
        private: Option<&SecretString>,
        public: Option<&str>,
        subject: &str,
        data_dir: &std::path::Path,
    ) -> Result<(Self, SecretOrigin), VapidError> {
        let (secret, origin) =
            secrets::load_or_generate(private, data_dir, "vapid_private_key", 32)?;
        let keys = Self::from_private(secret.expose_secret(), subject)?;
        if let Some(public) = public {
            if decode_b64url(public) != decode_b64url(&keys.public_b64) {
                return Err(VapidError::Mismatch);
            }
        }
        Ok((keys, origin))
    }

    /// From the 32-byte scalar as base64url (the usual format) or hex (what `DATA_DIR` keeps).
    ///
    /// # Errors
    /// [`VapidError::BadKey`] when it is not a P-256 private key.
    pub fn from_private(text: &str, subject: &str) -> Result<Self, VapidError> {
        let text = text.trim();
        let raw = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| VapidError::BadKey(e.to_string()))?
        } else {
            decode_b64url(text).ok_or_else(|| VapidError::BadKey("not base64url".to_owned()))?
        };
        let secret = p256::SecretKey::from_slice(&raw)
            .map_err(|_| VapidError::BadKey("not a 32-byte P-256 scalar".to_owned()))?;
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| VapidError::BadKey(e.to_string()))?;
        let point = secret.public_key().to_sec1_bytes();
        Ok(Self {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            public_b64: URL_SAFE_NO_PAD.encode(point),
            subject: subject.to_owned(),
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` header for a push to `endpoint` (audience = its origin).
    ///
    /// # Errors
    /// The signing error (never expected with a valid key).
    pub fn authorization(
        &self,
        endpoint: &reqwest::Url,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let aud = endpoint.origin().ascii_serialization();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            aud: &aud,
            exp: now + TOKEN_TTL_SECS,
            sub: &self.subject,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)?;
        Ok(format!("vapid t={token}, k={}", self.public_b64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_and_the_public_key_is_an_uncompressed_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, origin) = VapidKeys::load(None, None, "mailto:a@b.c", dir.path()).expect("gen");
        assert!(matches!(origin, SecretOrigin::Generated(_)));
        let point = decode_b64url(first.public_key()).expect("b64");
        assert_eq!((point.len(), point[0]), (65, 4));
        let (again, _) = VapidKeys::load(None, None, "mailto:a@b.c", dir.path()).expect("reload");
        assert_eq!(first.public_key(), again.public_key());
    }

    #[test]
    fn a_public_key_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = URL_SAFE_NO_PAD.encode([4u8; 65]);
        let err =
            VapidKeys::load(None, Some(&other), "mailto:a@b.c", dir.path()).expect_err("mismatch");
        assert!(matches!(err, VapidError::Mismatch));
    }
}
