use super::{single_row, Store, StoreError};

/// A stored transcript segment with its speaker's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub id: i64,
    pub room_id: i64,
    pub user_id: i64,
    pub username: String,
    pub participant_id: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// A segment to store.
#[derive(Debug, Clone)]
pub struct NewSegment<'a> {
    pub room_id: i64,
    /// The agent session that heard it.
    pub session_id: Option<i64>,
    pub user_id: i64,
    pub participant_id: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: &'a str,
}

type SegmentTuple = (i64, i64, i64, String, i64, i64, i64, String);

fn segment(
    (id, room_id, user_id, username, participant_id, start_ms, end_ms, text): SegmentTuple,
) -> SegmentRow {
    SegmentRow {
        id,
        room_id,
        user_id,
        username,
        participant_id,
        start_ms,
        end_ms,
        text,
    }
}

const SELECT: &str = "SELECT s.id, s.room_id, s.user_id, u.username, s.participant_id, \
     s.start_ms, s.end_ms, s.body FROM transcript_segments s JOIN users u ON u.id = s.user_id";

impl Store {
    /// Stores one segment; returns its id.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure (e.g. the room was deleted).
    pub async fn insert_segment(&self, s: &NewSegment<'_>, now: i64) -> Result<i64, StoreError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO transcript_segments \
             (room_id, session_id, user_id, participant_id, start_ms, end_ms, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(s.room_id)
        .bind(s.session_id)
        .bind(s.user_id)
        .bind(s.participant_id)
        .bind(s.start_ms)
        .bind(s.end_ms)
        .bind(s.text)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .and_then(single_row)?;
        Ok(id)
    }

    /// The room's transcript in time order (by start), at most `limit` segments.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn transcript(
        &self,
        room_id: i64,
        limit: i64,
    ) -> Result<Vec<SegmentRow>, StoreError> {
        let rows: Vec<SegmentTuple> = sqlx::query_as(&format!(
            "{SELECT} WHERE s.room_id = $1 ORDER BY s.start_ms, s.id LIMIT $2"
        ))
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(segment).collect())
    }

    /// One agent session's transcript in time order, at most `limit` segments.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn session_transcript(
        &self,
        session_id: i64,
        limit: i64,
    ) -> Result<Vec<SegmentRow>, StoreError> {
        let rows: Vec<SegmentTuple> = sqlx::query_as(&format!(
            "{SELECT} WHERE s.session_id = $1 ORDER BY s.start_ms, s.id LIMIT $2"
        ))
        .bind(session_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(segment).collect())
    }
}
