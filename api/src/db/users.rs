use super::{Store, StoreError};
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
        .fetch_one(&self.pool)
        .await
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
        let row: Option<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT id, username, created_at, password_hash FROM users WHERE username_key = $1",
        )
        .bind(username.key())
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(id, username, created_at, password_hash)| UserWithHash {
                user: UserRow {
                    id,
                    username,
                    created_at,
                },
                password_hash,
            }),
        )
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
