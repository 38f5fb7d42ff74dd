//! Users' Telegram links: a pending, single-use token and, once confirmed, the chat id.

use super::{first_row, Store, StoreError};

/// A user's link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramLinkRow {
    /// Set once the bot saw `/start <token>`.
    pub chat_id: Option<i64>,
    /// A pending token's expiry (Unix ms); `None` when no token is pending.
    pub token_expires_at: Option<i64>,
}

impl Store {
    /// Stores the hash of a new link token for `user_id`, replacing a pending one; a confirmed
    /// chat stays linked until the new token is used.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn put_telegram_token(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO telegram_links (user_id, token_hash, token_expires_at, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET token_hash = excluded.token_hash, \
             token_expires_at = excluded.token_expires_at",
        )
        .bind(user_id)
        .bind(token_hash)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    /// Confirms the link whose unexpired token hashes to `token_hash`: sets the chat and
    /// clears the token in one statement, so a token works once. Returns the linked user.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn confirm_telegram_link(
        &self,
        token_hash: &str,
        chat_id: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE telegram_links SET chat_id = $2, confirmed_at = $3, token_hash = NULL, \
             token_expires_at = NULL \
             WHERE token_hash = $1 AND token_expires_at > $3 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(chat_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map(first_row)?;
        Ok(row.map(|(user_id,)| user_id))
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn telegram_link(&self, user_id: i64) -> Result<Option<TelegramLinkRow>, StoreError> {
        let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT chat_id, token_expires_at FROM telegram_links WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(chat_id, token_expires_at)| TelegramLinkRow {
            chat_id,
            token_expires_at,
        }))
    }

    /// Removes the user's link (confirmed or pending); `false` when there was none.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn delete_telegram_link(&self, user_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM telegram_links WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The confirmed chats of the room's members, as `(user_id, chat_id)` by user id.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn member_telegram_chats(&self, room_id: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT t.user_id, t.chat_id FROM telegram_links t \
             JOIN room_members m ON m.user_id = t.user_id \
             WHERE m.room_id = $1 AND t.chat_id IS NOT NULL ORDER BY t.user_id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
