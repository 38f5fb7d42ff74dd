use super::{first_row, single_row, Store, StoreError};
use crate::domain::Username;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct UserWithHash {
    pub user: UserRow,
    pub password_hash: String,
    /// The generation a new token gets (claim `ver`).
    pub token_version: i64,
}

/// The user a token names, with what decides whether the token still counts.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub user: UserRow,
    pub token_version: i64,
    /// The token's id is on the deny list (it was logged out).
    pub revoked: bool,
}

/// What deleting an account did to the rooms it was in.
#[derive(Debug, Clone, Default)]
pub struct DeletedUser {
    /// Rooms the user owned alone: deleted with their chat, transcripts and summaries.
    pub rooms_deleted: Vec<i64>,
    /// Rooms the user owned with other members: `(room, new owner)`.
    pub rooms_handed_over: Vec<(i64, i64)>,
    /// Rooms that live on and that the user was in (as owner or not).
    pub rooms_left: Vec<i64>,
}

impl Store {
    /// # Errors
    /// [`StoreError::Conflict`] when the username (case-insensitively) is taken.
    pub async fn insert_user(
        &self,
        username: &Username,
        password_hash: &str,
        now: i64,
    ) -> Result<UserRow, StoreError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (username, username_key, password_hash, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(username.as_str())
        .bind(username.key())
        .bind(password_hash)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .and_then(single_row)
        .map_err(StoreError::from_write)?;
        Ok(UserRow {
            id,
            username: username.as_str().to_owned(),
            created_at: now,
        })
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn user_with_hash(
        &self,
        username: &Username,
    ) -> Result<Option<UserWithHash>, StoreError> {
        let row: Option<(i64, String, i64, String, i64)> = sqlx::query_as(
            "SELECT id, username, created_at, password_hash, token_version \
             FROM users WHERE username_key = $1",
        )
        .bind(username.key())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(id, username, created_at, password_hash, token_version)| UserWithHash {
                user: UserRow {
                    id,
                    username,
                    created_at,
                },
                password_hash,
                token_version,
            },
        ))
    }

    /// The user `id` with its token generation, and whether token `jti` was revoked: what
    /// every authenticated request checks, in one query.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn user_for_token(
        &self,
        id: i64,
        jti: &str,
    ) -> Result<Option<TokenUser>, StoreError> {
        let row: Option<(i64, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT u.id, u.username, u.created_at, u.token_version, \
             (SELECT COUNT(*) FROM revoked_tokens r WHERE r.jti = $2) \
             FROM users u WHERE u.id = $1",
        )
        .bind(id)
        .bind(jti)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(id, username, created_at, token_version, revoked)| TokenUser {
                user: UserRow {
                    id,
                    username,
                    created_at,
                },
                token_version,
                revoked: revoked > 0,
            },
        ))
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn password_hash_of(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(hash,)| hash))
    }

    /// Sets a new password hash and moves the user to the next token generation, which ends
    /// every token issued before. Returns the new generation (`None`: no such user).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET password_hash = $1, token_version = token_version + 1 \
             WHERE id = $2 RETURNING token_version",
        )
        .bind(password_hash)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map(first_row)?;
        Ok(row.map(|(version,)| version))
    }

    /// Puts token `jti` of `user_id` on the deny list until `expires_at` (Unix ms), and
    /// drops the entries whose tokens have expired by `now` (they are refused anyway).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn revoke_token(
        &self,
        jti: &str,
        user_id: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(user_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the account, in one transaction. A room it owned with other members passes
    /// to the longest-standing moderator (else member), so nobody else loses the room, its
    /// chat or transcripts; a room it owned alone is deleted with everything in it. The rest
    /// of the user's rows go with the user (schema cascades): memberships, the chat messages
    /// and transcript segments they wrote, both sides of their DMs, keys, prompts, Telegram
    /// link, push subscriptions and deny-listed tokens; agent sessions and summaries they
    /// started stay with `started_by`/`requested_by` cleared.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure (nothing is changed then).
    pub async fn delete_user(&self, id: i64) -> Result<Option<DeletedUser>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let member_of: Vec<(i64,)> =
            sqlx::query_as("SELECT room_id FROM room_members WHERE user_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let owned: Vec<(i64,)> = sqlx::query_as("SELECT id FROM rooms WHERE owner_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let mut outcome = DeletedUser::default();
        for (room_id,) in owned {
            let successor: Option<(i64,)> = sqlx::query_as(
                "SELECT user_id FROM room_members WHERE room_id = $1 AND user_id <> $2 \
                 ORDER BY CASE role WHEN 'moderator' THEN 0 ELSE 1 END, joined_at, user_id \
                 LIMIT 1",
            )
            .bind(room_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match successor {
                Some((heir,)) => {
                    sqlx::query("UPDATE rooms SET owner_id = $1 WHERE id = $2")
                        .bind(heir)
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE room_members SET role = 'owner' WHERE room_id = $1 AND user_id = $2",
                    )
                    .bind(room_id)
                    .bind(heir)
                    .execute(&mut *tx)
                    .await?;
                    outcome.rooms_handed_over.push((room_id, heir));
                }
                None => {
                    sqlx::query("DELETE FROM rooms WHERE id = $1")
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                    outcome.rooms_deleted.push(room_id);
                }
            }
        }
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        outcome.rooms_left = member_of
            .into_iter()
            .map(|(room,)| room)
            .filter(|room| !outcome.rooms_deleted.contains(room))
            .collect();
        Ok(Some(outcome))
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        let row: Option<(i64, String, i64)> =
            sqlx::query_as("SELECT id, username, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, username, created_at)| UserRow {
            id,
            username,
            created_at,
        }))
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn user_by_name(&self, username: &Username) -> Result<Option<UserRow>, StoreError> {
        Ok(self.user_with_hash(username).await?.map(|u| u.user))
    }
}
