//! Users' public keys for end-to-end encrypted DMs.

use crate::db::{now_millis, KeyRow, Store, StoreError, UserRow};
use crate::domain::{KeyId, PublicJwk, Username};
use crate::error::{Error, Result};

/// A key a client asks to publish, checked, and what publishing it would do.
#[derive(Debug)]
pub enum Publish {
    /// This key id already names this very key: nothing to do.
    Existing(KeyRow),
    /// A new key: [`publish`] stores it.
    New { key_id: KeyId, jwk: PublicJwk },
}

/// Checks a key before it is published. Key ids are immutable: the same id with the same key
/// again is [`Publish::Existing`] (a no-op, so a client may re-send its key on every start
/// without spending its `RATE_LIMIT_KEYS` budget), with another key a conflict, so a message
/// encrypted to a key id always means the same key.
///
/// # Errors
/// 422 for a bad key id or JWK, 409 for a reused key id.
pub async fn prepare(
    store: &Store,
    user_id: i64,
    key_id: &str,
    jwk: &serde_json::Value,
) -> Result<Publish> {
    let key_id = KeyId::parse(key_id, "key_id")?;
    let jwk = PublicJwk::parse(jwk)?;
    match store.key(user_id, key_id.as_str()).await? {
        Some(existing) if existing.jwk == jwk.as_str() => Ok(Publish::Existing(existing)),
        Some(_) => Err(key_id_taken(&key_id)),
        None => Ok(Publish::New { key_id, jwk }),
    }
}

fn key_id_taken(key_id: &KeyId) -> Error {
    Error::Conflict {
        code: "key_id_taken",
        message: format!(
            "key id {} already names another key; rotate to a new key id",
            key_id.as_str()
        ),
    }
}

/// Publishes a new key and makes it the user's current one; the user keeps only the newest
/// `keep` keys (`E2EE_KEYS_PER_USER`), the oldest beyond that are deleted.
///
/// # Errors
/// 409 when the key id was taken meanwhile.
pub async fn publish(
    store: &Store,
    user_id: i64,
    key_id: KeyId,
    jwk: PublicJwk,
    keep: usize,
) -> Result<KeyRow> {
    let now = now_millis();
    store
        .insert_key(user_id, key_id.as_str(), jwk.as_str(), now, keep)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => key_id_taken(&key_id),
            other => other.into(),
        })?;
    tracing::info!(user_id, key_id = key_id.as_str(), "public key published");
    Ok(KeyRow {
        key_id: key_id.as_str().to_owned(),
        jwk: jwk.as_str().to_owned(),
        created_at: now,
    })
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

/// A user's newest `limit` keys, current first.
///
/// # Errors
/// 404 for an unknown user.
pub async fn of_user(
    store: &Store,
    username: &str,
    limit: usize,
) -> Result<(UserRow, Vec<KeyRow>)> {
    let user = find_user(store, username).await?;
    let keys = store.keys(user.id, limit).await?;
    Ok((user, keys))
}
