//! Users' custom system prompts for AI summaries.

use super::{Store, StoreError};

impl Store {
    /// The user's own prompt, if they saved one.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn ai_prompt(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT prompt FROM ai_prompts WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(prompt,)| prompt))
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn put_ai_prompt(
        &self,
        user_id: i64,
        prompt: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ai_prompts (user_id, prompt, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET prompt = excluded.prompt, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(prompt)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    /// Back to the default; `false` when the user had no prompt of their own.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn delete_ai_prompt(&self, user_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM ai_prompts WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
