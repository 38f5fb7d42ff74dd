//! With Redis, queued notices live in a stream, `{prefix}:push_queue`, read by every node
//! through one consumer group: a notice queued through a node that stops before sending it
//! is claimed by another node (`XAUTOCLAIM` after [`CLAIM_IDLE`]) and still goes out. An
//! entry is acknowledged and deleted once its push is done (sent, given up or refused).
//!
//! The notice is sealed with the cluster key ([`crate::sealed`]) for the stream, its user
//! and its count: an entry some other writer added (to send anyone a notice of its making)
//! is dropped unsent.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::notice::Notice;
use crate::sealed::ClusterKey;

/// Entries kept at most (approximately); older ones are trimmed.
const MAX_LEN: usize = 10_000;
/// Entries read per call.
const BATCH: usize = 32;
/// The one consumer group every node reads through (one consumer per node).
const GROUP: &str = "push";
/// How long a read waits for new entries.
const BLOCK: Duration = Duration::from_secs(2);
/// How often a node looks for entries another node left pending.
pub const CLAIM_EVERY: Duration = Duration::from_secs(10);

/// One queued notice as stored in the stream.
#[derive(Debug)]
pub struct Entry {
    pub id: String,
    pub user_id: i64,
    pub notice: Notice,
    pub count: u32,
}

pub struct PushStream {
    conn: ConnectionManager,
    /// A connection of its own for the blocking read: a `BLOCK` on the shared, multiplexed
    /// connection would hold up every other command on it (rate limits, the bus).
    reader: ConnectionManager,
    key: String,
    consumer: String,
    /// Entries pending this long on a consumer are taken over (its node stopped).
    claim_idle: Duration,
    seal: ClusterKey,
}

impl std::fmt::Debug for PushStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushStream")
            .field("key", &self.key)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl PushStream {
    pub fn new(
        conn: ConnectionManager,
        reader: ConnectionManager,
        prefix: &str,
        consumer: String,
        claim_idle: Duration,
        seal: ClusterKey,
    ) -> Self {
        Self {
            conn,
            reader,
            key: format!("{prefix}:push_queue"),
            consumer,
            claim_idle,
            seal,
        }
    }

    /// Creates the consumer group (and the stream) unless it exists.
    ///
    /// # Errors
    /// Redis errors other than "the group exists".
    pub async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Appends a notice for `user_id`.
    ///
    /// # Errors
    /// The Redis error (the caller falls back to this node's memory).
    pub async fn add(&self, user_id: i64, notice: &Notice, count: u32) -> redis::RedisResult<()> {
        let json = serde_json::to_string(notice).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::TypeError, "notice", e.to_string()))
        })?;
        let json = self.seal.seal(&self.seal_context(user_id, count), &json);
        let mut conn = self.conn.clone();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_LEN)
            .arg("*")
            .arg("user")
            .arg(user_id)
            .arg("notice")
            .arg(json)
            .arg("count")
            .arg(count)
            .query_async::<String>(&mut conn)
            .await?;
        Ok(())
    }

    /// New entries for this consumer, waiting up to [`BLOCK`].
    ///
    /// # Errors
    /// The Redis error.
    pub async fn read(&self) -> redis::RedisResult<Vec<Entry>> {
        let mut conn = self.reader.clone();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(2000))
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let ids = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        Ok(self.decode_all(ids).await)
    }

    /// Entries another consumer took and left pending for [`Self::claim_idle`].
    ///
    /// # Errors
    /// The Redis error.
    pub async fn claim_abandoned(&self) -> redis::RedisResult<Vec<Entry>> {
        let mut conn = self.conn.clone();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(u64::try_from(self.claim_idle.as_millis()).unwrap_or(60_000))
            .arg("0")
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut conn)
            .await?;
        Ok(self.decode_all(reply.claimed).await)
    }

    /// Decodes entries; one that can't be read (only a newer, incompatible node could write
    /// it) is acknowledged and dropped with a warning, so nobody claims it forever.
    async fn decode_all(&self, ids: impl IntoIterator<Item = StreamId>) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        for id in ids {
            let raw_id = id.id.clone();
            match self.decode(id) {
                Some(entry) => entries.push(entry),
                None => {
                    tracing::warn!(id = %raw_id, "undecodable push queue entry dropped");
                    bad.push(raw_id);
                }
            }
        }
        self.done(&bad).await;
        entries
    }

    /// Done with these entries: acknowledge and delete them.
    pub async fn done(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<((), ())> = redis::pipe()
            .cmd("XACK")
            .arg(&self.key)
            .arg(GROUP)
            .arg(ids)
            .cmd("XDEL")
            .arg(&self.key)
            .arg(ids)
            .query_async(&mut conn)
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "push queue entries not acknowledged; another node may send them again");
        }
    }
}

impl PushStream {
    /// What an entry's notice is sealed for: this stream, its user and its count.
    fn seal_context(&self, user_id: i64, count: u32) -> String {
        format!("{}:{user_id}:{count}", self.key)
    }

    fn decode(&self, entry: StreamId) -> Option<Entry> {
        let user_id: i64 = entry.get("user")?;
        let notice: String = entry.get("notice")?;
        let count: u32 = entry.get("count")?;
        let notice =
            self.seal
                .open_stored("push_queue", &self.seal_context(user_id, count), &notice)?;
        let notice = serde_json::from_str(notice).ok()?;
        Some(Entry {
            id: entry.id,
            user_id,
            notice,
            count,
        })
    }
}
