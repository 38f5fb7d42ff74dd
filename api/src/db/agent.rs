//! Agent sessions and their summaries.

use super::{first_row, single_row, Store, StoreError};

/// One agent session: from `transcription_start` (or a summary trigger without one) until it
/// was stopped or summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSessionRow {
    pub id: i64,
    pub room_id: i64,
    pub started_by: Option<i64>,
    pub started_at: i64,
    /// `None` while the session runs.
    pub ended_at: Option<i64>,
}

type SessionTuple = (i64, i64, Option<i64>, i64, Option<i64>);

fn session((id, room_id, started_by, started_at, ended_at): SessionTuple) -> AgentSessionRow {
    AgentSessionRow {
        id,
        room_id,
        started_by,
        started_at,
        ended_at,
    }
}

const SESSION: &str = "SELECT id, room_id, started_by, started_at, ended_at FROM agent_sessions";

/// A summary to store.
#[derive(Debug, Clone)]
pub struct NewSummary<'a> {
    pub room_id: i64,
    pub session_id: i64,
    pub requested_by: i64,
    pub source: &'a str,
    pub model: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub body: &'a str,
    pub segments: i64,
    pub messages: i64,
}

/// A stored summary with its session's period and the name of who asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub id: i64,
    pub room_id: i64,
    pub session_id: i64,
    pub requested_by: Option<i64>,
    pub requested_by_name: Option<String>,
    pub source: String,
    pub model: Option<String>,
    pub reason: Option<String>,
    pub body: String,
    pub segments: i64,
    pub messages: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub created_at: i64,
}

type SummaryTuple = (
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
);

fn summary(t: SummaryTuple) -> SummaryRow {
    SummaryRow {
        id: t.0,
        room_id: t.1,
        session_id: t.2,
        requested_by: t.3,
        requested_by_name: t.4,
        source: t.5,
        model: t.6,
        reason: t.7,
        body: t.8,
        segments: t.9,
        messages: t.10,
        started_at: t.11,
        ended_at: t.12,
        created_at: t.13,
    }
}

const SUMMARY: &str =
    "SELECT s.id, s.room_id, s.session_id, s.requested_by, u.username, s.source, \
     s.model, s.reason, s.body, s.segments, s.messages, a.started_at, a.ended_at, s.created_at \
     FROM summaries s JOIN agent_sessions a ON a.id = s.session_id \
     LEFT JOIN users u ON u.id = s.requested_by";

impl Store {
    /// The room's open session, or a new one started by `user_id` at `now`. Two nodes
    /// starting at once end up in the same session (a partial unique index allows one open
    /// session per room).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn open_agent_session(
        &self,
        room_id: i64,
        user_id: i64,
        now: i64,
    ) -> Result<AgentSessionRow, StoreError> {
        for _ in 0..3 {
            if let Some(open) = self.open_session_of(room_id).await? {
                return Ok(open);
            }
            let inserted: Result<(i64,), _> = sqlx::query_as(
                "INSERT INTO agent_sessions (room_id, started_by, started_at) \
                 VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(room_id)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .and_then(single_row);
            match inserted.map_err(StoreError::from_write) {
                Ok((id,)) => {
                    return Ok(AgentSessionRow {
                        id,
                        room_id,
                        started_by: Some(user_id),
                        started_at: now,
                        ended_at: None,
                    })
                }
                // Another node opened one between our look and our insert: use theirs.
                Err(StoreError::Conflict) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn open_session_of(&self, room_id: i64) -> Result<Option<AgentSessionRow>, StoreError> {
        let row: Option<SessionTuple> = sqlx::query_as(&format!(
            "{SESSION} WHERE room_id = $1 AND ended_at IS NULL"
        ))
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(session))
    }

    /// A session that is over as soon as it starts: the period a summary without a running
    /// agent covers.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn insert_ended_session(
        &self,
        room_id: i64,
        user_id: i64,
        started_at: i64,
        ended_at: i64,
    ) -> Result<AgentSessionRow, StoreError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO agent_sessions (room_id, started_by, started_at, ended_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(started_at)
        .bind(ended_at)
        .fetch_all(&self.pool)
        .await
        .and_then(single_row)?;
        Ok(AgentSessionRow {
            id,
            room_id,
            started_by: Some(user_id),
            started_at,
            ended_at: Some(ended_at),
        })
    }

    /// The room's newest session, open or not.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn latest_agent_session(
        &self,
        room_id: i64,
    ) -> Result<Option<AgentSessionRow>, StoreError> {
        let row: Option<SessionTuple> = sqlx::query_as(&format!(
            "{SESSION} WHERE room_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(session))
    }

    /// Ends the session at `now` unless it has ended already; returns the session as it is now.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn end_agent_session(
        &self,
        id: i64,
        now: i64,
    ) -> Result<Option<AgentSessionRow>, StoreError> {
        sqlx::query("UPDATE agent_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        let row: Option<SessionTuple> = sqlx::query_as(&format!("{SESSION} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(session))
    }

    /// Stores a summary; `None` when the session has one already (the caller reads that one).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn insert_summary(
        &self,
        s: &NewSummary<'_>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO summaries (room_id, session_id, requested_by, source, model, reason, \
             body, segments, messages, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (session_id) DO NOTHING RETURNING id",
        )
        .bind(s.room_id)
        .bind(s.session_id)
        .bind(s.requested_by)
        .bind(s.source)
        .bind(s.model)
        .bind(s.reason)
        .bind(s.body)
        .bind(s.segments)
        .bind(s.messages)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map(first_row)?;
        Ok(row.map(|(id,)| id))
    }

    /// The session's summary, if it has one.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn summary_of_session(
        &self,
        session_id: i64,
    ) -> Result<Option<SummaryRow>, StoreError> {
        let row: Option<SummaryTuple> =
            sqlx::query_as(&format!("{SUMMARY} WHERE s.session_id = $1"))
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(summary))
    }

    /// The room's summaries, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn summaries(&self, room_id: i64, limit: i64) -> Result<Vec<SummaryRow>, StoreError> {
        let rows: Vec<SummaryTuple> = sqlx::query_as(&format!(
            "{SUMMARY} WHERE s.room_id = $1 ORDER BY s.id DESC LIMIT $2"
        ))
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(summary).collect())
    }

    /// Takes one model-written summary from `user_id`'s budget of `per_hour` per hour, in
    /// the database so that every node counts against the same budget and a restart resets
    /// nothing. The hour starts at the first summary after the previous hour ended (a fixed
    /// window). One statement: the row lock (PostgreSQL) or the single writer (SQLite) makes
    /// concurrent takes count one by one. Returns whether the budget had room.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn take_ai_summary_budget(
        &self,
        user_id: i64,
        per_hour: u32,
        now: i64,
    ) -> Result<bool, StoreError> {
        const HOUR_MS: i64 = 3_600_000;
        let taken: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO ai_summary_budget (user_id, window_start, used) VALUES ($1, $2, 1) \
             ON CONFLICT (user_id) DO UPDATE SET \
               window_start = CASE WHEN ai_summary_budget.window_start <= $3 \
                 THEN excluded.window_start ELSE ai_summary_budget.window_start END, \
               used = CASE WHEN ai_summary_budget.window_start <= $3 \
                 THEN 1 ELSE ai_summary_budget.used + 1 END \
             WHERE ai_summary_budget.window_start <= $3 OR ai_summary_budget.used < $4 \
             RETURNING used",
        )
        .bind(user_id)
        .bind(now)
        .bind(now - HOUR_MS)
        .bind(i64::from(per_hour))
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }
}
