//! Users' public keys for end-to-end encrypted DMs.

use crate::db::{now_millis, KeyRow, Store, StoreError, UserRow};
use crate::domain::{KeyId, PublicJwk, Username};
use crate::error::{Error, Result};

/// Publishes a key and makes it the user's current one. Key ids are immutable: publishing
/// the same id with the same key again is a no-op, with another key a conflict, so a message
/// encrypted to a key id always means the same key. Returns the key and whether it is new.
///
/// # Errors
/// 422 for a bad key id or JWK, 409 for a reused key id.
pub async fn publish(
    store: &Store,
    user_id: i64,
    key_id: &str,
    jwk: &serde_json::Value,
) -> Result<(KeyRow, bool)> {
    let key_id = KeyId::parse(key_id, "key_id")?;
    let jwk = PublicJwk::parse(jwk)?;
    let conflict = || Error::Conflict {
        code: "key_id_taken",
        message: format!(
            "key id {} already names another key; rotate to a new key id",
            key_id.as_str()
        ),
    };
    if let Some(existing) = store.key(user_id, key_id.as_str()).await? {
        return if existing.jwk == jwk.as_str() {
            Ok((existing, false))
        } else {
            Err(conflict())
        };
    }
    let now = now_millis();
    store
        .insert_key(user_id, key_id.as_str(), jwk.as_str(), now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => conflict(),
            other => other.into(),
        })?;
    tracing::info!(user_id, key_id = key_id.as_str(), "public key published");
    Ok((
        KeyRow {
            key_id: key_id.as_str().to_owned(),
            jwk: jwk.as_str().to_owned(),
            created_at: now,
        },
        true,
    ))
}

/// Looks a user up by name; a malformed name is as unknown as a free one.
///
/// # Errors
/// 404 `user`.
pub async fn find_user(store: &Store, username: &str) -> Result<UserRow> {
    let name = Username::parse(username).map_err(|_| Error::NotFound("user"))?;
    store
        .user_by_name(&name)
        .await?
        .ok_or(Error::NotFound("user"))
}

/// A user's keys, current first.
///
/// # Errors
/// 404 for an unknown user.
pub async fn of_user(store: &Store, username: &str) -> Result<(UserRow, Vec<KeyRow>)> {
    let user = find_user(store, username).await?;
    let keys = store.keys(user.id).await?;
    Ok((user, keys))
}
