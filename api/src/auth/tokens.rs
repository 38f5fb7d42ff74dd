use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::db::now_millis;
use crate::error::{Error, Result};

/// What a WebCall token says: who the user is, until when, which token it is and which of
/// the user's token generations it belongs to. Every field is required: a token from before
/// `jti` and `ver` existed is refused (its user signs in again), so every accepted token
/// can be revoked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string per RFC 7519.
    pub sub: String,
    pub name: String,
    pub iat: i64,
    pub exp: i64,
    /// This token's id: `POST /auth/logout` puts it on the deny list until `exp`.
    pub jti: String,
    /// The user's `token_version` when the token was issued; a password change bumps it,
    /// which ends every older token.
    pub ver: i64,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// Issues and checks HS256 tokens. Only HS256 is accepted, so a token can't pick a weaker
/// algorithm (or `none`) for itself.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenService {
    pub fn new(secret: &SecretString, ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl,
        }
    }

    /// A token for `user_id` of token generation `version`.
    ///
    /// # Errors
    /// [`Error::Internal`] when signing fails.
    pub fn issue(&self, user_id: i64, username: &str, version: i64) -> Result<String> {
        let iat = now_millis() / 1000;
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id.to_string(),
            name: username.to_owned(),
            iat,
            exp: iat.saturating_add(ttl),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            ver: version,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(Error::internal)
    }

    /// # Errors
    /// [`Error::Unauthorized`] for an expired, forged or malformed token.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| Error::Unauthorized)
    }
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(secret: &str, ttl: u64) -> TokenService {
        TokenService::new(
            &SecretString::from(secret.to_owned()),
            Duration::from_secs(ttl),
        )
    }

    #[test]
    fn a_token_verifies_with_its_own_secret_only() {
        let a = service(&"a".repeat(32), 60);
        let token = a.issue(7, "alice", 3).expect("issue");
        let claims = a.verify(&token).expect("valid");
        assert_eq!((claims.user_id(), claims.name.as_str()), (Some(7), "alice"));
        assert_eq!(claims.ver, 3);
        let other = a
            .verify(&a.issue(7, "alice", 3).expect("issue"))
            .expect("valid");
        assert_ne!(claims.jti, other.jti, "every token has its own id");
        assert!(matches!(
            service(&"b".repeat(32), 60).verify(&token),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn a_token_from_before_jti_and_ver_is_refused() {
        let secret = "a".repeat(32);
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "7", "name": "alice", "iat": 0, "exp": 4_000_000_000i64}),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode");
        assert!(matches!(
            service(&secret, 60).verify(&old),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let a = service(&"a".repeat(32), 60);
        // {"alg":"none"} . {"sub":"1","name":"x","iat":0,"exp":9999999999} . (no signature)
        let forged =
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIiwibmFtZSI6IngiLCJpYXQiOjAsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(matches!(a.verify(forged), Err(Error::Unauthorized)));
    }
}
