use super::{Store, StoreError};

/// One published public key.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub key_id: String,
    /// Canonical public JWK text.
    pub jwk: String,
    pub created_at: i64,
}

impl Store {
    /// Publishes a key, which becomes the user's current one, and deletes the user's keys
    /// beyond the newest `keep` in the same transaction, so a user never holds more.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the user already has a key with this id.
    pub async fn insert_key(
        &self,
        user_id: i64,
        key_id: &str,
        jwk: &str,
        now: i64,
        keep: usize,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO user_keys (user_id, key_id, jwk, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user_id)
        .bind(key_id)
        .bind(jwk)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        sqlx::query(
            "DELETE FROM user_keys WHERE user_id = $1 AND id NOT IN \
             (SELECT id FROM user_keys WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's newest `limit` keys, current (newest) first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn keys(&self, user_id: i64, limit: usize) -> Result<Vec<KeyRow>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT key_id, jwk, created_at FROM user_keys WHERE user_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key_id, jwk, created_at)| KeyRow {
                key_id,
                jwk,
                created_at,
            })
            .collect())
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn key(&self, user_id: i64, key_id: &str) -> Result<Option<KeyRow>, StoreError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT key_id, jwk, created_at FROM user_keys WHERE user_id = $1 AND key_id = $2",
        )
        .bind(user_id)
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(key_id, jwk, created_at)| KeyRow {
            key_id,
            jwk,
            created_at,
        }))
    }
}
