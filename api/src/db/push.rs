use super::{Store, StoreError};

/// One browser's push subscription (the `PushSubscription` JSON, flattened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    pub endpoint: String,
    /// base64url of the browser's P-256 key (`keys.p256dh`).
    pub p256dh: String,
    /// base64url of the 16-byte auth secret (`keys.auth`).
    pub auth: String,
}

/// Subscriptions kept per user (browsers, devices); a new one beyond this drops the oldest.
pub const MAX_SUBSCRIPTIONS_PER_USER: i64 = 10;

impl Store {
    /// Saves a subscription for `user_id`. An endpoint names one browser, so saving it again
    /// (a re-subscribe, another account in the same browser) replaces the earlier row.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn save_push_subscription(
        &self,
        user_id: i64,
        row: &PushSubscriptionRow,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (endpoint) DO UPDATE SET user_id = $1, p256dh = $3, auth = $4, created_at = $5",
        )
        .bind(user_id)
        .bind(&row.endpoint)
        .bind(&row.p256dh)
        .bind(&row.auth)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        sqlx::query(
            "DELETE FROM push_subscriptions WHERE user_id = $1 AND id NOT IN \
             (SELECT id FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(MAX_SUBSCRIPTIONS_PER_USER)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes `user_id`'s subscription at `endpoint`; whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn delete_push_subscription(
        &self,
        user_id: i64,
        endpoint: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
                .bind(user_id)
                .bind(endpoint)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets an endpoint the push service says is gone (404/410).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn forget_push_endpoint(&self, endpoint: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
            .bind(endpoint)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Members of the room with at least one push subscription: who a room message may be
    /// pushed to.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn push_subscribers_in_room(&self, room_id: i64) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT m.user_id FROM room_members m \
             JOIN push_subscriptions p ON p.user_id = m.user_id WHERE m.room_id = $1",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn push_subscriptions(
        &self,
        user_id: i64,
    ) -> Result<Vec<PushSubscriptionRow>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(endpoint, p256dh, auth)| PushSubscriptionRow {
                endpoint,
                p256dh,
                auth,
            })
            .collect())
    }
}
