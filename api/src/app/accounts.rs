//! Registration, login and "who am I".

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::auth::{PasswordHasher, TokenService};
use crate::db::{now_millis, Store, StoreError, UserRow};
use crate::domain::{Password, Username};
use crate::error::{Error, Result};

/// A signed-in user and the token that proves it.
#[derive(Debug)]
pub struct Session {
    pub token: String,
    pub user: UserRow,
}

/// Registers a user who knows the registration secret.
///
/// # Errors
/// 403 for a wrong secret, 422 for an invalid username or weak password, 409 for a taken name.
pub async fn register(
    store: &Store,
    hasher: &PasswordHasher,
    tokens: &TokenService,
    registration_secret: &SecretString,
    username: &str,
    password: &str,
    given_secret: &str,
) -> Result<Session> {
    // Constant-time: the comparison must not leak how much of the secret was right.
    let expected = registration_secret.expose_secret().as_bytes();
    if !bool::from(expected.ct_eq(given_secret.as_bytes())) {
        return Err(Error::Forbidden("wrong registration secret"));
    }
    let username = Username::parse(username)?;
    let password = Password::parse(password, username.as_str())?;
    let hash = hasher.hash(&password).await?;
    let user = store
        .insert_user(&username, &hash, now_millis())
        .await
        .map_err(|e| match e {
            StoreError::Conflict => Error::Conflict {
                code: "username_taken",
                message: format!("username {username} is taken"),
            },
            other => other.into(),
        })?;
    let token = tokens.issue(user.id, &user.username)?;
    tracing::info!(user_id = user.id, "user registered");
    Ok(Session { token, user })
}

/// # Errors
/// 401 with the same body whether the user is unknown or the password wrong.
pub async fn login(
    store: &Store,
    hasher: &PasswordHasher,
    tokens: &TokenService,
    username: &str,
    password: &str,
) -> Result<Session> {
    // A name that can't exist is treated like an unknown user, dummy hash included, so the
    // answer and its timing are the same.
    let found = match Username::parse(username) {
        Ok(name) => store.user_with_hash(&name).await?,
        Err(_) => None,
    };
    let hash = found.as_ref().map(|u| u.password_hash.as_str());
    if !hasher.verify(password, hash).await? {
        return Err(Error::InvalidCredentials);
    }
    let user = found.ok_or(Error::InvalidCredentials)?.user;
    let token = tokens.issue(user.id, &user.username)?;
    Ok(Session { token, user })
}
