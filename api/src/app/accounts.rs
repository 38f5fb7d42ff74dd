//! Registration, login, logout, password change and account deletion.

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use signaling::bus::RoomEvent;
use signaling::Hub;

use crate::auth::{PasswordHasher, TokenService};
use crate::db::{now_millis, DeletedUser, PushSession, Store, StoreError, UserRow};
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
    let token = tokens.issue(user.id, &user.username, 0)?;
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
    let found = found.ok_or(Error::InvalidCredentials)?;
    let token = tokens.issue(found.user.id, &found.user.username, found.token_version)?;
    Ok(Session {
        token,
        user: found.user,
    })
}

/// The signed-in user's password is `password`, else the same 401 as a failed login.
async fn check_password(
    store: &Store,
    hasher: &PasswordHasher,
    user_id: i64,
    password: &str,
) -> Result<()> {
    let hash = store.password_hash_of(user_id).await?;
    if hasher.verify(password, hash.as_deref()).await? {
        Ok(())
    } else {
        Err(Error::InvalidCredentials)
    }
}

/// Ends the session of token `jti` (expiring at `exp`, Unix seconds).
///
/// # Errors
/// Only database failures.
pub async fn logout(store: &Store, user_id: i64, jti: &str, exp: i64) -> Result<()> {
    store
        .revoke_token(jti, user_id, exp.saturating_mul(1000), now_millis())
        .await?;
    // The browsers this session subscribed stop getting notices with it (a push checks the
    // session too; this keeps the table from holding the dead rows).
    store
        .end_push_subscriptions_of_session(user_id, jti)
        .await?;
    tracing::info!(user_id, "signed out");
    Ok(())
}

/// Changes the password of `user` and ends every other session of theirs (the token
/// generation moves on) with their push subscriptions; returns a session of the new
/// generation, which keeps the push subscriptions the session `token_id` saved.
///
/// # Errors
/// 401 when `current` is wrong (as a failed login), 422 for a weak `new` password.
pub async fn change_password(
    store: &Store,
    hasher: &PasswordHasher,
    tokens: &TokenService,
    user: UserRow,
    token_id: &str,
    current: &str,
    new: &str,
) -> Result<Session> {
    check_password(store, hasher, user.id, current).await?;
    let password = Password::parse(new, &user.username).map_err(|mut e| {
        e.field = "new_password";
        e
    })?;
    let hash = hasher.hash(&password).await?;
    // The user was deleted meanwhile: their token is refused from now on anyway.
    let version = store
        .set_password(user.id, &hash)
        .await?
        .ok_or(Error::Unauthorized)?;
    let token = tokens.issue(user.id, &user.username, version)?;
    let claims = tokens.verify(&token).map_err(Error::internal)?;
    let kept = PushSession {
        token_id: claims.jti,
        token_version: version,
        expires_at: claims.exp.saturating_mul(1000),
    };
    store
        .keep_push_subscriptions_of_session(user.id, token_id, &kept)
        .await?;
    tracing::info!(user_id = user.id, "password changed; other sessions ended");
    Ok(Session { token, user })
}

/// Deletes the account of `user_id` once `password` proves it is theirs (see
/// [`Store::delete_user`] for what happens to their rooms and data). Their sockets in rooms
/// that live on are closed as if they had been removed, and the new owners are announced.
///
/// # Errors
/// 401 when `password` is wrong (as a failed login).
pub async fn delete_account(
    store: &Store,
    hasher: &PasswordHasher,
    hub: &Hub,
    user_id: i64,
    password: &str,
) -> Result<DeletedUser> {
    check_password(store, hasher, user_id, password).await?;
    let outcome = store
        .delete_user(user_id)
        .await?
        .ok_or(Error::Unauthorized)?;
    tracing::info!(
        user_id,
        rooms_deleted = outcome.rooms_deleted.len(),
        rooms_handed_over = outcome.rooms_handed_over.len(),
        "account deleted"
    );
    for &(room_id, heir) in &outcome.rooms_handed_over {
        let event = RoomEvent::RoleChanged {
            user_id: heir,
            role: crate::domain::Role::Owner.into(),
            by_user_id: user_id,
        };
        if let Err(err) = hub.publish_room(room_id, event).await {
            tracing::error!(room_id, error = %err, "new owner not broadcast");
        }
    }
    // Rooms they owned alone are gone: their calls end as a deletion by the owner would.
    for &room_id in &outcome.rooms_deleted {
        let event = RoomEvent::RoomDeleted {
            by_user_id: user_id,
        };
        if let Err(err) = hub.publish_room(room_id, event).await {
            tracing::error!(room_id, error = %err, "room deletion not broadcast");
        }
    }
    for &room_id in &outcome.rooms_left {
        let event = RoomEvent::MemberRemoved {
            user_id,
            by_user_id: user_id,
        };
        if let Err(err) = hub.publish_room(room_id, event).await {
            // The membership is gone, so the next command on their socket fails anyway.
            tracing::error!(room_id, error = %err, "deleted member not broadcast");
        }
    }
    Ok(outcome)
}
