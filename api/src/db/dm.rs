use super::{single_row, Store, StoreError};

/// What a DM carries: plain text, or encrypted fields the server never interprets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmBody {
    Plain(String),
    Encrypted {
        ciphertext: String,
        iv: String,
        sender_key_id: String,
        recipient_key_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct DmRow {
    pub id: i64,
    pub sender_id: i64,
    pub recipient_id: i64,
    pub body: DmBody,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// A conversation partner with the last message and how many of theirs are unread.
#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub peer_id: i64,
    pub last: DmRow,
    pub unread: i64,
}

type DmTuple = (
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

const SELECT: &str = "SELECT id, sender_id, recipient_id, body, ciphertext, iv, sender_key_id, \
     recipient_key_id, created_at, read_at FROM direct_messages";

fn dm(t: DmTuple) -> DmRow {
    let (
        id,
        sender_id,
        recipient_id,
        body,
        ciphertext,
        iv,
        sender_key_id,
        recipient_key_id,
        created_at,
        read_at,
    ) = t;
    let body = match body {
        Some(text) => DmBody::Plain(text),
        // The schema guarantees exactly one of body / ciphertext.
        None => DmBody::Encrypted {
            ciphertext: ciphertext.unwrap_or_default(),
            iv: iv.unwrap_or_default(),
            sender_key_id: sender_key_id.unwrap_or_default(),
            recipient_key_id: recipient_key_id.unwrap_or_default(),
        },
    };
    DmRow {
        id,
        sender_id,
        recipient_id,
        body,
        created_at,
        read_at,
    }
}

impl Store {
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn insert_dm(
        &self,
        sender_id: i64,
        recipient_id: i64,
        body: &DmBody,
        now: i64,
    ) -> Result<DmRow, StoreError> {
        let (plain, ciphertext, iv, sender_key, recipient_key) = match body {
            DmBody::Plain(text) => (Some(text.as_str()), None, None, None, None),
            DmBody::Encrypted {
                ciphertext,
                iv,
                sender_key_id,
                recipient_key_id,
            } => (
                None,
                Some(ciphertext.as_str()),
                Some(iv.as_str()),
                Some(sender_key_id.as_str()),
                Some(recipient_key_id.as_str()),
            ),
        };
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO direct_messages (sender_id, recipient_id, body, ciphertext, iv, \
             sender_key_id, recipient_key_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(sender_id)
        .bind(recipient_id)
        .bind(plain)
        .bind(ciphertext)
        .bind(iv)
        .bind(sender_key)
        .bind(recipient_key)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .and_then(single_row)?;
        Ok(DmRow {
            id,
            sender_id,
            recipient_id,
            body: body.clone(),
            created_at: now,
            read_at: None,
        })
    }

    /// Messages between `a` and `b` with ids below `before`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn dms_between(
        &self,
        a: i64,
        b: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<DmRow>, StoreError> {
        let rows: Vec<DmTuple> = sqlx::query_as(&format!(
            "{SELECT} WHERE ((sender_id = $1 AND recipient_id = $2) \
             OR (sender_id = $2 AND recipient_id = $1)) AND id < $3 ORDER BY id DESC LIMIT $4"
        ))
        .bind(a)
        .bind(b)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(dm).collect())
    }

    /// The user's conversations, most recent first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn conversations(&self, user_id: i64) -> Result<Vec<ConversationRow>, StoreError> {
        let lasts: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT peer, MAX(id) FROM ( \
               SELECT recipient_id AS peer, id FROM direct_messages WHERE sender_id = $1 \
               UNION ALL \
               SELECT sender_id AS peer, id FROM direct_messages WHERE recipient_id = $1 \
             ) t GROUP BY peer ORDER BY MAX(id) DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let unread: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT sender_id, COUNT(*) FROM direct_messages \
             WHERE recipient_id = $1 AND read_at IS NULL GROUP BY sender_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let unread: std::collections::HashMap<i64, i64> = unread.into_iter().collect();
        let mut out = Vec::with_capacity(lasts.len());
        for (peer_id, last_id) in lasts {
            let row: Option<DmTuple> = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
                .bind(last_id)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                out.push(ConversationRow {
                    peer_id,
                    last: dm(row),
                    unread: unread.get(&peer_id).copied().unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// Marks `sender_id`'s messages to `recipient_id` up to `up_to` read; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn mark_dms_read(
        &self,
        recipient_id: i64,
        sender_id: i64,
        up_to: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE direct_messages SET read_at = $1 \
             WHERE recipient_id = $2 AND sender_id = $3 AND read_at IS NULL AND id <= $4",
        )
        .bind(now)
        .bind(recipient_id)
        .bind(sender_id)
        .bind(up_to)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
