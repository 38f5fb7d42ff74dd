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

/// Subscriptions kept per user (browsers, devices); a new one beyond this drops the oldest
/// (a device that was given away or reset never unsubscribes, so refusing the new one would
/// lock the user out of notifications on the device they hold now).
pub const MAX_SUBSCRIPTIONS_PER_USER: i64 = 10;

/// The session a subscription belongs to: the token that saved it. The subscription ends
/// with it (logout, password change, expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSession {
    /// The token's `jti`.
    pub token_id: String,
    /// The token's generation (`ver`).
    pub token_version: i64,
    /// The token's expiry, Unix milliseconds.
    pub expires_at: i64,
}

/// A subscription as its owner sees it in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionInfo {
    pub id: i64,
    pub endpoint: String,
    pub created_at: i64,
    /// The `jti` of the session that saved it.
    pub token_id: String,
}

/// The rows of `p` (push_subscriptions) whose session still counts: the user's current
/// token generation, not logged out, not expired (`$2` is now, Unix milliseconds).
const LIVE_SESSION: &str =
    "p.token_version = (SELECT u.token_version FROM users u WHERE u.id = p.user_id) \
     AND p.token_expires_at > $2 \
     AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = p.token_id)";

impl Store {
    /// Saves a subscription for `user_id`, bound to `session`. An endpoint names one
    /// browser, so saving it again (a re-subscribe, a new sign-in, another account in the
    /// same browser) replaces the earlier row and its session. Subscriptions of the user's
    /// expired sessions are purged; beyond [`MAX_SUBSCRIPTIONS_PER_USER`] the oldest go.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn save_push_subscription(
        &self,
        user_id: i64,
        row: &PushSubscriptionRow,
        session: &PushSession,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO push_subscriptions \
             (user_id, endpoint, p256dh, auth, created_at, token_id, token_version, token_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (endpoint) DO UPDATE SET user_id = $1, p256dh = $3, auth = $4, \
             created_at = $5, token_id = $6, token_version = $7, token_expires_at = $8",
        )
        .bind(user_id)
        .bind(&row.endpoint)
        .bind(&row.p256dh)
        .bind(&row.auth)
        .bind(now)
        .bind(&session.token_id)
        .bind(session.token_version)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND token_expires_at <= $2")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
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

    /// Removes `user_id`'s subscription `id` (any of their sessions'); whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn delete_push_subscription_by_id(
        &self,
        user_id: i64,
        id: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A logout: the subscriptions session `token_id` saved end with it.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn end_push_subscriptions_of_session(
        &self,
        user_id: i64,
        token_id: &str,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND token_id = $2")
                .bind(user_id)
                .bind(token_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// A password change: the session that made it goes on as `kept` (its new token), so
    /// the subscriptions it saved move to that token; every other session's end.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn keep_push_subscriptions_of_session(
        &self,
        user_id: i64,
        old_token_id: &str,
        kept: &PushSession,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE push_subscriptions SET token_id = $3, token_version = $4, token_expires_at = $5 \
             WHERE user_id = $1 AND token_id = $2",
        )
        .bind(user_id)
        .bind(old_token_id)
        .bind(&kept.token_id)
        .bind(kept.token_version)
        .bind(kept.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND token_version < $2")
            .bind(user_id)
            .bind(kept.token_version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `user_id`'s subscriptions whose session still counts, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn list_push_subscriptions(
        &self,
        user_id: i64,
        now: i64,
    ) -> Result<Vec<PushSubscriptionInfo>, StoreError> {
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(&format!(
            "SELECT p.id, p.endpoint, p.created_at, p.token_id FROM push_subscriptions p \
             WHERE p.user_id = $1 AND {LIVE_SESSION} ORDER BY p.created_at, p.id"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, endpoint, created_at, token_id)| PushSubscriptionInfo {
                    id,
                    endpoint,
                    created_at,
                    token_id,
                },
            )
            .collect())
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

    /// Where a push to `user_id` goes: their subscriptions whose session still counts at
    /// `now`. Checked here as well as ended on logout, so a subscription is never pushed to
    /// after its session ended, whatever order things happened in.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn push_subscriptions(
        &self,
        user_id: i64,
        now: i64,
    ) -> Result<Vec<PushSubscriptionRow>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
            "SELECT p.endpoint, p.p256dh, p.auth FROM push_subscriptions p \
             WHERE p.user_id = $1 AND {LIVE_SESSION} ORDER BY p.id"
        ))
        .bind(user_id)
        .bind(now)
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
