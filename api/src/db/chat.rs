use super::{single_row, Store, StoreError};

/// A stored room chat message with its author's name.
#[derive(Debug, Clone)]
pub struct ChatRow {
    pub id: i64,
    pub room_id: i64,
    pub user_id: i64,
    pub username: String,
    pub body: String,
    pub created_at: i64,
}

type ChatTuple = (i64, i64, i64, String, String, i64);

fn chat((id, room_id, user_id, username, body, created_at): ChatTuple) -> ChatRow {
    ChatRow {
        id,
        room_id,
        user_id,
        username,
        body,
        created_at,
    }
}

const SELECT: &str = "SELECT m.id, m.room_id, m.user_id, u.username, m.body, m.created_at \
     FROM chat_messages m JOIN users u ON u.id = m.user_id";

impl Store {
    /// # Errors
    /// [`StoreError::Database`] on a database failure (a deleted room included).
    pub async fn insert_chat(
        &self,
        room_id: i64,
        user_id: i64,
        username: &str,
        body: &str,
        now: i64,
    ) -> Result<ChatRow, StoreError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO chat_messages (room_id, user_id, body, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(body)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .and_then(single_row)?;
        Ok(ChatRow {
            id,
            room_id,
            user_id,
            username: username.to_owned(),
            body: body.to_owned(),
            created_at: now,
        })
    }

    /// Up to `limit` messages with ids below `before`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn chat_before(
        &self,
        room_id: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<ChatRow>, StoreError> {
        let rows: Vec<ChatTuple> = sqlx::query_as(&format!(
            "{SELECT} WHERE m.room_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3"
        ))
        .bind(room_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(chat).collect())
    }

    /// Up to `limit` messages with ids above `after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn chat_after(
        &self,
        room_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChatRow>, StoreError> {
        let rows: Vec<ChatTuple> = sqlx::query_as(&format!(
            "{SELECT} WHERE m.room_id = $1 AND m.id > $2 ORDER BY m.id ASC LIMIT $3"
        ))
        .bind(room_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(chat).collect())
    }

    /// The newest `limit` messages of the room written in `[from, to]` (Unix ms), oldest
    /// first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn chat_between(
        &self,
        room_id: i64,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<ChatRow>, StoreError> {
        let rows: Vec<ChatTuple> = sqlx::query_as(&format!(
            "{SELECT} WHERE m.room_id = $1 AND m.created_at >= $2 AND m.created_at <= $3 \
             ORDER BY m.id DESC LIMIT $4"
        ))
        .bind(room_id)
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().rev().map(chat).collect())
    }
}
